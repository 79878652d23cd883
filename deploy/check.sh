#!/usr/bin/env bash
# The deployment's own test, offline (scripts/test.sh runs it): every overlay of
# deploy/k8s/overlays renders, each object passes the Kubernetes schema check and the policy
# check (deploy/setup_monitoring.sh --dry-run); the policy check still catches a careless
# Deployment (so a configuration that skipped everything could not pass); applying refuses
# while a placeholder secret remains.
set -euo pipefail
cd "$(dirname "$0")/.."
# Where scripts/test.sh installs kubernetes-validate and checkov (as setup_monitoring.sh does).
tools="${DEPLOY_TOOLS_DIR:-${HOME:-/tmp}/.cache/mixmon/deploy-tools}"
[ -d "$tools/bin" ] && PATH="$tools/bin:$PATH"
command -v checkov >/dev/null 2>&1 || { echo "checkov is missing: scripts/test.sh installs it into $tools" >&2; exit 1; }

overlays="$(cd deploy/k8s/overlays && find . -name kustomization.yaml | sed 's|^\./||; s|/kustomization.yaml$||' | sort)"
n=0
for overlay in $overlays; do
    deploy/setup_monitoring.sh --dry-run "$overlay"
    n=$((n + 1))
done

echo "== the policy check catches what it is for"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat >"$work/careless.yaml" <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: careless
  namespace: ai-mixer-monitoring
spec:
  selector:
    matchLabels: {app: careless}
  template:
    metadata:
      labels: {app: careless}
    spec:
      containers:
        - name: careless
          image: mixmon:latest
EOF
if checkov --file "$work/careless.yaml" --config-file deploy/k8s/.checkov.yaml >"$work/careless.log" 2>&1; then
    cat "$work/careless.log" >&2
    echo "checkov passed a Deployment that breaks every rule" >&2
    exit 1
fi
# latest tag, liveness, readiness, CPU and memory limits, root, read-only root, privilege
# escalation, capabilities, seccomp.
for rule in CKV_K8S_14 CKV_K8S_8 CKV_K8S_9 CKV_K8S_11 CKV_K8S_13 CKV_K8S_23 CKV_K8S_22 CKV_K8S_20 CKV_K8S_37 CKV_K8S_31; do
    grep -q "Check: $rule:" "$work/careless.log" || {
        cat "$work/careless.log" >&2
        echo "checkov did not report $rule on the careless Deployment" >&2
        exit 1
    }
done
echo "   a careless Deployment fails each of the 10 rules"

echo "== applying refuses placeholder secrets (before touching any cluster)"
# With no kube configuration at all, so this can never reach a cluster, whatever the checkout.
: >"$work/no-kubeconfig"
if grep -rqs CHANGE-ME deploy/k8s/base/*/secrets; then
    if KUBECONFIG="$work/no-kubeconfig" deploy/setup_monitoring.sh all-in-one >"$work/apply.log" 2>&1 \
        || ! grep -q "CHANGE-ME placeholders" "$work/apply.log"; then
        cat "$work/apply.log" >&2
        echo "setup_monitoring.sh did not refuse the placeholder secrets" >&2
        exit 1
    fi
    echo "   refused"
else
    echo "   skipped: no placeholder is left in this checkout's secrets"
fi

echo "deploy: $n overlays rendered and validated"
