# backlog-operator developer entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/.local/bin:$(PATH)
# devcluster (hack/devcluster) is a dev tool, not installed into the venv: put hack/ on the path.
export PYTHONPATH := $(CURDIR)/hack$(if $(PYTHONPATH),:$(PYTHONPATH))

help: ## List every target with one line each
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-18s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,report]'
	@touch $@

install: $(VENV)/.installed ## Create .venv with the package and dev tools (idempotent)

tools: ## Build the pinned control plane and tools into the cache (first time takes minutes)
	hack/build-tools.sh

lint: install ## ruff, mypy, import layers, generated-file drift, hadolint, helm lint, kubeconform, actionlint
	$(VENV)/bin/ruff check operator hack tests
	$(VENV)/bin/ruff format --check operator hack tests
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(PY) hack/generate.py --check
	$(VENV)/bin/hadolint Dockerfile
	hack/build-tools.sh kubectl helm kubeconform actionlint
	hack/lint-manifests.sh
	actionlint

test: install tools ## Unit, integration and e2e tests (starts its own cluster and PostgreSQL)
	$(VENV)/bin/pytest tests/unit tests/integration tests/e2e

test-unit: install ## Unit tests only (pure code, fast)
	$(VENV)/bin/pytest tests/unit

bench: install tools ## Benchmarks; JSON under bench/results/
	$(PY) -m pip install --quiet -e '.[dev,report,bench]'
	$(VENV)/bin/pytest tests/bench -p no:cacheprovider -o testpaths=tests/bench -s

cluster-up: install tools ## Start the local control plane + process node; writes .local/kubeconfig
	$(PY) -m devcluster up

cluster-down: install ## Stop the local control plane started by cluster-up
	$(PY) -m devcluster down

db-up: install ## Start a persistent local PostgreSQL; writes its DSN to .local/dsn
	$(PY) -m devcluster db-up

db-down: install ## Stop the local PostgreSQL started by db-up
	$(PY) -m devcluster db-down

demo: install tools ## The main job end to end (README); KEEP=1 keeps it running, DEMO_PROFILE=short
	$(PY) -m demo


# --- packaging: image, chart, kind (issue 7). docker/kind targets need a Docker engine. ---
IMAGE ?= backlog-operator:dev
KIND_CLUSTER ?= backlog-operator
RELEASE_NS ?= backlog-operator
KIND ?= kind
DOCKER ?= docker
# Extra `helm upgrade --install` flags for `deploy`; e2e-kind adds the opt-in chaos RBAC.
HELM_ARGS ?=
E2E_HELM_ARGS := --set rbac.scaleTestChaos=true

generate: install ## Regenerate CRD copies, kubeconform schemas, chart RBAC rules, README CRD reference
	$(PY) hack/generate.py

check-generated: install ## Fail if a generated file differs from its source (part of lint)
	$(PY) hack/generate.py --check

docker-build: ## Build the image (IMAGE=backlog-operator:dev); needs Docker
	$(DOCKER) build -t $(IMAGE) .

kind-up: ## Create a kind cluster (KIND_CLUSTER=backlog-operator); needs Docker and kind
	@mkdir -p .local
	$(KIND) get clusters | grep -qx '$(KIND_CLUSTER)' || $(KIND) create cluster --name $(KIND_CLUSTER) --wait 180s
	$(KIND) export kubeconfig --name $(KIND_CLUSTER) --kubeconfig .local/kind-kubeconfig

kind-load: ## Load IMAGE into the kind cluster's nodes
	$(KIND) load docker-image $(IMAGE) --name $(KIND_CLUSTER)

deploy: ## helm upgrade --install the chart with IMAGE into the current kube context
	helm upgrade --install backlog-operator helm/backlog-operator -n $(RELEASE_NS) --create-namespace \
	  --set image.repository=$(firstword $(subst :, ,$(IMAGE))) --set image.tag=$(lastword $(subst :, ,$(IMAGE))) \
	  --set image.pullPolicy=IfNotPresent $(HELM_ARGS) --wait --timeout 5m

undeploy: ## helm uninstall the chart (CRDs and your resources stay: README "Uninstall")
	helm uninstall backlog-operator -n $(RELEASE_NS) --wait

e2e-kind: install kind-up docker-build kind-load ## e2e suite on kind: PostgreSQL + chart in the cluster, then pytest tests/e2e
	KUBECONFIG=.local/kind-kubeconfig kubectl apply -f manifests/examples/namespace.yaml -f manifests/examples/postgresql.yaml
	KUBECONFIG=.local/kind-kubeconfig kubectl -n uploads rollout status statefulset/postgresql --timeout 180s
	KUBECONFIG=.local/kind-kubeconfig $(MAKE) --no-print-directory deploy HELM_ARGS="$(E2E_HELM_ARGS)"
	KUBECONFIG=$(CURDIR)/.local/kind-kubeconfig E2E_IMAGE=$(IMAGE) hack/e2e-kind-pytest.sh tests/e2e

clean: ## Remove the venv and local state (not the tool cache)
	-$(PY) -m devcluster down 2>/dev/null
	-$(PY) -m devcluster db-down 2>/dev/null
	rm -rf $(VENV) .local .mypy_cache .ruff_cache .pytest_cache

.PHONY: help install tools lint test test-unit bench cluster-up cluster-down db-up db-down demo clean
.PHONY: generate check-generated docker-build kind-up kind-load deploy undeploy e2e-kind
