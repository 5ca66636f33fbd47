"""The Kubernetes cluster that integration and e2e tests run against.

Tests that need a cluster carry `@pytest.mark.cluster` and use these fixtures:

- `kube_cluster` (session): the cluster in use, a `KubeCluster`.
  * `$KUBECONFIG` set: that cluster (kind or any other); nothing is started or stopped.
  * otherwise the local test cluster (`hack/cluster/cluster.py`, as `make cluster-up`):
    reused if it is already up (and then left running), else started for this session
    and stopped at its end. `VIVIFIED_KEEP_CLUSTER=1` leaves a started cluster running.
- `kubeconfig_path` (session): `Path` of the admin kubeconfig.
- `k8s_api` (session): a `kubernetes.client.ApiClient` for it.
- `namespace` (function): a fresh namespace for one test (its `default` ServiceAccount
  exists already), deleted afterwards.
- `kubectl`, `helm` (session): `Path`s of the pinned binaries built by `make cluster-bins`
  (shell out with `--kubeconfig`, see `kubeconfig_path`).
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from cluster_support import (
    BIN_DIR_SCRIPT,
    BUILD_SCRIPT,
    CLUSTER_SCRIPT,
    LOCAL_STATE,
    KubeCluster,
)
from nats_support import NatsServer, nats_server_binary


def _bin_dir() -> Path:
    return Path(subprocess.check_output([BIN_DIR_SCRIPT], text=True).strip())


def _binaries_built() -> bool:
    return (_bin_dir().parent / ".complete").exists()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Builds missing binaries before any test runs, so no test timeout covers a build.

    CI runs `make cluster-bins` first; this is for a developer's first `pytest`.
    """
    needs_cluster = any(item.get_closest_marker("cluster") for item in session.items)
    if needs_cluster and not _binaries_built():
        print("\nbuilding the test cluster's binaries (once; see docs/development.md)")
        subprocess.run([BUILD_SCRIPT], check=True, stdout=subprocess.DEVNULL)
    needs_node = any(item.get_closest_marker("real_node") for item in session.items)
    if needs_node and not os.environ.get("KUBECONFIG") and _cluster("status").returncode != 0:
        # The real node's packages and images (cached; a miss builds them, minutes).
        subprocess.run([sys.executable, str(CLUSTER_SCRIPT), "prepare"], check=True)


def _cluster(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CLUSTER_SCRIPT), *args, "--dir", str(LOCAL_STATE)],
        text=True,
        capture_output=True,
        check=False,
    )


@pytest.fixture(scope="session")
def kube_cluster() -> Iterator[KubeCluster]:
    if kubeconfig := os.environ.get("KUBECONFIG"):
        yield KubeCluster(kubeconfig=Path(kubeconfig), local=False)
        return
    was_up = _cluster("status").returncode == 0
    if not was_up:
        result = _cluster("up")
        if result.returncode != 0:
            pytest.fail(f"could not start the local cluster:\n{result.stderr}")
    yield KubeCluster(kubeconfig=LOCAL_STATE / "kubeconfig", local=True, state_dir=LOCAL_STATE)
    if not was_up and os.environ.get("VIVIFIED_KEEP_CLUSTER") != "1":
        result = _cluster("down")
        assert result.returncode == 0, f"cluster down failed:\n{result.stderr}"


@pytest.fixture(scope="session")
def kubeconfig_path(kube_cluster: KubeCluster) -> Path:
    return kube_cluster.kubeconfig


@pytest.fixture(scope="session")
def k8s_api(kubeconfig_path: Path) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(kubeconfig_path))
    yield api
    api.close()


@pytest.fixture
def namespace(k8s_api: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    core = client.CoreV1Api(k8s_api)
    # Named after the test, so a leftover object tells whose it is.
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{slug}-{secrets.token_hex(3)}"
    core.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(name=name, labels={"vivified.dev/test": "true"})
        )
    )
    # Pods are rejected until the ServiceAccount controller made `default`.
    deadline = time.monotonic() + 60
    while True:
        try:
            core.read_namespaced_service_account("default", name)
            break
        except ApiException as error:
            if error.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    yield name
    # Deletion finishes in the background (namespace controller); not waited for. A test may
    # have deleted (or be deleting) the namespace itself.
    try:
        core.delete_namespace(name)
    except ApiException as error:
        if error.status != 404:
            raise


@pytest.fixture(scope="session")
def kubectl() -> Path:
    return _built_bin_dir() / "kubectl"


@pytest.fixture(scope="session")
def helm() -> Path:
    return _built_bin_dir() / "helm"


def _built_bin_dir() -> Path:
    if not _binaries_built():  # only when no cluster test was collected
        subprocess.run([BUILD_SCRIPT], check=True, stdout=subprocess.DEVNULL)
    return _bin_dir()


@pytest.fixture(scope="session")
def nats_server_bin() -> Path:
    """The pinned nats-server binary (built once by hack/cluster/nats/build.sh)."""
    return nats_server_binary()


@pytest.fixture
def nats_server(nats_server_bin: Path, tmp_path: Path) -> Iterator[NatsServer]:
    """A fresh nats-server on loopback with JetStream (file storage in tmp_path); `.url`."""
    server = NatsServer(nats_server_bin, tmp_path / "nats")
    server.start()
    yield server
    server.stop()
