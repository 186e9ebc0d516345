#!/usr/bin/env bash
# End-to-end on kind: build the three images, install KubeRay, Azurite and the ray-history
# chart, run the sample RayJob and check that the history server lists its session after the
# job's cluster is gone. Needs docker, kind, kubectl, helm and curl (not on the build machines).
#
#   scripts/e2e-kind.sh            # KEEP_CLUSTER=1 keeps the kind cluster afterwards
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CLUSTER="${KIND_CLUSTER:-ray-history}"
KUBERAY_VERSION="${KUBERAY_VERSION:-1.4.2}"
TAG="e2e"
NS_RAY="ray"
NS_SYSTEM="ray-history"
FORWARD_PORT="${FORWARD_PORT:-18080}"

log() { printf '==> %s\n' "$*"; }
die() { printf 'e2e-kind: %s\n' "$*" >&2; exit 1; }

for tool in docker kind kubectl helm curl; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done

PF_PID=""
cleanup() {
    if [[ -n "$PF_PID" ]]; then
        kill "$PF_PID" 2>/dev/null || true
    fi
    if [[ "${KEEP_CLUSTER:-0}" != "1" ]]; then
        kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

if ! kind get clusters | grep -qx "$CLUSTER"; then
    log "creating kind cluster $CLUSTER"
    kind create cluster --name "$CLUSTER" --config "$ROOT/config/kind.yaml" --wait 120s
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null

for image in operator collector server; do
    log "building ray-history-$image:$TAG"
    docker build -f "$ROOT/docker/$image.Dockerfile" -t "ray-history-$image:$TAG" "$ROOT"
    kind load docker-image --name "$CLUSTER" "ray-history-$image:$TAG"
done

log "installing KubeRay $KUBERAY_VERSION"
helm repo add kuberay https://ray-project.github.io/kuberay-helm/ >/dev/null
helm repo update kuberay >/dev/null
helm upgrade --install kuberay-operator kuberay/kuberay-operator --version "$KUBERAY_VERSION" \
    --namespace kuberay --create-namespace --wait --timeout 5m

log "installing Azurite and the storage credentials in namespace $NS_RAY"
kubectl create namespace "$NS_RAY" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$NS_RAY" apply -f "$ROOT/config/azurite.yaml"
kubectl -n "$NS_RAY" rollout status deployment/azurite --timeout 3m
kubectl apply -f "$ROOT/config/samples/azurite-credentials.yaml"

log "installing the ray-history chart"
helm upgrade --install ray-history "$ROOT/charts/ray-history" \
    --namespace "$NS_SYSTEM" --create-namespace --wait --timeout 5m \
    --set image.repository=ray-history-operator --set image.tag="$TAG" --set image.pullPolicy=Never \
    --set collectorImage.repository=ray-history-collector --set collectorImage.tag="$TAG" \
    --set serverImage.repository=ray-history-server --set serverImage.tag="$TAG" \
    --set "rbac.secretNamespaces={$NS_RAY}" --set "allowedEndpoints={azurite.$NS_RAY.svc}"

log "creating HistoryStorage and HistoryServer"
kubectl apply -f "$ROOT/config/samples/historystorage.yaml"
kubectl -n "$NS_RAY" wait historystorage/history --for=condition=Ready --timeout 3m
kubectl apply -f "$ROOT/config/samples/historyserver.yaml"
kubectl -n "$NS_RAY" wait historyserver/history --for=condition=Ready --timeout 5m

log "running the sample RayJob"
kubectl apply -f "$ROOT/config/rayjob.yaml"
deadline=$((SECONDS + 900))
head_checked=0
until [[ "$(kubectl -n "$NS_RAY" get rayjob squares -o jsonpath='{.status.jobStatus}')" == "SUCCEEDED" ]]; do
    (( SECONDS < deadline )) || die "RayJob squares did not succeed in 15 minutes"
    if (( head_checked == 0 )); then
        sidecars="$(kubectl -n "$NS_RAY" get pods -l ray.io/node-type=head,ray.io/originated-from-cr-name=squares \
            -o jsonpath='{.items[*].spec.initContainers[*].name}' 2>/dev/null || true)"
        if [[ "$sidecars" == *ray-history-collector* ]]; then
            log "head pod has the collector sidecar"
            head_checked=1
        fi
    fi
    sleep 5
done
(( head_checked == 1 )) || die "the RayJob's head pod never had the ray-history-collector sidecar"

log "waiting for the RayJob's cluster to be deleted (ttlSecondsAfterFinished)"
deadline=$((SECONDS + 300))
while [[ -n "$(kubectl -n "$NS_RAY" get pods -l ray.io/originated-from-cr-name=squares -o name)" ]]; do
    (( SECONDS < deadline )) || die "the RayJob's pods were not deleted in 5 minutes"
    sleep 5
done

log "checking the history server lists the session"
kubectl -n "$NS_RAY" port-forward svc/history "$FORWARD_PORT:80" >/dev/null 2>&1 &
PF_PID=$!
deadline=$((SECONDS + 120))
until sessions="$(curl -fsS "http://127.0.0.1:$FORWARD_PORT/api/sessions?namespace=$NS_RAY")" \
    && [[ "$sessions" == *'"clusterName":"squares'* ]]; do
    (( SECONDS < deadline )) || die "no session of RayJob squares listed: ${sessions:-no answer}"
    sleep 3
done
printf '%s\n' "$sessions"
log "e2e passed: the finished RayJob's session is in the history server"
