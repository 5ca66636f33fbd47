# The commands users and CI run. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: help install lint typecheck unit test demo crds clean

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==25.3
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed ## Create .venv with the operator and its dev tools

lint: install ## ruff
	ruff check operator tests bench plugins
	ruff format --check operator tests bench plugins

typecheck: install ## mypy --strict on the package
	mypy

unit: install ## Unit tests only (no cluster)
	pytest tests/unit

crds: install ## Regenerate crds/ from the pydantic models
	vivified crd > crds/vivified.dev_vivifiedplugins.yaml

test: lint typecheck ## Everything CI runs: lint, types, unit, integration and e2e tests
	pytest tests

demo: install cluster-up ## The main job end to end on the local cluster, narrated
	hack/demo.sh

# The local test cluster (docs/development.md): real kube-apiserver, etcd,
# controller-manager and scheduler built from Go modules, kwok nodes, loopback only.
.PHONY: cluster-bins cluster-up cluster-down

cluster-bins: ## Build or reuse the cluster's binaries (kube-*, kubectl, etcd, kwok, helm)
	hack/cluster/build.sh

cluster-up: install ## Start the local cluster (idempotent); kubeconfig: .cluster/kubeconfig
	$(PY) hack/cluster/cluster.py up

cluster-down: install ## Stop every process of the local cluster and remove its state
	$(PY) hack/cluster/cluster.py down

clean: ## Remove the venv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
