#!/usr/bin/env bash
# Starts a local Kubernetes control plane on loopback, in the spirit of controller-runtime's
# envtest plus KWOK: etcd, kube-apiserver (RBAC, PodSecurity, admission webhooks, a
# ServiceAccount issuer), kube-controller-manager, kube-scheduler, kwok with one fake node, and
# KubeRay's operator out of cluster with its CRDs installed. Binaries come from build.sh.
#
#   scripts/kube/up.sh              # background; writes .tools/kube/kubeconfig, pids in $KUBE_RUN/pids
#   scripts/kube/up.sh --foreground # stays in the foreground, stops everything on SIGTERM/SIGINT
#
# KUBE_RUN (default .tools/kube/run) holds certificates, etcd's data, logs and pids.
# KUBERAY=0 skips KubeRay's operator. A file $KUBE_RUN/ready appears once everything answers.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
KUBE_TOOLS="${KUBE_TOOLS:-$ROOT/.tools/kube}"
BIN="$KUBE_TOOLS/bin"
RUN="${KUBE_RUN:-$KUBE_TOOLS/run}"
FOREGROUND=0
[[ "${1:-}" == "--foreground" ]] && FOREGROUND=1

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'kube-up: %s\n' "$*" >&2; exit 1; }

for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok; do
    [[ -x "$BIN/$b" ]] || die "$BIN/$b is missing; run scripts/kube/build.sh (make kube-tools)"
done
if [[ -f "$RUN/pids" ]] && xargs -r kill -0 <"$RUN/pids" 2>/dev/null; then
    die "already running (pids in $RUN/pids); run make kube-down first"
fi
rm -rf "$RUN"
mkdir -p "$RUN/pki" "$RUN/logs"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
ETCD_PORT="$(free_port)"
ETCD_PEER_PORT="$(free_port)"
API_PORT="$(free_port)"
CM_PORT="$(free_port)"
SCHED_PORT="$(free_port)"
KWOK_PORT="$(free_port)"
KUBERAY_METRICS_PORT="$(free_port)"
KUBERAY_PROBE_PORT="$(free_port)"

# Certificates: one CA for serving and client certs; the admin is in system:masters.
pki="$RUN/pki"
openssl_quiet() { openssl "$@" 2>/dev/null; }
openssl_quiet req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=ray-history-local-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt"
sign() { # name subject [ext]
    openssl_quiet req -newkey rsa:2048 -nodes -subj "$2" -keyout "$pki/$1.key" -out "$pki/$1.csr"
    if [[ -n "${3:-}" ]]; then
        printf '%s\n' "$3" >"$pki/$1.ext"
        openssl_quiet x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
            -CAcreateserial -days 30 -extfile "$pki/$1.ext" -out "$pki/$1.crt"
    else
        openssl_quiet x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
            -CAcreateserial -days 30 -out "$pki/$1.crt"
    fi
}
sign apiserver "/CN=kube-apiserver" \
    "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
sign admin "/O=system:masters/CN=kubernetes-admin" "extendedKeyUsage=clientAuth"
openssl_quiet genrsa -out "$pki/sa.key" 2048
openssl_quiet rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub"

KUBECONFIG_FILE="$RUN/kubeconfig"
cat >"$KUBECONFIG_FILE" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: local
    cluster:
      server: https://127.0.0.1:$API_PORT
      certificate-authority: $pki/ca.crt
users:
  - name: admin
    user:
      client-certificate: $pki/admin.crt
      client-key: $pki/admin.key
contexts:
  - name: local
    context: {cluster: local, user: admin}
current-context: local
EOF

