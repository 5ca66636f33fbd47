"""The real-node tier: real containers from our own images, real probes, NetworkPolicy enforced.

Runs on the local test cluster's real node (hack/cluster/node.py); skipped when the cluster
has none, except in CI. The chart is installed for real (`real_release`): the operator and the
core (2 replicas) run as pods from the image built here, each under its own ServiceAccount, on
the real node; the webhook is reached through its Service. user-management runs from its
image; the kubelet runs its probes and the operator probes it through its Service (probe mode
`direct`). Its NetworkPolicy lets it reach DNS and the core, and nothing else.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from cryptography import x509
from kubernetes import client
from tests.e2e.kube import EXAMPLES, load_example, wait_for
from tests.e2e.real_node import (
    NODE_NAME,
    TEST_HOSTS,
    RealNode,
    connect_results,
    container_pid,
    create_real_namespace,
    delete_namespace,
    neighbour_pod,
    pod_ip,
    pods,
    real_node,
    running_pod,
)

from vivified_sdk import contract

# Generous: the first test also pays for the chart's install (images start on a busy machine).
pytestmark = [pytest.mark.cluster, pytest.mark.real_node, pytest.mark.timeout(900)]

PLUGIN = "user-management"
OPERATOR_SELECTOR = "app.kubernetes.io/instance=vivified,app.kubernetes.io/component=operator"


@pytest.fixture(scope="module")
def plugin(real_release: Any, k8s_api: client.ApiClient) -> Iterator[dict[str, Any]]:
    """user-management from its image, managed by the in-cluster operator; fast health checks."""
    node: RealNode = real_release.node
    namespace = real_release.plugins_namespace
    body = load_example("user-management.yaml")
    body["spec"]["image"] = node.images["user-management"]
    body["spec"]["manifest"]["health_check"].update(
        {"interval_seconds": 2, "timeout_seconds": 1, "failure_threshold": 3}
    )
    node.k("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(body))
    node.k("wait", f"vp/{PLUGIN}", "-n", namespace, "--for=condition=Ready", "--timeout=240s")
    pod = running_pod(node, namespace, f"vivified.dev/plugin={PLUGIN}")
    yield {"namespace": namespace, "pod": pod}
    node.k("delete", f"vp/{PLUGIN}", "-n", namespace, "--timeout=60s", check=False)


@pytest.fixture(scope="module")
def outsider(real_release: Any, k8s_api: client.ApiClient) -> Iterator[dict[str, str]]:
    """A pod on the real node with no NetworkPolicy: the control for every isolation test."""
    node: RealNode = real_release.node
    namespace = f"viv-real-outsider-{os.getpid()}"
    create_real_namespace(k8s_api, namespace, {})
    pod = neighbour_pod(node, namespace, "outsider")
    yield {"namespace": namespace, "pod": pod}
    delete_namespace(k8s_api, namespace)


# -- the node ------------------------------------------------------------------------------------


def test_the_real_node_is_ready_next_to_kwok(
    real_node_env: RealNode, k8s_api: client.ApiClient
) -> None:
    nodes = {n.metadata.name: n for n in client.CoreV1Api(k8s_api).list_node().items}
    real = nodes[NODE_NAME]
    assert real.status.node_info.container_runtime_version.startswith("containerd://")
    assert any(t.key == "vivified.dev/real-node" for t in real.spec.taints or [])
    kwok = [
        n
        for n in nodes.values()
        if (n.metadata.annotations or {}).get("kwok.x-k8s.io/node") == "fake"
    ]
    assert kwok, "the kwok node(s) are still there"
    for n in (real, *kwok):
        assert any(c.type == "Ready" and c.status == "True" for c in n.status.conditions), (
            n.metadata.name
        )
    print(real_node_env.k("get", "nodes", "-o", "wide"))


# -- the chart, for real -------------------------------------------------------------------------


def test_the_operator_runs_from_its_image_under_the_charts_service_account(
    real_release: Any,
) -> None:
    node: RealNode = real_release.node
    (pod,) = pods(node, real_release.namespace, OPERATOR_SELECTOR)
    assert pod["spec"]["nodeName"] == NODE_NAME
    assert pod["spec"]["serviceAccountName"] == "vivified"
    (container,) = pod["status"]["containerStatuses"]
    assert container["ready"] is True
    assert container["containerID"].startswith("containerd://")
    assert container["image"].endswith(node.images["operator"].split("/", 1)[1])


CORE_SELECTOR = "app.kubernetes.io/name=vivified,app.kubernetes.io/component=core"


def test_the_core_runs_from_its_image_under_its_own_service_account(real_release: Any) -> None:
    """Two replicas of `vivified core`, Ready (readiness = /readyz), on the real node."""
    node: RealNode = real_release.node
    core = [p for p in pods(node, real_release.namespace, CORE_SELECTOR)
            if not p["metadata"].get("deletionTimestamp")]  # fmt: skip
    assert len(core) == 2, [p["metadata"]["name"] for p in core]
    for pod in core:
        assert pod["spec"]["nodeName"] == NODE_NAME
        assert pod["spec"]["serviceAccountName"] == "vivified-core"
        (container,) = pod["status"]["containerStatuses"]
        assert container["ready"] is True, container
        assert container["containerID"].startswith("containerd://")
        assert container["image"].endswith(node.images["operator"].split("/", 1)[1])
        assert pod["spec"]["containers"][0]["args"][0] == "core"
    print(node.k("get", "pods", "-n", real_release.namespace, "-o", "wide"))


def test_the_webhook_is_reached_through_its_service(real_release: Any) -> None:
    node: RealNode = real_release.node
    out = node.k(
        "apply", "-n", real_release.plugins_namespace, "-f",
        str(EXAMPLES / "invalid" / "phi-without-controls.yaml"), check=False,
    )  # fmt: skip
    assert 'admission webhook "validate-plugin.vivified.dev" denied the request' in out


# -- a plugin, for real --------------------------------------------------------------------------


def test_user_management_runs_for_real(real_release: Any, plugin: dict[str, Any]) -> None:
    node: RealNode = real_release.node
    (pod,) = pods(node, plugin["namespace"], f"vivified.dev/plugin={PLUGIN}")
    assert pod["spec"]["nodeName"] == NODE_NAME
    (container,) = pod["status"]["containerStatuses"]
    assert container["containerID"].startswith("containerd://")
    assert container["state"].get("running"), container
    print(
        node.k("get", "pods", "-A", "-o", "wide", "--field-selector", f"spec.nodeName={NODE_NAME}")
    )
    print(node.k("get", "pods", "-n", plugin["namespace"], "-o",
                 "custom-columns=NAME:.metadata.name,NODE:.spec.nodeName,IP:.status.podIP,"
                 "CONTAINER:.status.containerStatuses[0].containerID"))  # fmt: skip


def test_a_plugin_pod_is_non_root_read_only_without_capabilities(
    real_release: Any, plugin: dict[str, Any]
) -> None:
    node: RealNode = real_release.node
    seen = node.exec_python(
        plugin["namespace"],
        plugin["pod"],
        """
        import json, os
        lines = open("/proc/self/status").read().splitlines()
        status = dict(line.split(":", 1) for line in lines if ":" in line)
        try:
            open("/root-fs-probe", "w")
            writable = True
        except OSError as e:
            writable = e.strerror
        print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "root_fs": writable,
            "cap_eff": status["CapEff"].strip(), "cap_prm": status["CapPrm"].strip(),
            "cap_bnd": status["CapBnd"].strip(), "no_new_privs": status["NoNewPrivs"].strip()}))
        """,
    )
    assert seen["uid"] != 0
    assert seen["gid"] != 0
    assert seen["root_fs"] == "Read-only file system"
    assert int(seen["cap_eff"], 16) == 0
    assert int(seen["cap_prm"], 16) == 0
    assert int(seen["cap_bnd"], 16) == 0
    assert seen["no_new_privs"] == "1"


def health(node: RealNode, namespace: str) -> str:
    status = json.loads(node.k("get", f"vp/{PLUGIN}", "-n", namespace, "-o", "json")).get(
        "status", {}
    )
    return str(status.get("health", ""))


def app_process(node: RealNode, namespace: str) -> int:
    """Host PID of the plugin container's main process (containerd's task)."""
    (pod,) = [p for p in pods(node, namespace, f"vivified.dev/plugin={PLUGIN}")
              if not p["metadata"].get("deletionTimestamp")]  # fmt: skip
    container_id = pod["status"]["containerStatuses"][0]["containerID"].removeprefix(
        "containerd://"
    )
    return container_pid(node, container_id)


def test_health_goes_degraded_then_unhealthy_when_the_process_fails_and_back(
    real_release: Any, plugin: dict[str, Any]
) -> None:
    node: RealNode = real_release.node
    namespace = plugin["namespace"]
    wait_for("health healthy", lambda: health(node, namespace) == "healthy", timeout=60)
    pid = app_process(node, namespace)
    os.kill(pid, signal.SIGSTOP)  # the process stops answering: probes time out
    seen = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and "unhealthy" not in seen:
            h = health(node, namespace)
            if not seen or seen[-1] != h:
                seen.append(h)
            time.sleep(0.5)
        # The kubelet runs the probes too: the pod is no longer Ready.
        (pod,) = pods(node, namespace, f"vivified.dev/plugin={PLUGIN}")
        ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"]
    finally:
        os.kill(pid, signal.SIGCONT)
    assert "degraded" in seen, seen
    assert "unhealthy" in seen, seen
    assert seen.index("degraded") < seen.index("unhealthy"), seen
    assert ready == "False"
    wait_for("health healthy again", lambda: health(node, namespace) == "healthy", timeout=120)
    # Healthy to the operator's probe is not yet Ready: the kubelet's readiness probe and the
    # Deployment's count follow, and until then the core refuses the plugin's token (401
    # plugin_inactive). The tests after this one need it Active again.
    node.k("wait", f"vp/{PLUGIN}", "-n", namespace, "--for=condition=Ready", "--timeout=120s")


# -- NetworkPolicy, enforced by kube-router ------------------------------------------------------


def isolation_targets(release: Any, neighbour_ip: str) -> dict[str, tuple[str, int]]:
    node: RealNode = release.node
    api_port = json.loads((node.state_dir / "ports.json").read_text())["apiserver"]
    (operator,) = pods(node, release.namespace, OPERATOR_SELECTOR)
    return {
        # On the core's port: only the peer (core pods), not the port, lets a plugin through.
        "another plugin's pod": (neighbour_ip, NEIGHBOUR_PORT),
        # Its liveness endpoint listens on 8080, the core's port, too.
        "the operator's pod": (str(operator["status"]["podIP"]), 8080),
        "the API server (Service)": ("10.96.0.1", 443),
        "the API server (node address)": (real_node.NODE_IP, api_port),
        "the kubelet": (real_node.NODE_IP, 10250),
        "a test host outside the allowlist": (TEST_HOSTS["other"].address(), 443),
        "an internet address": (TEST_HOSTS["internet"].extra_addresses[0], 443),
    }


NEIGHBOUR_PORT = 8080


@pytest.fixture(scope="module")
def neighbour(real_release: Any, plugin: dict[str, Any]) -> str:
    """Another plugin's pod in the same namespace (a plugin's labels, its own id), serving on
    the core's port."""
    node: RealNode = real_release.node
    labels = {
        "app.kubernetes.io/component": "plugin",
        "app.kubernetes.io/part-of": "vivified-plugins",
        "vivified.dev/plugin": "other-plugin",
    }
    name = neighbour_pod(node, plugin["namespace"], "other-plugin", labels, port=NEIGHBOUR_PORT)
    return pod_ip(node, plugin["namespace"], name)


