#!/usr/bin/env bash
# Builds the local control plane's binaries from their Go modules, as upstream builds them, into
# $KUBE_TOOLS/bin (default .tools/kube/bin). Each binary is rebuilt only when its pinned version
# in versions.env changes. Go is a build tool here only; nothing prebuilt is downloaded.
#
#   scripts/kube/build.sh            # everything
#   scripts/kube/build.sh etcd kwok  # some of: etcd kubernetes kwok kuberay cert-manager-crds fake-gcs
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=versions.env
source "$HERE/versions.env"
KUBE_TOOLS="${KUBE_TOOLS:-$ROOT/.tools/kube}"
BIN="$KUBE_TOOLS/bin"
SRC="$KUBE_TOOLS/src"
# Go's own module and build caches (as any `go build`), so a second clone on the same machine
# builds in seconds; only the binaries go to .tools/.
export GOFLAGS="-mod=mod -buildvcs=false"
export GOTOOLCHAIN=local
export CGO_ENABLED=0
mkdir -p "$BIN" "$SRC"

log() { printf '==> %s\n' "$*" >&2; }

# up_to_date NAME VERSION: true when NAME was built at VERSION and all its outputs exist.
up_to_date() {
    local stamp="$BIN/.$1.version"
    shift 2
    [[ -f "$stamp" && "$(cat "$stamp")" == "$VERSION_WANTED" ]] || return 1
    local out
    for out in "$@"; do [[ -x "$BIN/$out" ]] || return 1; done
}

# consumer NAME: a fresh module dir that builds the upstream module as a dependency.
consumer() {
    local dir="$SRC/$1"
    rm -rf "$dir"
    mkdir -p "$dir"
    (cd "$dir" && go mod init "rayhistory.local/build/$1" >/dev/null 2>&1)
    echo "$dir"
}

timed() {
    local start=$SECONDS
    "$@"
    log "$1 took $((SECONDS - start)) s"
}

# go_binary NAME MODULE VERSION PACKAGE OUTPUT [LDFLAGS]: builds one binary of an upstream module
# from a consumer module; the module's source dir is left in $MODULE_DIR for extra files.
go_binary() {
    local name="$1" module="$2" version="$3" package="$4" output="$5" ldflags="${6:-}"
    local dir
    dir="$(consumer "$name")"
    (
        cd "$dir"
        go get "$module@$version" >/dev/null
        go build -trimpath -ldflags "-s -w $ldflags" -o "$BIN/$output" "$package"
    )
    MODULE_DIR="$(cd "$dir" && go list -m -f '{{.Dir}}' "$module")"
}