PIDS=()
start() { # name command...
    local name="$1"
    shift
    "$@" >"$RUN/logs/$name.log" 2>&1 &
    PIDS+=("$!")
    echo "$!" >>"$RUN/pids"
    echo "$name $!" >>"$RUN/processes"
}
stop_all() {
    local pid
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill "${PIDS[$i]}" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
fail() {
    printf 'kube-up: %s\n' "$1" >&2
    [[ -n "${2:-}" && -f "$RUN/logs/$2.log" ]] && tail -n 20 "$RUN/logs/$2.log" >&2
    stop_all
    exit 1
}
if (( FOREGROUND )); then
    trap 'stop_all; exit 0' TERM INT
fi

wait_for() { # what seconds command...
    local what="$1" deadline=$((SECONDS + $2))
    shift 2
    until "$@" >/dev/null 2>&1; do
        (( SECONDS < deadline )) || fail "$what did not come up" "$what"
        sleep 0.2
    done
}
kubectl() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

start etcd "$BIN/etcd" --name local --data-dir "$RUN/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "local=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --listen-metrics-urls "" --log-level warn
wait_for etcd 30 curl -sf "http://127.0.0.1:$ETCD_PORT/health"

# The admission plugins a kubeadm cluster runs (PodSecurity and the webhooks are on by default).
start kube-apiserver "$BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --authorization-mode RBAC \
    --enable-admission-plugins NamespaceLifecycle,LimitRanger,ServiceAccount,DefaultStorageClass,DefaultTolerationSeconds,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy,ResourceQuota,PodSecurity,Priority,RuntimeClass \
    --endpoint-reconciler-type none \
    --allow-privileged=true \
    --cert-dir "$RUN/apiserver-certs"
wait_for kube-apiserver 90 curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
    "https://127.0.0.1:$API_PORT/readyz"

start kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig "$KUBECONFIG_FILE" \
    --authentication-kubeconfig "$KUBECONFIG_FILE" --authorization-kubeconfig "$KUBECONFIG_FILE" \
    --bind-address 127.0.0.1 --secure-port "$CM_PORT" --leader-elect=false \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --use-service-account-credentials=false \
    --controllers '*,-nodeipam,-service-lb-controller,-cloud-node-lifecycle,-route'
start kube-scheduler "$BIN/kube-scheduler" \
    --kubeconfig "$KUBECONFIG_FILE" \
    --authentication-kubeconfig "$KUBECONFIG_FILE" --authorization-kubeconfig "$KUBECONFIG_FILE" \
    --bind-address 127.0.0.1 --secure-port "$SCHED_PORT" --leader-elect=false

# kwok plays the kubelet of one fake node. Its node and pod addresses are loopback ones, so
# nothing can ever send traffic off this machine.
stages="$RUN/kwok-stages.yaml"
: >"$stages"
for f in "$KUBE_TOOLS"/kwok-stages/*.yaml; do
    cat "$f" >>"$stages"
    printf '\n---\n' >>"$stages"
done
start kwok "$BIN/kwok" --kubeconfig "$KUBECONFIG_FILE" --config "$stages" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --node-lease-duration-seconds 40 \
    --node-ip 127.0.100.1 --cidr 127.0.101.0/24 --server-address "127.0.0.1:$KWOK_PORT"

wait_for kube-apiserver 60 kubectl get serviceaccount default -n default
kubectl apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: kwok-node-0
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
EOF
wait_for kwok 60 kubectl wait node/kwok-node-0 --for condition=Ready --timeout 1s

if [[ "${KUBERAY:-1}" == "1" ]]; then
    [[ -x "$BIN/kuberay-operator" ]] || fail "$BIN/kuberay-operator is missing; run scripts/kube/build.sh"
    kubectl apply --server-side -f "$KUBE_TOOLS/kuberay-crds" >/dev/null
    kubectl wait --for condition=Established --timeout 60s \
        crd/rayclusters.ray.io crd/rayjobs.ray.io crd/rayservices.ray.io >/dev/null
    start kuberay-operator env KUBECONFIG="$KUBECONFIG_FILE" "$BIN/kuberay-operator" \
        --enable-leader-election=false \
        --metrics-addr "127.0.0.1:$KUBERAY_METRICS_PORT" \
        --health-probe-bind-address "127.0.0.1:$KUBERAY_PROBE_PORT"
    wait_for kuberay-operator 60 curl -sf "http://127.0.0.1:$KUBERAY_PROBE_PORT/readyz"
fi

cat >"$RUN/env" <<EOF
KUBECONFIG=$KUBECONFIG_FILE
KUBE_API_PORT=$API_PORT
KUBE_CA=$pki/ca.crt
KUBE_SA_KEY=$pki/sa.key
KUBE_BIN=$BIN
EOF
if (( ! FOREGROUND )); then
    # The well-known place for people (make kube-up); test fixtures use their own $KUBE_RUN.
    cp "$KUBECONFIG_FILE" "$KUBE_TOOLS/kubeconfig"
    KUBECONFIG_FILE="$KUBE_TOOLS/kubeconfig"
fi
touch "$RUN/ready"
log "control plane up: https://127.0.0.1:$API_PORT ($("$BIN/kube-apiserver" --version))"
log "use it:  KUBECONFIG=$KUBECONFIG_FILE $BIN/kubectl get pods -A"
log "stop it: make kube-down"

if (( FOREGROUND )); then
    # Stay until signalled; if any component dies, stop the rest.
    wait -n "${PIDS[@]}" || true
    fail "a control plane process exited"
fi
