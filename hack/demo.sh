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
DEMO=.cluster/demo
LOG=$DEMO/operator.log
PLUGIN_PORT=18000
mkdir -p "$DEMO"

say "Installing the VivifiedPlugin CRD"
kubectl apply --server-side -f crds/vivified.dev_vivifiedplugins.yaml
kubectl wait --for=condition=Established crd/vivifiedplugins.vivified.dev --timeout=30s
kubectl create namespace vivified-system --dry-run=client -o yaml | kubectl apply -f -
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -

say "Starting the operator (log: $LOG)"
# Out of the cluster the operator cannot resolve Service DNS, and nothing here may dial kwok's
# fake pod IPs: probe only the user-management process this demo runs on loopback.
VIVIFIED_PROBE_MODE=overrides \
VIVIFIED_PROBE_ADDRESS_OVERRIDES="$NS/user-management=127.0.0.1:$PLUGIN_PORT" \
VIVIFIED_HEALTH_INTERVAL_SECONDS=2 \
  .venv/bin/vivified operator --namespace "$NS" >"$LOG" 2>&1 &
OPERATOR=$!
PLUGIN=""
cleanup() {
  [[ -n $PLUGIN ]] && kill "$PLUGIN" 2>/dev/null
  kill -INT "$OPERATOR" 2>/dev/null
  wait 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 1 60); do grep -q "caches synced" "$LOG" && break; sleep 0.5; done
# A clean slate for a repeated demo (the operator must run: it removes its finalizers).
kubectl delete vp --all -n "$NS" --wait=true --timeout=60s >/dev/null
kubectl delete events --all -n "$NS" >/dev/null

