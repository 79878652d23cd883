#!/usr/bin/env bash
# Deploys mixmon to the current kube context from one overlay of deploy/k8s/overlays, waits
# for every rollout, and prints the port-forward commands for Grafana, the query service and
# the aggregator.
#
#   deploy/setup_monitoring.sh [OVERLAY]             apply (default: all-in-one)
#   deploy/setup_monitoring.sh --dry-run [OVERLAY]   render and validate offline, no cluster
#
# OVERLAY: all-in-one, central, region/us-west, region/us-east, region/eu-west, region/ap
# (or just us-west, ...). --dry-run renders with `kubectl kustomize`, validates every object
# against the Kubernetes $K8S_VERSION schemas (kubernetes-validate, strict: unknown fields
# are errors) and runs the policy check (checkov, deploy/k8s/.checkov.yaml). Applying refuses
# while a Secret still holds a CHANGE-ME placeholder (--allow-placeholders: a throwaway
# cluster).
set -euo pipefail
cd "$(dirname "$0")/.."

# The Kubernetes version the objects are validated against (a version kubernetes-validate
# ships schemas for); the oldest the manifests support: gRPC probes, policy/v1, Components.
K8S_VERSION="${K8S_VERSION:-1.31.0}"
ROLLOUT_TIMEOUT="${ROLLOUT_TIMEOUT:-600s}"

usage() {
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-2}"
}

dry_run=0
allow_placeholders=0
overlay=""
for arg in "$@"; do
    case "$arg" in
        --dry-run) dry_run=1 ;;
        --allow-placeholders) allow_placeholders=1 ;;
        -h | --help) usage 0 ;;
        -*) echo "unknown option: $arg" >&2; usage ;;
        *)
            [ -z "$overlay" ] || { echo "one overlay at a time (got $overlay and $arg)" >&2; usage; }
            overlay="$arg"
            ;;
    esac
done
overlay="${overlay:-all-in-one}"
case "$overlay" in us-west | us-east | eu-west | ap) overlay="region/$overlay" ;; esac
dir="deploy/k8s/overlays/$overlay"
if [ ! -f "$dir/kustomization.yaml" ]; then
    echo "no overlay $overlay (no $dir/kustomization.yaml); there are:" >&2
    (cd deploy/k8s/overlays && find . -name kustomization.yaml | sed 's|^\./||; s|/kustomization.yaml$||' | sort) >&2
    exit 2
fi

# kubernetes-validate and checkov live in their own virtualenv (scripts/test.sh makes it), so
# checkov's many pinned dependencies never change the machine's own Python packages.
tools="${DEPLOY_TOOLS_DIR:-${HOME:-/tmp}/.cache/mixmon/deploy-tools}"
[ -d "$tools/bin" ] && PATH="$tools/bin:$PATH"

