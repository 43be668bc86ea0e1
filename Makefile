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

lint: install ## ruff, mypy and the import-layer contract
	$(VENV)/bin/ruff check operator hack tests
	$(VENV)/bin/ruff format --check operator hack tests
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

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

demo: install tools ## Run the main job end to end (see README)
	@echo "make demo is not built yet (issue 8): run 'make test' for now"; exit 1

clean: ## Remove the venv and local state (not the tool cache)
	-$(PY) -m devcluster down 2>/dev/null
	-$(PY) -m devcluster db-down 2>/dev/null
	rm -rf $(VENV) .local .mypy_cache .ruff_cache .pytest_cache

.PHONY: help install tools lint test test-unit bench cluster-up cluster-down db-up db-down demo clean
