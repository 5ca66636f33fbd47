# shellcheck shell=bash
# Pinned versions of the test ground's binaries, and where their build is cached.
# Sourced by build.sh and bin-dir; the Go modules under k8s/ etcd/ kwok/ helm/ coredns/ kube-router/
# pin the same versions in their go.mod files.

K8S_VERSION=v1.36.3     # k8s.io/kubernetes; its staging modules are v0.36.3
ETCD_VERSION=v3.6.16    # go.etcd.io/etcd/server/v3
KWOK_VERSION=v0.8.0     # sigs.k8s.io/kwok
HELM_VERSION=v3.21.4    # helm.sh/helm/v3
COREDNS_VERSION=v1.15.0          # github.com/coredns/coredns (the real node's cluster DNS)
KUBE_ROUTER_VERSION=v2.1.0       # github.com/cloudnativelabs/kube-router/v2 (its firewall only)

CLUSTER_HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# The cache key covers everything that changes the binaries: the versions, the
# module files (go.sum pins every dependency) and this file (build flags).
# Outside the repo, so `git clean` and fresh clones (CI) reuse the build.
cluster_bin_dir() {
  local key
  key=$(cd "$CLUSTER_HACK_DIR" &&
    cat versions.sh build.sh ./*/go.mod ./*/go.sum ./*/*.go ./*/*/*.go | sha256sum | cut -c1-12)
  echo "${VIVIFIED_CACHE:-$HOME/.cache/vivified}/k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}-kwok-${KWOK_VERSION}-helm-${HELM_VERSION}-${key}/bin"
}

# Build flags (here so that changing them changes the cache key).
export CGO_ENABLED=0  # static binaries: no libc dependency
# Static, stripped, path-free binaries; -X stamps the versions that `kubectl
# version`, /version and helm's kubeVersion checks report.
k8s_stamp() {
  local pkg=$1
  echo "-X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(cut -d. -f2 <<<"$K8S_VERSION")" \
    "-X $pkg.gitTreeState=clean"
}
k8s_ldflags="-s -w $(k8s_stamp k8s.io/component-base/version) $(k8s_stamp k8s.io/client-go/pkg/version)"
kube_minor=$(cut -d. -f2 <<<"$K8S_VERSION")
helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
helm_ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  helm_ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$kube_minor"
done
kwok_ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}"
kwok_ldflags+=" -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${K8S_VERSION#v}"
kube_router_ldflags="-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION"
coredns_ldflags="-s -w"
