"""Fixtures for end-to-end tests: the CRD installed, and operators run as real processes.

Each test that needs an operator starts its own, watching only the test's namespaces, so tests
cannot disturb each other and a restart is just another process.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException
from tests.e2e.kube import GROUP, PLURAL, REPO, VERSION, Cluster, wait_for
from tests.e2e.real_node import (
    RealNode,
    core_test_env_helm_args,
    create_real_namespace,
    delete_namespace,
    find_real_node,
    run_helm,
)

from cluster_support import KubeCluster

CRD_FILE = REPO / "crds" / "vivified.dev_vivifiedplugins.yaml"
OPERATOR_NAMESPACE = "vivified-system"


@pytest.fixture(scope="session")
def crd_installed(k8s_api: client.ApiClient) -> None:
    """The VivifiedPlugin CRD from crds/, created or replaced, and Established."""
    crd = yaml.safe_load(CRD_FILE.read_text())
    ext = client.ApiextensionsV1Api(k8s_api)
    name = crd["metadata"]["name"]
    try:
        current = ext.read_custom_resource_definition(name)
        crd["metadata"]["resourceVersion"] = current.metadata.resource_version
        ext.replace_custom_resource_definition(name, crd)
    except ApiException as error:
        if error.status != 404:
            raise
        ext.create_custom_resource_definition(crd)

    def established() -> bool:
        conditions = ext.read_custom_resource_definition(name).status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    wait_for("CRD Established", established, timeout=30)


@pytest.fixture(scope="session")
def operator_namespace(k8s_api: client.ApiClient) -> str:
    core = client.CoreV1Api(k8s_api)
    try:
        core.create_namespace({"metadata": {"name": OPERATOR_NAMESPACE}})
    except ApiException as error:
        if error.status != 409:
            raise
    return OPERATOR_NAMESPACE


@pytest.fixture
def cluster(k8s_api: client.ApiClient, crd_installed: None) -> Cluster:
    return Cluster(k8s_api)


@dataclass
class OperatorProcess:
    """A running ``vivified operator`` and its log."""

    process: subprocess.Popen[bytes]
    log: Path
    namespaces: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_log(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        regex = re.compile(pattern)

        def found() -> re.Match[str] | None:
            if self.process.poll() is not None:
                raise AssertionError(f"operator exited early:\n{self.text()[-4000:]}")
            return regex.search(self.text())

        return wait_for(f"operator log /{pattern}/", found, timeout=timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def writes(self) -> dict[str, int]:
        """The operator's own count of write requests, logged when it stops."""
        match = re.search(r"write requests: (\{.*\})", self.text())
        assert match, "operator did not log its write summary"
        return dict(yaml.safe_load(match.group(1)))


StartOperator = Callable[..., OperatorProcess]


@pytest.fixture
def start_operator(
    kubeconfig_path: Path,
    operator_namespace: str,
    crd_installed: None,
    tmp_path: Path,
    k8s_api: client.ApiClient,
) -> Iterator[StartOperator]:
    """Start ``vivified operator --namespace NS ...``; stopped at the end of the test."""
    started: list[OperatorProcess] = []

    def start(*namespaces: str, **settings: Any) -> OperatorProcess:
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig_path),
            "VIVIFIED_OPERATOR_NAMESPACE": operator_namespace,
            "PYTHONUNBUFFERED": "1",
            # Test-ground discipline: probe only loopback addresses a test names (never Service
            # DNS or kwok pod IPs). The operator listens for no plugin traffic at all.
            "VIVIFIED_PROBE_MODE": "overrides",
            **{f"VIVIFIED_{k.upper()}": str(v) for k, v in settings.items()},
        }
        log = tmp_path / f"operator-{len(started)}.log"
        args = [sys.executable, "-m", "vivified", "operator", "--log-level", "debug"]
        for namespace in namespaces:
            args += ["--namespace", namespace]
        with log.open("wb") as sink:
            process = subprocess.Popen(
                args, env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=REPO
            )
        operator = OperatorProcess(process, log, namespaces, env)
        started.append(operator)
        operator.wait_log(r"caches synced", timeout=60)
        return operator

    yield start
    api = client.CustomObjectsApi(k8s_api)
    for operator in started:
        if operator.process.poll() is None:
            # While it still runs, the operator removes its finalizers from deleted plugins;
            # without that, the test's namespace would hang in Terminating forever.
            for namespace in operator.namespaces:
                delete_plugins(api, namespace)
        operator.stop()
    for operator in started:
        for namespace in operator.namespaces:
            strip_finalizers(api, namespace)