def test_without_a_policy_every_target_is_reachable(
    real_release: Any, outsider: dict[str, str], neighbour: str
) -> None:
    """The control: the same targets from a pod no NetworkPolicy selects all answer."""
    node: RealNode = real_release.node
    targets = isolation_targets(real_release, neighbour)
    results = connect_results(node, outsider["namespace"], outsider["pod"], list(targets.values()))
    assert all(r == "ok" for r in results.values()), results


@pytest.mark.parametrize(
    "target",
    [
        "another plugin's pod",
        "the operator's pod",
        "the API server (Service)",
        "the API server (node address)",
        "the kubelet",
        "a test host outside the allowlist",
        "an internet address",
    ],
)
def test_a_plugin_pod_cannot_connect(
    real_release: Any, plugin: dict[str, Any], neighbour: str, target: str
) -> None:
    node: RealNode = real_release.node
    host, port = isolation_targets(real_release, neighbour)[target]
    results = connect_results(node, plugin["namespace"], plugin["pod"], [(host, port)])
    assert results[f"{host}:{port}"] != "ok", f"{target} reachable from a plugin pod"


def test_a_plugin_pod_can_resolve_names_through_the_cluster_dns(
    real_release: Any, plugin: dict[str, Any]
) -> None:
    node: RealNode = real_release.node
    seen = node.exec_python(
        plugin["namespace"],
        plugin["pod"],
        """
        import json, socket
        out = {}
        names = ("kubernetes.default.svc.cluster.local", "api.partner.test", "www.internet.test")
        for name in names:
            try:
                out[name] = sorted({a[4][0] for a in socket.getaddrinfo(name, 443, socket.AF_INET)})
            except OSError as e:
                out[name] = type(e).__name__
        print(json.dumps(out))
        """,
    )
    assert seen["kubernetes.default.svc.cluster.local"] == ["10.96.0.1"]
    assert seen["api.partner.test"] == [TEST_HOSTS["partner"].address()]
    assert TEST_HOSTS["internet"].extra_addresses[0] in seen["www.internet.test"]


