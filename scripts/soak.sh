#!/usr/bin/env bash
# The soak: `scripts/soak.sh [MINUTES] [CLIENTS]` (defaults 4 and 50). The real binaries on a
# real redis-server, at the operators' scale (4 regions, 30 pods, 6 endpoints, every region
# probing every endpoint at 5 s), through a chaos schedule repeated every 15 minutes (a
# prober, an aggregator replica, a query replica and Redis killed and restarted in turn, a
# region cut off for a minute, a prober's buffer disk filled), with CLIENTS dashboard clients;
# then the store is compared with the probers' ground truth. Prints `name: value` lines and
# exits 1 if anything was lost, duplicated, answered 5xx outside Redis's downtime, or a
# figure was off the truth. The test command runs the default (4 minutes); `scripts/soak.sh 30`
# is the benchmark. Filling the buffer disk mounts a small tmpfs, which needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --locked --workspace --bins
"${CARGO_TARGET_DIR:-target}/debug/soak" "${1:-4}" "${2:-50}"
