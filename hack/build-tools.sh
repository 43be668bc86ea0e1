#!/usr/bin/env bash
# Builds the pinned control plane (etcd, kube-apiserver, kube-controller-manager,
# kubectl) and tools (helm, kubeconform, actionlint) from Go modules into a
# cache keyed by version, and links them into .local/bin. A binary already in
# the cache is not rebuilt. Usage: hack/build-tools.sh [name ...]
set -euo pipefail
hack=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$hack")
# shellcheck disable=SC1091
source "$hack/versions.env"
cache=${BACKLOG_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/backlog-operator/tools}
bindir="$root/.local/bin"
mkdir -p "$cache" "$bindir"
export CGO_ENABLED=0 GOFLAGS=-trimpath

k8s_minor=$(echo "$K8S_VERSION" | cut -d. -f2)
k8s_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=${K8S_VERSION} \
-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${k8s_minor} \
-X k8s.io/component-base/version.gitTreeState=clean \
-X k8s.io/client-go/pkg/version.gitVersion=${K8S_VERSION} \
-X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=${k8s_minor}"

# build NAME VERSION DIR PACKAGE [LDFLAGS]: go build PACKAGE inside module DIR.
build() {
  local name=$1 version=$2 dir=$3 pkg=$4 ldflags=${5:-"-s -w"}
  local out="$cache/$name-$version/$name"
  if [ ! -x "$out" ]; then
    echo ">> building $name $version (first time only; this takes minutes)" >&2
    local start=$SECONDS
    (cd "$dir" && go build -ldflags "$ldflags" -o "$out.tmp" "$pkg")
    mv "$out.tmp" "$out"
    echo ">> built $name in $((SECONDS - start))s -> $out" >&2
  fi
  ln -sf "$out" "$bindir/$name"
}

# install NAME VERSION MODULE_PATH: `go install` for tools without replace directives.
install_tool() {
  local name=$1 version=$2 pkg=$3
  local out="$cache/$name-$version/$name"
  if [ ! -x "$out" ]; then
    echo ">> building $name $version" >&2
    GOBIN="$cache/$name-$version" go install -ldflags "-s -w" "$pkg@$version"
  fi
  ln -sf "$out" "$bindir/$name"
}

wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(etcd kube-apiserver kube-controller-manager kubectl helm kubeconform actionlint)
for name in "${wanted[@]}"; do
  case $name in
    etcd) build etcd "$ETCD_VERSION" "$hack/etcd" . ;;
    kube-apiserver|kube-controller-manager|kubectl)
      build "$name" "$K8S_VERSION" "$hack/controlplane" "k8s.io/kubernetes/cmd/$name" "$k8s_ldflags" ;;
    helm) install_tool helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm ;;
    kubeconform) install_tool kubeconform "$KUBECONFORM_VERSION" github.com/yannh/kubeconform/cmd/kubeconform ;;
    actionlint) install_tool actionlint "$ACTIONLINT_VERSION" github.com/rhysd/actionlint/cmd/actionlint ;;
    *) echo "unknown tool: $name" >&2; exit 2 ;;
  esac
done