need() {
    command -v "$1" >/dev/null 2>&1 || {
        echo "$1 is missing: $2" >&2
        exit 1
    }
}
need kubectl "install kubectl (it renders with its built-in kustomize)"
need python3 "install python3"
python3 -c "import yaml" 2>/dev/null || { echo "python3's yaml module is missing: pip install PyYAML" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
rendered="$work/rendered.yaml"
kubectl kustomize "$dir" >"$rendered"

# What the rendered objects are: "kind namespace name" a line.
inventory() {
    python3 - "$rendered" <<'PY'
import sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc:
        meta = doc.get("metadata", {})
        print(doc["kind"], meta.get("namespace", "-"), meta["name"])
PY
}
objects="$(inventory)"
count="$(printf '%s\n' "$objects" | grep -c .)"

# Secrets whose decoded values still hold a CHANGE-ME placeholder, one "name/key" a line.
placeholders() {
    python3 - "$rendered" <<'PY'
import base64, sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc and doc.get("kind") == "Secret":
        for key, value in (doc.get("data") or {}).items():
            if b"CHANGE-ME" in base64.b64decode(value):
                print(f"{doc['metadata']['name']}/{key}")
        for key, value in (doc.get("stringData") or {}).items():
            if "CHANGE-ME" in str(value):
                print(f"{doc['metadata']['name']}/{key}")
PY
}
left="$(placeholders)"

if [ "$dry_run" -eq 1 ]; then
    need kubernetes-validate "scripts/test.sh installs it into $tools (or: pip install kubernetes-validate)"
    need checkov "scripts/test.sh installs it into $tools (or: pip install checkov)"
    echo "== $overlay: $count objects rendered"
    # Schema: every object against the pinned version's OpenAPI schemas, unknown fields refused.
    kubernetes-validate --kubernetes-version "$K8S_VERSION" --strict --quiet "$rendered" >"$work/validate.log" 2>&1 || {
        cat "$work/validate.log" >&2
        echo "$overlay: schema validation against Kubernetes $K8S_VERSION failed" >&2
        exit 1
    }
    # It exits 0 when it finds no schema for a kind (a WARN): that is no validation, so fail.
    if grep -qE '^(ERROR|WARN)' "$work/validate.log"; then
        cat "$work/validate.log" >&2
        echo "$overlay: schema validation reported problems" >&2
        exit 1
    fi
    echo "   schema (Kubernetes $K8S_VERSION, strict): $count objects valid"
    # Policy: checkov over the rendered objects; the skipped checks and why are in its config.
    mkdir -p "$work/policy"
    cp "$rendered" "$work/policy/$(echo "$overlay" | tr / -).yaml"
    if ! checkov --directory "$work/policy" --config-file deploy/k8s/.checkov.yaml >"$work/checkov.log" 2>&1; then
        cat "$work/checkov.log" >&2
        echo "$overlay: the policy check failed" >&2
        exit 1
    fi
    summary="$(grep -E '^Passed checks:' "$work/checkov.log" || true)"
    [ -n "$summary" ] || { cat "$work/checkov.log" >&2; echo "$overlay: checkov printed no summary" >&2; exit 1; }
    echo "   policy (checkov): $summary (skipped by configuration: $(grep -cE '^  - CKV' deploy/k8s/.checkov.yaml))"
    if [ -n "$left" ]; then
        echo "   placeholders to replace before applying: $(echo "$left" | tr '\n' ' ')"
    fi
    echo "   ok"
    exit 0
fi

if [ -n "$left" ] && [ "$allow_placeholders" -eq 0 ]; then
    echo "refusing to apply $overlay: these Secret values are still CHANGE-ME placeholders:" >&2
    echo "$left" | sed 's/^/  /' >&2
    echo "replace them under deploy/k8s/base/*/secrets/ (deploy/k8s/README.md), or pass --allow-placeholders for a throwaway cluster" >&2
    exit 1
fi

context="$(kubectl config current-context)"
echo "== applying $overlay ($count objects) to context $context"
kubectl apply -f "$rendered"

echo "== waiting for every rollout (at most $ROLLOUT_TIMEOUT each)"
printf '%s\n' "$objects" | while read -r kind namespace name; do
    case "$kind" in
        Deployment | StatefulSet | DaemonSet)
            kubectl -n "$namespace" rollout status "$(echo "$kind" | tr '[:upper:]' '[:lower:]')/$name" --timeout="$ROLLOUT_TIMEOUT"
            ;;
    esac
done

echo
echo "mixmon ($overlay) is rolled out. To reach it from here:"
printf '%s\n' "$objects" | while read -r kind namespace name; do
    [ "$kind" = Service ] || continue
    case "$name" in
        mixmon-grafana) echo "  Grafana      kubectl -n $namespace port-forward svc/$name 3000:3000   # http://localhost:3000 (admin login: Secret mixmon-grafana)" ;;
        mixmon-query) echo "  query API    kubectl -n $namespace port-forward svc/$name 8090:8090   # curl -H \"Authorization: Bearer \$TOKEN\" localhost:8090/api/v1/status" ;;
        mixmon-aggregator) echo "  aggregator   kubectl -n $namespace port-forward svc/$name 50051:50051 # gRPC; grpc.health.v1 answers without a token" ;;
    esac
done
if printf '%s\n' "$objects" | grep -q '^DaemonSet .* mixmon-prober$'; then
    echo "  probers      kubectl -n ai-mixer-monitoring get pods -l app.kubernetes.io/name=mixmon-prober -o wide"
fi
