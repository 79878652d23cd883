#!/usr/bin/env bash
# Fuzzes the exposition parser: `scripts/fuzz.sh [SECONDS]` (default 600), one job.
#
# cargo-fuzz needs nightly-only compiler flags (-Zsanitizer=address); this machine has stable
# Rust only, so RUSTC_BOOTSTRAP=1 unlocks them. The corpus grows in fuzz/corpus/ (git-ignored);
# the seeds in fuzz/seeds/ (the design brief's fixture and hand-written inputs) are read too. A
# crash lands in fuzz/artifacts/exposition_parse/: reproduce it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run exposition_parse fuzz/artifacts/exposition_parse/<file>
# and add the input to `fuzz_regressions` in libs/exposition/tests/parse_table.rs once fixed.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${1:-600}"
target=exposition_parse

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

mkdir -p "corpus/$target"
RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "corpus/$target" "seeds/parse" -- \
    -max_total_time="$seconds" -dict=dict/exposition.dict -print_final_stats=1