say "vivified validate: the examples, valid and invalid"
.venv/bin/vivified validate manifests/examples/*.yaml manifests/examples/invalid/dangerous-traits.yaml || true

say "kubectl apply the seed's user-management plugin and a PHI plugin that depends on it"
kubectl apply -n "$NS" -f manifests/examples/user-management.yaml -f manifests/examples/phi-records.yaml
kubectl wait -n "$NS" --for=condition=Ready vp/user-management vp/phi-records --timeout=60s
kubectl get vp -n "$NS"

say "What the operator created for user-management"
kubectl get deploy,svc,networkpolicy,serviceaccount,secret -n "$NS" -l vivified.dev/plugin=user-management

say "Run the real user-management service on loopback with the token the operator minted"
# kwok runs no containers, so the demo plays the pod: it reads the mounted files from the Secret.
secret() { kubectl get secret -n "$NS" user-management-token -o "jsonpath={.data.$1}" | base64 -d; }
secret token >"$DEMO/token"
secret 'jwks\.json' >"$DEMO/jwks.json"
rm -f "$DEMO/users.db" "$DEMO"/audit.jsonl*
(cd plugins/user-management &&
  PLUGIN_TOKEN_FILE="$PWD/../../$DEMO/token" VIVIFIED_JWKS_FILE="$PWD/../../$DEMO/jwks.json" \
  USER_MANAGEMENT_DB="$PWD/../../$DEMO/users.db" USER_MANAGEMENT_HOST=127.0.0.1 \
  VIVIFIED_PLUGIN_PORT=$PLUGIN_PORT exec ../../.venv/bin/python -m user_management) \
  >"$DEMO/plugin.log" 2>&1 &
PLUGIN=$!
kubectl wait -n "$NS" --for=jsonpath='{.status.health}'=healthy vp/user-management --timeout=60s
kubectl get vp -n "$NS" user-management
kubectl get vp -n "$NS" user-management -o jsonpath='metrics: {.status.metrics}{"\n"}'
TOKEN=$(cat "$DEMO/token")
api="http://127.0.0.1:$PLUGIN_PORT/api/users/alice"
echo "PUT with the plugin token:"
curl -sS -X PUT "$api" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"department": "Cardiology", "manager": "bob"}'
echo
echo "GET without a token:"
curl -sS -o /dev/null -w '%{http_code}\n' "$api"

say "The core: plugin-to-plugin calls through the operator lane (log: $DEMO/core.log)"
CORE_PORT=18080
core_api="http://127.0.0.1:$CORE_PORT"
VIVIFIED_CORE_HOST=127.0.0.1 VIVIFIED_CORE_PORT=$CORE_PORT VIVIFIED_CORE_NAMESPACES="$NS" \
VIVIFIED_CORE_ADDRESS_MAP="user-management=127.0.0.1:$PLUGIN_PORT" \
VIVIFIED_AUDIT_SINK="file:$DEMO/audit.jsonl" VIVIFIED_UI=off \
  .venv/bin/vivified core >"$DEMO/core.log" 2>&1 &
CORE=$!
trap 'kill "$CORE" 2>/dev/null; cleanup' EXIT
for _ in $(seq 1 60); do curl -sf "$core_api/readyz" >/dev/null && break; sleep 0.5; done
# user-management again, now behind the core: it accepts only the core's call tokens.
kill "$PLUGIN"; wait "$PLUGIN" 2>/dev/null || true
(cd plugins/user-management &&
  PLUGIN_TOKEN_FILE="$PWD/../../$DEMO/token" VIVIFIED_JWKS_URL="$core_api/v1/jwks" \
  PLUGIN_ID=user-management USER_MANAGEMENT_DB="$PWD/../../$DEMO/users.db" \
  USER_MANAGEMENT_HOST=127.0.0.1 VIVIFIED_PLUGIN_PORT=$PLUGIN_PORT \
  exec ../../.venv/bin/python -m user_management) >"$DEMO/plugin.log" 2>&1 &
PLUGIN=$!
for _ in $(seq 1 60); do curl -sf "http://127.0.0.1:$PLUGIN_PORT/health" >/dev/null && break; sleep 0.5; done
kubectl apply -n "$NS" -f plugins/onboarding/onboarding.yaml
kubectl wait -n "$NS" --for=condition=Ready vp/onboarding --timeout=60s || true
ONBOARDING=$(kubectl get secret -n "$NS" onboarding-token -o jsonpath='{.data.token}' | base64 -d)
echo "onboarding (depends on user-management, handles_pii) -> user_info/alice: allowed"
curl -sS -D - -o "$DEMO/reply.json" "$core_api/v1/invoke/user-management/user_info/alice" \
  -H "Authorization: Bearer $ONBOARDING" | grep -iE '^HTTP|x-vivified-caller-seen' || true
cat "$DEMO/reply.json"; echo
echo "phi-records (no dependency on onboarding) -> onboarding: refused, with its reason"
PHI=$(kubectl get secret -n "$NS" phi-records-token -o jsonpath='{.data.token}' | base64 -d)
curl -sS "$core_api/v1/invoke/onboarding/onboard/alice" -X POST -H "Authorization: Bearer $PHI"; echo
echo "onboarding -> user_info/.. (traversal): refused before it reaches user-management"
curl -sS --path-as-is "$core_api/v1/invoke/user-management/user_info/.." \
  -H "Authorization: Bearer $ONBOARDING"; echo
echo "onboarding calling user-management directly with its own token: refused by the plugin"
curl -sS -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$PLUGIN_PORT/api/users/alice" \
  -H "Authorization: Bearer $ONBOARDING"
kill "$CORE" 2>/dev/null; wait "$CORE" 2>/dev/null || true
say "Every decision above is in the core's audit trail, hash-chained"
.venv/bin/python - "$DEMO/audit.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    entity = r.get("entity", {})
    print(f"#{r['seq']} {r['lane']}/{r['action']}: {r['agent']['id']} -> "
          f"{entity.get('target')}/{entity.get('operation')}: {r['outcome']} {r.get('reason', '')}")
PY
.venv/bin/vivified audit verify --file "$DEMO/audit.jsonl" || true
trap cleanup EXIT

say "Stop the service: degraded after one failed probe, unhealthy after three"
kill "$PLUGIN"; wait "$PLUGIN" 2>/dev/null || true; PLUGIN=""
kubectl wait -n "$NS" --for=jsonpath='{.status.health}'=unhealthy vp/user-management --timeout=60s
kubectl get vp -n "$NS" user-management
kubectl get events -n "$NS" --field-selector involvedObject.name=user-management --sort-by=.lastTimestamp \
  -o custom-columns=TIME:.lastTimestamp,TYPE:.type,REASON:.reason,MESSAGE:.message | grep -E "Plugin|TYPE"

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

if [[ -f .cluster/images.json ]] && kubectl get node vivified-node >/dev/null 2>&1; then
  # The real node (docs/development.md): the chart installed for real, the operator as a pod from
  # the image built here, user-management as a real pod probed in-cluster through its Service.
  RNS=vivified-demo-real
  RPNS=vivified-demo-real-plugins
  image() { .venv/bin/python -c "import json,sys; print(json.load(open('.cluster/images.json'))[sys.argv[1]])" "$1"; }
  OPERATOR_IMAGE=$(image operator)
  PLUGIN_IMAGE=$(image user-management)
  say "The real node next to the kwok node"
  kubectl get nodes -o wide
  say "helm install the chart on the real node (operator image $OPERATOR_IMAGE)"
  for ns in "$RNS" "$RPNS"; do
    kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
    # PodNodeSelector / PodTolerationRestriction: every pod of these namespaces runs on the real node.
    kubectl annotate --overwrite namespace "$ns" \
      scheduler.alpha.kubernetes.io/node-selector=vivified.dev/node=real \
      'scheduler.alpha.kubernetes.io/defaultTolerations=[{"key":"vivified.dev/real-node","operator":"Equal","value":"true","effect":"NoSchedule"}]' >/dev/null
  done
  "$BIN/helm" upgrade --install vivified charts/vivified -n "$RNS" \
    --set image.repository="${OPERATOR_IMAGE%:*}" --set image.tag="${OPERATOR_IMAGE##*:}" \
    --set image.pullPolicy=Never --set "watchNamespaces={$RPNS}" --wait --timeout 5m
  kubectl get pods -n "$RNS" -o wide
  say "user-management from its image, as a real pod; the operator probes it through its Service"
  sed "s|image: registry.example.com/vivified/user-management:1.0.0|image: $PLUGIN_IMAGE|" \
    manifests/examples/user-management.yaml | kubectl apply -n "$RPNS" -f -
  kubectl wait -n "$RPNS" --for=condition=Ready vp/user-management --timeout=240s
  kubectl wait -n "$RPNS" --for=jsonpath='{.status.health}'=healthy vp/user-management --timeout=120s
  kubectl get vp -n "$RPNS"
  kubectl get pods -n "$RPNS" -o wide
  kubectl get pods -n "$RPNS" -o custom-columns='POD:.metadata.name,NODE:.spec.nodeName,IP:.status.podIP,CONTAINER:.status.containerStatuses[0].containerID,READY:.status.containerStatuses[0].ready'
  say "Its NetworkPolicy, enforced by kube-router: the plugin pod cannot reach the API server"
  pod=$(kubectl get pods -n "$RPNS" -l vivified.dev/plugin=user-management -o jsonpath='{.items[0].metadata.name}')
  kubectl exec -n "$RPNS" "$pod" -- python -c "
import socket
for host, port in (('10.96.0.1', 443), ('kube-dns.kube-system.svc.cluster.local', 53)):
    s = socket.socket(); s.settimeout(3)
    try:
        s.connect((host, port)); print(host, port, 'connected')
    except OSError as e:
        print(host, port, 'blocked:', type(e).__name__)
" || true
  echo "(the chart stays installed in $RNS; helm uninstall vivified -n $RNS removes it)"
fi

say "Done. The cluster keeps running (make cluster-down stops it); the demo namespace is $NS."
