#!/usr/bin/env bash
# The one entry point for tests. It installs what the tests need when it is missing
# (redis-server: tests start their own instances on free ports), builds the binaries the
# end-to-end tests run as processes, checks formatting and lints, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
    echo "== installing redis-server (tests start their own, on free ports)"
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    # The package's own service is not needed; tests never use the default port.
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends redis-server >/dev/null
fi

if ! command -v amtool >/dev/null 2>&1; then
    echo "== installing prometheus-alertmanager (amtool reads mixmon's Alertmanager API; mixmon forwards to a real Alertmanager)"
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends prometheus-alertmanager >/dev/null
fi
if ! python3 -c "import aiosmtpd" >/dev/null 2>&1; then
    echo "== installing aiosmtpd (the notification test's real SMTP server, with STARTTLS and AUTH)"
    python3 -m pip install --quiet aiosmtpd 2>/dev/null \
        || python3 -m pip install --quiet --user aiosmtpd 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages aiosmtpd
fi
command -v openssl >/dev/null 2>&1 || {
    sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends openssl >/dev/null
}
# The alerting test must not skip its amtool check where this script installed amtool.
export REQUIRE_AMTOOL=1

echo "== formatting"
cargo fmt --all --check

echo "== building binaries (end-to-end tests start them as processes)"
cargo build --workspace --bins --locked

echo "== lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast --failure-output final
else
    cargo test --workspace --locked --no-fail-fast
fi