def test_a_plugin_pod_reaches_the_core_through_its_service(
    real_release: Any, plugin: dict[str, Any]
) -> None:
    """Egress to the core (http 8080) by its Service name, from VIVIFIED_CORE_URL: the public
    key set without a token, and the plugin directory with the plugin's own token."""
    node: RealNode = real_release.node
    # The health test before this one stops the plugin's process: Ready again to the
    # operator, the plugin can still turn Pending for a moment when the Deployment's count
    # catches up, and the core then refuses its token (401 plugin_inactive, correctly). That
    # one refusal is waited out (the wait is reported); any other error fails at once.
    seen = node.exec_python(
        plugin["namespace"],
        plugin["pod"],
        f"""
        import json, os, time, urllib.error, urllib.request
        core = os.environ[{contract.ENV_CORE_URL!r}]
        token = open(os.environ[{contract.ENV_TOKEN_FILE!r}]).read().strip()
        started = time.monotonic()
        def get(path, token=None):
            request = urllib.request.Request(core + path)
            if token:
                request.add_header("Authorization", "Bearer " + token)
            while True:
                try:
                    with urllib.request.urlopen(request, timeout=10) as response:
                        return response.status, json.loads(response.read())
                except urllib.error.HTTPError as error:  # its problem+json says why
                    body = error.read()[:500]
                    if b"plugin_inactive" in body and time.monotonic() - started < 90:
                        time.sleep(1)
                        continue
                    raise SystemExit(f"{{path}}: {{error.code}} {{body!r}}")
        jwks = get({contract.CORE_JWKS_PATH!r})
        listing = get({contract.CORE_PLUGINS_PATH!r}, token)
        print(json.dumps({{"core": core, "jwks": [jwks[0], len(jwks[1]["keys"])],
            "plugins": [listing[0], sorted(p["id"] for p in listing[1]["plugins"])],
            "waited": round(time.monotonic() - started, 1)}}))
        """,
    )
    print(f"\nthe core took the plugin's token after {seen['waited']} s")
    assert seen["core"] == (
        f"http://{contract.CORE_SERVICE_NAME}.{real_release.namespace}.svc:"
        f"{contract.CORE_HTTP_PORT}"
    )
    assert seen["jwks"][0] == 200
    assert seen["jwks"][1] >= 1
    assert seen["plugins"] == [200, [PLUGIN]]