def delete_plugins(api: client.CustomObjectsApi, namespace: str, timeout: float = 15.0) -> None:
    with contextlib.suppress(ApiException):
        api.delete_collection_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]:
            return
        time.sleep(0.2)


def strip_finalizers(api: client.CustomObjectsApi, namespace: str) -> None:
    """Last resort for plugins left behind (e.g. the operator died): let the namespace go."""
    for item in api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]:
        if item["metadata"].get("finalizers"):
            with contextlib.suppress(ApiException):
                api.patch_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    namespace,
                    PLURAL,
                    item["metadata"]["name"],
                    {"metadata": {"finalizers": None}},
                )


@pytest.fixture
def second_namespace(k8s_api: client.ApiClient, namespace: str) -> Iterator[str]:
    """Another fresh namespace, for tests that span two."""
    core = client.CoreV1Api(k8s_api)
    name = f"{namespace}-b"[:63]
    core.create_namespace({"metadata": {"name": name}})
    yield name
    with contextlib.suppress(ApiException):
        core.delete_namespace(name)


# -- the real-node tier (tests/e2e/real_node.py, docs/development.md) -----------------------------


@pytest.fixture(scope="session")
def real_node_env(kube_cluster: KubeCluster, k8s_api: client.ApiClient, kubectl: Path) -> RealNode:
    """The cluster's real node; skips without one (fails in CI)."""
    return find_real_node(kube_cluster, k8s_api, kubectl)


@dataclass
class RealRelease:
    node: RealNode
    namespace: str
    plugins_namespace: str


REAL_RELEASE_NS = "viv-real-system"
REAL_PLUGINS_NS = "viv-real-plugins"


@pytest.fixture(scope="session")
def real_release(
    real_node_env: RealNode, k8s_api: client.ApiClient, helm: Path, crd_installed: None
) -> Iterator[RealRelease]:
    """The chart installed for real on the real node: the operator image, the chart's RBAC."""
    node = real_node_env

    h = functools.partial(run_helm, helm, node.kubeconfig)

    h("uninstall", "vivified", "-n", REAL_RELEASE_NS, "--wait", check=False)  # a crashed run
    for name in (REAL_RELEASE_NS, REAL_PLUGINS_NS):
        delete_namespace(k8s_api, name, wait=True)
        create_real_namespace(k8s_api, name, {})
    repository, tag = node.images["operator"].rsplit(":", 1)
    try:
        h(
            "install", "vivified", str(REPO / "charts" / "vivified"),
            "-n", REAL_RELEASE_NS,
            "--set", f"image.repository={repository}",
            "--set", f"image.tag={tag}",
            "--set", "image.pullPolicy=Never",
            "--set", f"watchNamespaces={{{REAL_PLUGINS_NS}}}",
            "--set", "operator.settings.probeMode=direct",
            # TEST ONLY: the proxy lane may reach the test hosts (real_node.CORE_TEST_ENV).
            *core_test_env_helm_args(),
            "--wait", "--timeout", "5m",
        )  # fmt: skip
        yield RealRelease(node, REAL_RELEASE_NS, REAL_PLUGINS_NS)
    finally:
        api = client.CustomObjectsApi(k8s_api)
        with contextlib.suppress(ApiException):
            delete_plugins(api, REAL_PLUGINS_NS, timeout=60)
        h("uninstall", "vivified", "-n", REAL_RELEASE_NS, "--wait", "--timeout", "2m", check=False)
        for name in (REAL_PLUGINS_NS, REAL_RELEASE_NS):
            delete_namespace(k8s_api, name)
