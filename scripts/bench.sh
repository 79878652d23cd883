#!/usr/bin/env bash
# The one entry point for benchmarks: `scripts/bench.sh NAME`. Each prints its figures one a
# line as `name: value`, so runs can be compared. Release builds; nothing here is a test.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    echo "usage: scripts/bench.sh NAME"
    echo "  quantiles   latency-sketch accuracy vs exact quantiles (4 distributions, merged over 4 regions x 60 min)"
}

case "${1:-}" in
    quantiles)
        cargo run --quiet --release --locked -p mixmon-model --example quantiles
        ;;
    *)
        usage
        [ -z "${1:-}" ] && exit 0
        echo "unknown benchmark: $1" >&2
        exit 2
        ;;
esac