# copy_files DEST FILES...: replaces folder DEST under $KUBE_TOOLS with FILES (writable copies).
copy_files() {
    local dest="$KUBE_TOOLS/$1"
    shift
    rm -rf "$dest"
    mkdir -p "$dest"
    cp "$@" "$dest/"
    chmod u+w "$dest"/*
}

build_etcd() {
    VERSION_WANTED="$ETCD_VERSION"
    up_to_date etcd "$ETCD_VERSION" etcd && return
    log "building etcd $ETCD_VERSION"
    go_binary etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3 etcd
    echo "$ETCD_VERSION" >"$BIN/.etcd.version"
}

build_kubernetes() {
    VERSION_WANTED="$KUBERNETES_VERSION"
    up_to_date kubernetes "$KUBERNETES_VERSION" kube-apiserver kube-controller-manager kube-scheduler kubectl && return
    log "building kube-apiserver, kube-controller-manager, kube-scheduler, kubectl $KUBERNETES_VERSION"
    local dir staging gomod
    dir="$(consumer kubernetes)"
    staging="v0.${KUBERNETES_VERSION#v1.}"
    gomod="$(cd "$dir" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" |
        sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
    (
        cd "$dir"
        # k8s.io/kubernetes replaces every staging module with ./staging/...; a consumer takes
        # the published module of the same release instead. The list comes from its own go.mod.
        grep -oE '^[[:space:]]*k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" |
            awk '{print $1}' | sort -u | while read -r mod; do
                go mod edit -replace "$mod=$mod@$staging"
            done
        go get "k8s.io/kubernetes@$KUBERNETES_VERSION" >/dev/null
        local major minor date ldflags pkg
        major="${KUBERNETES_VERSION#v}"; major="${major%%.*}"
        minor="$(echo "$KUBERNETES_VERSION" | cut -d. -f2)"
        date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        ldflags="-s -w"
        for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
            ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=$major"
            ldflags+=" -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
        done
        for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
            go build -trimpath -ldflags "$ldflags" -o "$BIN/$cmd" "k8s.io/kubernetes/cmd/$cmd"
        done
    )
    echo "$KUBERNETES_VERSION" >"$BIN/.kubernetes.version"
}

build_kwok() {
    VERSION_WANTED="$KWOK_VERSION"
    up_to_date kwok "$KWOK_VERSION" kwok && return
    log "building kwok $KWOK_VERSION"
    go_binary kwok sigs.k8s.io/kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok kwok \
        "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
    # kwok's stage configs: nodes and pods reach Ready (and nodes keep their lease) without a kubelet.
    copy_files kwok-stages "$MODULE_DIR"/kustomize/stage/node/fast/node-*.yaml \
        "$MODULE_DIR"/kustomize/stage/pod/fast/pod-*.yaml \
        "$MODULE_DIR"/kustomize/stage/node/heartbeat-with-lease/node-*.yaml
    echo "$KWOK_VERSION" >"$BIN/.kwok.version"
}

build_kuberay() {
    VERSION_WANTED="$KUBERAY_VERSION"
    up_to_date kuberay "$KUBERAY_VERSION" kuberay-operator && return
    log "building KubeRay's operator $KUBERAY_VERSION"
    go_binary kuberay github.com/ray-project/kuberay/ray-operator "$KUBERAY_VERSION" \
        github.com/ray-project/kuberay/ray-operator kuberay-operator
    copy_files kuberay-crds "$MODULE_DIR"/config/crd/bases/*.yaml
    echo "$KUBERAY_VERSION" >"$BIN/.kuberay.version"
}

build_fake-gcs() {
    VERSION_WANTED="$FAKE_GCS_VERSION"
    up_to_date fake-gcs "$FAKE_GCS_VERSION" fake-gcs-server && return
    log "building fake-gcs-server $FAKE_GCS_VERSION"
    go_binary fake-gcs github.com/fsouza/fake-gcs-server "$FAKE_GCS_VERSION" \
        github.com/fsouza/fake-gcs-server fake-gcs-server
    echo "$FAKE_GCS_VERSION" >"$BIN/.fake-gcs.version"
}

# cert-manager's CRDs only (the chart's certManager.enabled path creates its Certificate and Issuer).
build_cert-manager-crds() {
    VERSION_WANTED="$CERT_MANAGER_VERSION"
    local out="$KUBE_TOOLS/cert-manager-crds"
    [[ -f "$BIN/.cert-manager-crds.version" && "$(cat "$BIN/.cert-manager-crds.version")" == "$VERSION_WANTED" && -d "$out" ]] && return
    log "fetching cert-manager $CERT_MANAGER_VERSION CRDs"
    local dir
    dir="$(cd "$SRC" && go mod download -json "github.com/cert-manager/cert-manager@$CERT_MANAGER_VERSION" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    copy_files cert-manager-crds "$dir"/deploy/crds/cert-manager.io_*.yaml
    echo "$CERT_MANAGER_VERSION" >"$BIN/.cert-manager-crds.version"
}

command -v go >/dev/null || { echo "kube build: go is required (the machine's Go toolchain)" >&2; exit 1; }
targets=("$@")
(( ${#targets[@]} )) || targets=(etcd kubernetes kwok kuberay fake-gcs cert-manager-crds)
for target in "${targets[@]}"; do
    case "$target" in
        etcd | kubernetes | kwok | kuberay | fake-gcs | cert-manager-crds) timed "build_$target" ;;
        *) echo "kube build: unknown target $target" >&2; exit 2 ;;
    esac
done