def test_a_test_host_answers_https_with_the_test_ca(
    real_release: Any, outsider: dict[str, str]
) -> None:
    node: RealNode = real_release.node
    ca = (node.state_dir / "test-ca.crt").read_text()
    seen = node.exec_python(
        outsider["namespace"],
        outsider["pod"],
        f"""
        import json, ssl, urllib.request
        ctx = ssl.create_default_context(cadata={ca!r})
        url = "https://api.partner.test/hello"
        print(urllib.request.urlopen(url, context=ctx, timeout=10).read().decode())
        """,
    )
    assert seen == {"host": "partner", "path": "/hello"}


# -- kube-router: its own identity, least privilege ----------------------------------------------


def test_kube_router_runs_as_its_own_user_with_read_only_rights(real_node_env: RealNode) -> None:
    """Not system:masters: a client certificate for its own user, no group, and a ClusterRole
    that only reads what its informers watch. The isolation tests above show it still enforces
    (they create their NetworkPolicies after kube-router started)."""
    node = real_node_env
    cert = x509.load_pem_x509_certificate((node.state_dir / "pki" / "kube-router.crt").read_bytes())
    subject = cert.subject.rfc4514_string()
    assert subject == f"CN={real_node.KUBE_ROUTER_USER}", subject  # no O=system:masters

    def can(*args: str) -> str:
        out = node.k("auth", "can-i", "--as", real_node.KUBE_ROUTER_USER, *args, check=False)
        return out.strip().splitlines()[0]

    for verb in ("list", "watch"):
        for resource in ("pods", "namespaces", "nodes", "networkpolicies.networking.k8s.io",
                         "services", "endpointslices.discovery.k8s.io"):  # fmt: skip
            assert can(verb, resource, "--all-namespaces") == "yes", (verb, resource)
    for args in (
        ("get", "secrets", "--all-namespaces"),
        ("create", "pods", "-n", "default"),
        ("patch", "nodes"),
        ("delete", "networkpolicies.networking.k8s.io", "--all-namespaces"),
        ("*", "*"),
    ):
        assert can(*args) == "no", args
