#!/usr/bin/env bash
# The one entry point for benchmarks: `scripts/bench.sh NAME`. Each prints its figures one a
# line as `name: value`, so runs can be compared. Release builds; nothing here is a test.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    echo "usage: scripts/bench.sh NAME"
    echo "  probe       HTTP probes side by side with prometheus-blackbox-exporter (installed if missing): CPU, rate, overshoot, RSS (100 checks + 23 scraped mixer pods)"
    echo "  quantiles   latency-sketch accuracy vs exact quantiles (4 distributions, merged over 4 regions x 60 min)"
    echo "  ingest      results/s through sort_batch + apply_batch into a real redis-server, then through a release aggregator's gRPC stream from 500 prober connections flushing every 200 ms [seconds, default 30]"
    echo "  faults      zero-loss fault scenarios with real processes (aggregator outage [seconds, default 60], prober SIGKILL, redis restart, failover, WAL growth)"
    echo "  detect      alert detection: endpoint killed to ServiceDown, resolve, region cut (false pages), leader kill (duplicates, failover), rule evaluation time [runs, default 3]"
    echo "  notify      notifications: page and resolve latency, one region down, 100 fire/resolve cycles through SIGKILLs and a Redis restart, a 500-transition storm against Slack's limit [runs, default 3] [cycles, default 100]"
    echo "  hostile     a 31-day every-metric query alone and 20 at once against a release mixmon up --demo: status, RSS idle/peak/after, a dashboard answered meanwhile"
    echo "  query       p50/p99 of a 24 h dashboard query against 15 days of rollups in a real redis-server"
    echo "  dashboards  the five Grafana dashboards' panels over 24 h, 1 then 50 clients, against 15 days of rollups, figures and alerts in a real redis-server: unanswered targets, p50/p99 per dashboard [rounds, default 5, each phase at most a minute]"
}

case "${1:-}" in
    probe)
        if ! command -v prometheus-blackbox-exporter >/dev/null; then
            sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
            $sudo apt-get install -y prometheus-blackbox-exporter >/dev/null
        fi
        cargo build --quiet --release --locked -p mixmon-prober -p mixmon-aggregator -p mixmon-mixer-sim \
            -p mixmon-bench --bin probe --bin mixmon-prober --bin mixmon-aggregator --bin mixmon-mixer-sim
        "${CARGO_TARGET_DIR:-target}/release/probe"
        ;;
    quantiles)
        cargo run --quiet --release --locked -p mixmon-model --example quantiles
        ;;
    ingest)
        cargo run --quiet --release --locked -p mixmon-bench --bin ingest -- "${2:-30}"
        # Then through the real gRPC stream of a release aggregator process, at the probers'
        # flush pattern.
        cargo build --quiet --release --locked -p mixmon-aggregator -p mixmon-bench --bin mixmon-aggregator --bin ingest_grpc
        "${CARGO_TARGET_DIR:-target}/release/ingest_grpc" "${2:-20}"
        ;;
    query)
        cargo run --quiet --release --locked -p mixmon-bench --bin query
        ;;
    dashboards)
        cargo run --quiet --release --locked -p mixmon-bench --bin dashboards -- "${2:-5}"
        ;;
    detect)
        # Real processes (debug builds, as for faults); the evaluation timing runs in-process.
        cargo build --quiet --locked -p mixmon-aggregator -p mixmon-prober -p mixmon-query -p mixmon-mixer-sim --bins
        cargo run --quiet --release --locked -p mixmon-bench --bin detect -- "${2:-3}"
        ;;
    hostile)
        cargo build --quiet --release --locked -p mixmon -p mixmon-bench --bin mixmon --bin hostile
        "${CARGO_TARGET_DIR:-target}/release/hostile"
        ;;
    notify)
        # Real processes (debug builds, as for detect); aiosmtpd as the SMTP server.
        python3 -c "import aiosmtpd" 2>/dev/null || python3 -m pip install --quiet aiosmtpd 2>/dev/null \
            || python3 -m pip install --quiet --break-system-packages aiosmtpd
        cargo build --quiet --locked -p mixmon-aggregator -p mixmon-prober -p mixmon-query -p mixmon-mixer-sim --bins
        cargo run --quiet --release --locked -p mixmon-bench --bin notify -- "${2:-3}" "${3:-100}"
        ;;
    faults)
        # Real processes: the scenarios start the debug binaries, so those are built first.
        cargo build --quiet --locked -p mixmon-aggregator -p mixmon-prober --bins
        cargo run --quiet --locked -p mixmon-bench --bin faults -- "${2:-60}"
        ;;
    *)
        usage
        [ -z "${1:-}" ] && exit 0
        echo "unknown benchmark: $1" >&2
        exit 2
        ;;
esac
