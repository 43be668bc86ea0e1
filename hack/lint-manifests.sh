#!/usr/bin/env bash
# Offline validation of everything we ship to a cluster (called by `make lint`):
#   helm lint --strict of the chart with its default values, namespaced scoping, and
#   every optional feature on; kubeconform on the rendered chart (the same three
#   value sets), on `kubectl kustomize manifests/` and manifests/examples/, and on the
#   example ScaleTests. Schemas are local files only (docs/decisions/0027):
#   hack/schemas/kubernetes/ (built-in kinds, from the pinned kube-apiserver's OpenAPI)
#   and hack/schemas/crds/ (ours, generated from the CRDs by hack/generate.py).
#   ServiceMonitor and PrometheusRule (Prometheus Operator CRDs) have no local schema
#   and are skipped by kubeconform: tests/unit/test_chart_metrics.py checks their metric
#   names against the operator's registry instead.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
chart=helm/backlog-operator
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

namespaced=(--set 'watchNamespaces={uploads,batch}')
everything=(--set serviceMonitor.enabled=true --set prometheusRule.enabled=true
  --set rbac.scaleTestChaos=true --set networkPolicy.enabled=true --set 'networkPolicy.apiServerCIDRs={10.0.0.1/32}'
  --set image.digest=sha256:0000000000000000000000000000000000000000000000000000000000000000)

echo ">> helm lint"
helm lint --strict --quiet "$chart"
helm lint --strict --quiet "$chart" "${namespaced[@]}"
helm lint --strict --quiet "$chart" "${everything[@]}"

echo ">> render"
kube_version=$(sed 's/^v//' hack/schemas/kubernetes/VERSION)
helm template backlog-operator "$chart" -n backlog-operator --kube-version "$kube_version" --include-crds >"$out/chart-default.yaml"
helm template backlog-operator "$chart" -n backlog-operator --kube-version "$kube_version" "${namespaced[@]}" >"$out/chart-namespaced.yaml"
helm template backlog-operator "$chart" -n backlog-operator --kube-version "$kube_version" "${everything[@]}" >"$out/chart-everything.yaml"
kubectl kustomize manifests/ >"$out/kustomize-operator.yaml"
kubectl kustomize manifests/examples/ >"$out/kustomize-examples.yaml"
for f in manifests/examples/scaletests/*.yaml; do echo "---"; cat "$f"; done >"$out/examples-scaletests.yaml"

echo ">> kubeconform"
kubeconform -strict -summary -kubernetes-version "$kube_version" \
  -schema-location "$root/hack/schemas/kubernetes/{{.ResourceKind}}{{.KindSuffix}}.json" \
  -schema-location "$root/hack/schemas/crds/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json" \
  -skip ServiceMonitor,PrometheusRule \
  "$out"/*.yaml
