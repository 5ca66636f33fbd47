# The commands users and CI run. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)
# Playwright drives Debian's chromium (hack/ui/chromium.sh); it never downloads a browser.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1
PY_SOURCES := $(wildcard operator sdk tests bench plugins hack)

.PHONY: help install lint typecheck unit test demo crds clean ui-browser

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# The SDK (sdk/python) comes from this repository: the operator depends on it, same version.
$(VENV)/.installed: pyproject.toml sdk/python/pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==25.3
	$(PY) -m pip install --quiet -e ./sdk/python -e '.[dev]'
	touch $@

install: $(VENV)/.installed ## Create .venv with the operator and its dev tools

lint: install lint-docker ## ruff, hadolint
	ruff check $(PY_SOURCES)
	ruff format --check $(PY_SOURCES)

typecheck: install ## mypy --strict on the package
	mypy

unit: install ## Unit tests only (no cluster)
	pytest tests/unit sdk/python/tests

crds: install ## Regenerate crds/ from the pydantic models
	vivified crd > crds/vivified.dev_vivifiedplugins.yaml

test: lint typecheck ui-browser ## Everything CI runs: lint, types, unit, integration and e2e tests
	pytest --durations=15 tests sdk/python/tests

demo: install cluster-up ## The main job end to end on the local cluster, narrated
	hack/demo.sh

# The local test cluster (docs/development.md): real kube-apiserver, etcd,
# controller-manager and scheduler built from Go modules, kwok nodes, loopback only.
.PHONY: cluster-bins cluster-images cluster-up cluster-down

cluster-bins: ## Build or reuse the cluster's binaries (kube-*, kubelet, kubectl, etcd, kwok, helm, ...)
	hack/cluster/build.sh

cluster-images: install cluster-bins ## Real node: install its Debian packages, build its images (cached)
	$(PY) hack/cluster/cluster.py prepare

cluster-up: install ## Start the local cluster with its real node (idempotent); .cluster/kubeconfig
	$(PY) hack/cluster/cluster.py up

cluster-down: install ## Stop every process of the local cluster and remove its state
	$(PY) hack/cluster/cluster.py down

ui-browser: ## Install Debian's chromium for the Admin UI's browser tests (once; needs root)
	hack/ui/chromium.sh >/dev/null

clean: ## Remove the venv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

# Shipping (docs/install.md): the operator image, the Helm chart, and the kind path for users
# with Docker. No image can be built on the project's own machines (no Docker daemon).
.PHONY: lint-docker chart-lint e2e-kind e2e-kind-down

KIND ?= kind
DOCKER ?= docker
KIND_CLUSTER ?= vivified-e2e
KIND_KUBECONFIG ?= $(CURDIR)/.cache/kind-kubeconfig
KIND_RELEASE_NAMESPACE ?= vivified-kind
KIND_PLUGIN_NAMESPACE ?= vivified-kind-plugins
IMAGE_REPOSITORY ?= vivified-operator
IMAGE_TAG ?= e2e
PLUGIN_IMAGE ?= vivified-user-management:e2e

lint-docker: install ## hadolint the Dockerfile (offline: the binary comes in a wheel)
	hadolint Dockerfile

chart-lint: cluster-bins ## helm lint --strict the chart (pinned helm), default and HA values
	"$$(hack/cluster/bin-dir)/helm" lint --strict charts/vivified
	"$$(hack/cluster/bin-dir)/helm" lint --strict charts/vivified \
	  --set 'watchNamespaces={team-a}' --set peering.enabled=true --set replicaCount=2

e2e-kind: install cluster-bins ## With Docker and kind: build the image, helm install it on kind, run tests/e2e
	@command -v $(DOCKER) >/dev/null || { echo "e2e-kind needs docker"; exit 2; }
	@command -v $(KIND) >/dev/null || { echo "e2e-kind needs kind (https://kind.sigs.k8s.io)"; exit 2; }
	mkdir -p $(dir $(KIND_KUBECONFIG))
	$(KIND) get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)' || \
	  $(KIND) create cluster --name $(KIND_CLUSTER) --kubeconfig $(KIND_KUBECONFIG) --wait 180s
	$(KIND) export kubeconfig --name $(KIND_CLUSTER) --kubeconfig $(KIND_KUBECONFIG)
	$(DOCKER) build -t $(IMAGE_REPOSITORY):$(IMAGE_TAG) .
	$(DOCKER) build -t $(PLUGIN_IMAGE) -f plugins/user-management/Dockerfile .
	$(KIND) load docker-image --name $(KIND_CLUSTER) $(IMAGE_REPOSITORY):$(IMAGE_TAG) $(PLUGIN_IMAGE)
	BIN="$$(hack/cluster/bin-dir)"; set -e; \
	"$$BIN/kubectl" --kubeconfig $(KIND_KUBECONFIG) create namespace $(KIND_PLUGIN_NAMESPACE) \
	  --dry-run=client -o yaml | "$$BIN/kubectl" --kubeconfig $(KIND_KUBECONFIG) apply -f -; \
	"$$BIN/helm" --kubeconfig $(KIND_KUBECONFIG) upgrade --install vivified charts/vivified \
	  --namespace $(KIND_RELEASE_NAMESPACE) --create-namespace \
	  --set image.repository=$(IMAGE_REPOSITORY) --set image.tag=$(IMAGE_TAG) \
	  --set image.pullPolicy=Never --set 'watchNamespaces={$(KIND_PLUGIN_NAMESPACE)}' \
	  --wait --timeout 5m
	KUBECONFIG=$(KIND_KUBECONFIG) \
	VIVIFIED_E2E_CHART_RELEASE=$(KIND_RELEASE_NAMESPACE)/vivified \
	VIVIFIED_E2E_CHART_NAMESPACE=$(KIND_PLUGIN_NAMESPACE) \
	VIVIFIED_E2E_PLUGIN_IMAGE=$(PLUGIN_IMAGE) \
	  pytest tests/e2e

e2e-kind-down: ## Delete the kind cluster made by e2e-kind
	$(KIND) delete cluster --name $(KIND_CLUSTER)
	rm -f $(KIND_KUBECONFIG)
