"""Behaviour of the local test cluster itself (hack/cluster), beyond plain Kubernetes:
admission webhooks reach the host's loopback, the API server can dial nothing
else, and `up`/`down` are idempotent and leave no process behind.

Skipped when the suite runs against another cluster via $KUBECONFIG.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from cluster_support import CLUSTER_SCRIPT, KubeCluster, self_signed_certificate, wait_until

pytestmark = pytest.mark.cluster


@pytest.fixture
def local_cluster(kube_cluster: KubeCluster) -> KubeCluster:
    if not kube_cluster.local:
        pytest.skip("checks the local test cluster (hack/cluster), not $KUBECONFIG's")
    return kube_cluster


class DenyLabelled(BaseHTTPRequestHandler):
    """A validating webhook: denies objects labelled `deny: "yes"`."""

    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        labels = review["request"]["object"]["metadata"].get("labels") or {}
        allowed = labels.get("deny") != "yes"
        response = {
            "uid": review["request"]["uid"],
            "allowed": allowed,
            "status": {"code": 403, "message": "denied by the test webhook"},
        }
        body = json.dumps({**review, "response": response}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def webhook_url(tmp_path: Path) -> Iterator[tuple[str, bytes]]:
    """A webhook server on loopback; yields its URL and CA bundle."""
    cert, key = self_signed_certificate(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), DenyLabelled)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/validate", cert.read_bytes()
    server.shutdown()
    server.server_close()


def test_a_validating_webhook_on_loopback_admits_and_denies(
    local_cluster: KubeCluster,
    k8s_api: client.ApiClient,
    namespace: str,
    webhook_url: tuple[str, bytes],
) -> None:
    url, ca_bundle = webhook_url
    admission, core = client.AdmissionregistrationV1Api(k8s_api), client.CoreV1Api(k8s_api)
    name = f"deny-labelled.{namespace}.test.vivified.dev"
    admission.create_validating_webhook_configuration(
        client.V1ValidatingWebhookConfiguration(
            metadata=client.V1ObjectMeta(name=name),
            webhooks=[
                client.V1ValidatingWebhook(
                    name=name,
                    client_config=client.AdmissionregistrationV1WebhookClientConfig(
                        url=url, ca_bundle=base64.b64encode(ca_bundle).decode()
                    ),
                    rules=[
                        client.V1RuleWithOperations(
                            api_groups=[""],
                            api_versions=["v1"],
                            operations=["CREATE"],
                            resources=["configmaps"],
                        )
                    ],
                    # Only this test's namespace: other tests never meet this webhook.
                    namespace_selector=client.V1LabelSelector(
                        match_labels={"kubernetes.io/metadata.name": namespace}
                    ),
                    failure_policy="Fail",
                    side_effects="None",
                    admission_review_versions=["v1"],
                    timeout_seconds=5,
                )
            ],
        )
    )
    try:

        def create(cm_name: str, labels: dict[str, str]) -> None:
            core.create_namespaced_config_map(
                namespace,
                client.V1ConfigMap(metadata=client.V1ObjectMeta(name=cm_name, labels=labels)),
            )

        def webhook_denies() -> bool:
            try:
                create("denied", {"deny": "yes"})
            except ApiException as error:
                return "denied by the test webhook" in error.body
            # Admitted before the API server's webhook informer saw the configuration.
            core.delete_namespaced_config_map("denied", namespace)
            return False

        wait_until(webhook_denies, "the webhook to deny a labelled ConfigMap")
        create("admitted", {"deny": "no"})
    finally:
        admission.delete_validating_webhook_configuration(name)


def test_the_api_server_cannot_dial_a_fake_pod_ip(
    local_cluster: KubeCluster, k8s_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(k8s_api)
    core.create_namespaced_pod(
        namespace,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name="fake"),
            spec=client.V1PodSpec(
                containers=[client.V1Container(name="fake", image="registry.invalid/fake:1")]
            ),
        ),
    )
    pod_ip = wait_until(
        lambda: core.read_namespaced_pod("fake", namespace).status.pod_ip, "kwok to give an IP"
    )

    # The pod proxy would make kube-apiserver connect to the pod's IP.
    with pytest.raises(ApiException) as refused:
        core.connect_get_namespaced_pod_proxy_with_path("fake:80", namespace, "healthz")
    assert refused.value.status >= 500

    assert local_cluster.state_dir is not None
    guard_log = (local_cluster.state_dir / "logs" / "egress-guard.log").read_text()
    assert f"REFUSED {pod_ip}:80 (not loopback)" in guard_log


def test_up_is_idempotent_and_down_leaves_no_process(
    local_cluster: KubeCluster, tmp_path: Path
) -> None:
    """A second, private cluster (free ports, own state directory)."""
    state = tmp_path / "c"  # short: the egress guard's unix socket path is limited

    def cluster(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            # The control plane only: the real node's own cleanup test is test_real_node_cleanup.
            [sys.executable, str(CLUSTER_SCRIPT), command, "--dir", str(state), "--no-real-node"],
            capture_output=True,
            text=True,
            check=False,
            timeout=240,
        )

    started = cluster("up")
    assert started.returncode == 0, started.stderr
    assert (state / "kubeconfig").exists()
    pids = {p.stem: int(p.read_text()) for p in (state / "pids").glob("*.pid")}
    assert set(pids) == {
        "etcd",
        "egress-guard",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
    }

    again = cluster("up")
    assert again.returncode == 0, again.stderr
    assert "already up" in again.stderr
    assert {p.stem: int(p.read_text()) for p in (state / "pids").glob("*.pid")} == pids

    stopped = cluster("down")
    assert stopped.returncode == 0, stopped.stderr
    assert not [pid for pid in pids.values() if running(pid)]
    assert not processes_mentioning(state), "no process of the cluster, recorded or not"
    assert not (state / "kubeconfig").exists()
    assert cluster("status").returncode == 1


def running(pid: int) -> bool:
    """Alive and not a zombie (an exited process nobody has waited for yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def processes_mentioning(path: Path) -> list[str]:
    """Command lines of running processes that contain PATH."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError):
            continue
        if str(path) in cmdline and running(int(proc.name)):
            found.append(cmdline)
    return found
