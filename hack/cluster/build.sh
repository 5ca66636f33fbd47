#!/usr/bin/env bash
# Builds the test ground's binaries from their Go modules, or reuses a cached
# build. Prints the binaries' directory on its last line.
#
#   kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy  (k8s/)
#   etcd (etcd/)   kwok (kwok/)   helm (helm/)
#   coredns pause (coredns/)   kube-router (kube-router/): the real node's DNS, pod sandbox
#   and NetworkPolicy firewall
#
# No release binaries or images: everything comes from the Go module proxy.
# GOMODCACHE/GOCACHE stay the defaults so later builds on this machine are fast.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/versions.sh"

# nats-server (event lane): its own cache dir and key; prints its path.
"$CLUSTER_HACK_DIR/nats/build.sh" >&2

bin_dir=$(cluster_bin_dir)
cache_dir=$(dirname "$bin_dir")
if [[ -f "$cache_dir/.complete" ]]; then
  echo "$bin_dir"
  exit 0
fi

mkdir -p "${VIVIFIED_CACHE:-$HOME/.cache/vivified}"
# One build at a time (make and a pytest session may both ask for it).
exec 9>"${VIVIFIED_CACHE:-$HOME/.cache/vivified}/.build.lock"
flock 9
if [[ -f "$cache_dir/.complete" ]]; then
  echo "$bin_dir"
  exit 0
fi

tmp="$cache_dir.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp/bin"
trap 'rm -rf "$tmp"' EXIT

build() {  # build MODULE_DIR LDFLAGS PACKAGE...
  local mod=$1 ldflags=$2
  shift 2
  echo ">> building $* ($(date +%T))" >&2
  # One `go build` per module so packages shared by its binaries compile once.
  (cd "$CLUSTER_HACK_DIR/$mod" &&
    go build -buildvcs=false -trimpath -ldflags "$ldflags" -o "$tmp/bin/" "$@") >&2
}

start=$SECONDS
build k8s "$k8s_ldflags" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl \
  k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy
build etcd "-s -w" .
build kwok "$kwok_ldflags" sigs.k8s.io/kwok/cmd/kwok
build helm "$helm_ldflags" helm.sh/helm/v3/cmd/helm
build coredns "$coredns_ldflags" . ./pause
build kube-router "$kube_router_ldflags" github.com/cloudnativelabs/kube-router/v2/cmd/kube-router
echo ">> built in $((SECONDS - start))s" >&2

touch "$tmp/.complete"
rm -rf "$cache_dir"
mv "$tmp" "$cache_dir"
trap - EXIT
echo "$bin_dir"
