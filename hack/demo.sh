#!/usr/bin/env bash
# `make demo`: the whole job on the local cluster, narrated. Starts the cluster if needed, installs
# the CRD, runs the operator in the background, applies the examples and shows what happens.
set -euo pipefail
cd "$(dirname "$0")/.."

export KUBECONFIG="${KUBECONFIG:-$PWD/.cluster/kubeconfig}"
BIN="$(hack/cluster/bin-dir)"
kubectl() { "$BIN/kubectl" "$@"; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
NS=vivified-demo
LOG=.cluster/demo-operator.log

say "Installing the VivifiedPlugin CRD"
kubectl apply --server-side -f crds/vivified.dev_vivifiedplugins.yaml
kubectl wait --for=condition=Established crd/vivifiedplugins.vivified.dev --timeout=30s
kubectl create namespace vivified-system --dry-run=client -o yaml | kubectl apply -f -
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -

say "Starting the operator (log: $LOG)"
.venv/bin/vivified operator --namespace "$NS" >"$LOG" 2>&1 &
OPERATOR=$!
trap 'kill -INT $OPERATOR 2>/dev/null; wait $OPERATOR 2>/dev/null || true' EXIT
for _ in $(seq 1 60); do grep -q "caches synced" "$LOG" && break; sleep 0.5; done

say "vivified validate: the examples, valid and invalid"
.venv/bin/vivified validate manifests/examples/*.yaml manifests/examples/invalid/dangerous-traits.yaml || true

say "kubectl apply the seed's user-management plugin and a PHI plugin that depends on it"
kubectl apply -n "$NS" -f manifests/examples/user-management.yaml -f manifests/examples/phi-records.yaml
kubectl wait -n "$NS" --for=condition=Ready vp/user-management vp/phi-records --timeout=60s
kubectl get vp -n "$NS"

say "What the operator created for user-management"
kubectl get deploy,svc,networkpolicy,serviceaccount,secret -n "$NS" -l vivified.dev/plugin=user-management

say "An invalid plugin ends Invalid, with every error in its status"
kubectl apply -n "$NS" -f manifests/examples/invalid/dangerous-traits.yaml || true
sleep 2
kubectl get vp -n "$NS"
name=$(.venv/bin/python -c "import yaml,sys; print(yaml.safe_load(open('manifests/examples/invalid/dangerous-traits.yaml'))['metadata']['name'])")
kubectl get vp -n "$NS" "$name" -o jsonpath='{range .status.validationErrors[*]}{.field}: {.message}{"\n"}{end}' || true

say "Disable user-management: scaled to 0, token revoked; phi-records waits for it"
kubectl patch vp -n "$NS" user-management --type merge -p '{"spec":{"enabled":false}}'
kubectl wait -n "$NS" --for=jsonpath='{.status.phase}'=Disabled vp/user-management --timeout=30s
sleep 2
kubectl get vp -n "$NS"

say "Enable it again: a fresh token, Active again"
kubectl patch vp -n "$NS" user-management --type merge -p '{"spec":{"enabled":true}}'
kubectl wait -n "$NS" --for=condition=Ready vp/user-management vp/phi-records --timeout=60s
kubectl get vp -n "$NS"

say "Done. The cluster keeps running (make cluster-down stops it); the demo namespace is $NS."
