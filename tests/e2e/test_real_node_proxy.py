"""The proxy lane on the real node: a plugin's only way out is the core (issue 9).

The chart runs on the real node (`real_release`), the core's proxy lane on its `proxy` port;
the release's TEST ONLY setting (`real_node.CORE_TEST_ENV`) admits the test hosts' private
addresses, nothing else. `partner-sync` is a real plugin pod (the user-management image, its
SDK) with `external_service` and `allowed_domains: [api.partner.test]`; the operator renders
its NetworkPolicy (egress: DNS and the core) and its `HTTPS_PROXY`.

* through the core, with the SDK's egress client (its token from the token file, the test
  CA): https://api.partner.test answers 200; other.test is refused 403 with its reason;
  no credential gets 407 and the challenge;
* dialled directly, by address and by name, the same host is blocked by the NetworkPolicy
  at the TCP connect (refused or timed out), never reaching TLS;
* the control: from a pod no NetworkPolicy selects, the same direct dial completes TLS and
  HTTP, so the block is the policy's, not the network's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client
from tests.e2e.kube import load_example, wait_for
from tests.e2e.real_node import (
    TEST_HOSTS,
    RealNode,
    create_real_namespace,
    delete_namespace,
    neighbour_pod,
    running_pod,
)

from vivified_sdk import contract

pytestmark = [pytest.mark.cluster, pytest.mark.real_node, pytest.mark.timeout(900)]

PLUGIN = "partner-sync"
PARTNER = "api.partner.test"
OTHER = "other.test"
#: How a NetworkPolicy refusal looks from inside the pod: the TCP connect fails (kube-router
#: rejects or drops the SYN). A TLS or HTTP error would mean the connection was made.
BLOCKED = frozenset({"ConnectionRefusedError", "TimeoutError", "EHOSTUNREACH"})


def egress_plugin(node: RealNode) -> dict[str, Any]:
    """user-management's image and manifest, renamed, with external_service and one domain."""
    body = load_example("user-management.yaml")
    manifest = body["spec"]["manifest"]
    body["metadata"]["name"] = manifest["id"] = PLUGIN
    manifest["name"] = "Partner Sync"
    manifest["traits"] = [*manifest["traits"], "external_service"]
    manifest["allowed_domains"] = [PARTNER]
    manifest.pop("events", None)
    manifest["health_check"].update(
        {"interval_seconds": 2, "timeout_seconds": 1, "failure_threshold": 3}
    )
    body["spec"]["image"] = node.images["user-management"]
    return body


@pytest.fixture(scope="module")
def egress_pod(real_release: Any) -> Iterator[dict[str, str]]:
    node: RealNode = real_release.node
    namespace = real_release.plugins_namespace
    node.k("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(egress_plugin(node)))
    node.k("wait", f"vp/{PLUGIN}", "-n", namespace, "--for=condition=Ready", "--timeout=240s")
    pod = running_pod(node, namespace, f"vivified.dev/plugin={PLUGIN}")
    yield {"namespace": namespace, "pod": pod}
    node.k("delete", f"vp/{PLUGIN}", "-n", namespace, "--timeout=60s", check=False)


@pytest.fixture(scope="module")
def unselected_pod(real_release: Any, k8s_api: client.ApiClient) -> Iterator[dict[str, str]]:
    """A pod on the real node that no NetworkPolicy selects: the control."""
    node: RealNode = real_release.node
    namespace = f"viv-real-egress-control-{os.getpid()}"
    create_real_namespace(k8s_api, namespace, {})
    pod = neighbour_pod(node, namespace, "control")
    yield {"namespace": namespace, "pod": pod}
    delete_namespace(k8s_api, namespace)


#: Dials TARGETS ([host, port, tls_name]) directly: resolve, TCP connect, TLS (test CA), GET.
#: Prints {host: {"stage": where it stopped, "error": ..., "status": ..., "body": ...}}.
DIAL_CODE = """
import errno, json, socket, ssl
out = {}
tls = ssl.create_default_context(cadata=CA)
for host, port, tls_name in TARGETS:
    seen = out[host] = {}
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)
        seen["addresses"] = sorted({info[4][0] for info in infos})
    except OSError as e:
        seen.update(stage="resolve", error=type(e).__name__)
        continue
    sock = socket.socket()
    sock.settimeout(5)
    try:
        sock.connect((seen["addresses"][0], port))
    except OSError as e:
        name = errno.errorcode.get(e.errno, "") if type(e) is OSError else ""
        seen.update(stage="connect", error=name or type(e).__name__)
        sock.close()
        continue
    try:
        with tls.wrap_socket(sock, server_hostname=tls_name) as conn:
            conn.sendall(f"GET /direct HTTP/1.1\\r\\nHost: {tls_name}\\r\\n\\r\\n".encode())
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
        head, _, body = reply.partition(b"\\r\\n\\r\\n")
        seen.update(stage="done", status=int(head.split()[1]), body=json.loads(body))
    except (OSError, ValueError) as e:
        seen.update(stage="tls", error=type(e).__name__)
print(json.dumps(out))
"""


def direct_dials(node: RealNode, where: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The partner host dialled from WHERE's pod, by address and by name, on 443."""
    targets = [(TEST_HOSTS["partner"].address(), 443, PARTNER), (PARTNER, 443, PARTNER)]
    ca = (node.state_dir / "test-ca.crt").read_text()
    code = f"CA = {ca!r}\nTARGETS = {json.dumps(targets)}\n" + DIAL_CODE
    seen: dict[str, dict[str, Any]] = node.exec_python(where["namespace"], where["pod"], code)
    return seen


def assert_direct_dials_blocked(node: RealNode, where: dict[str, str]) -> None:
    """The NetworkPolicy assertion: by address and by name, the TCP connect itself fails."""
    seen = direct_dials(node, where)
    partner = TEST_HOSTS["partner"].address()
    assert seen[PARTNER]["addresses"] == [partner], seen  # the name resolves (DNS is allowed)
    for host in (partner, PARTNER):
        assert seen[host]["stage"] == "connect", f"direct dial of {host} not blocked: {seen}"
        assert seen[host]["error"] in BLOCKED, seen


#: Through the core, from inside the plugin pod: the SDK's egress client (HTTPS_PROXY from the
#: operator, the token from the token file) and raw CONNECTs for the refusals' heads.
PROXY_CODE = """
import json, os, socket, ssl
from urllib.parse import urlsplit
import httpx
from vivified_sdk import TokenFile, egress_client
out = {"proxy": os.environ["HTTPS_PROXY"]}
tls = ssl.create_default_context(cadata=CA)
with egress_client(verify=tls, timeout=30) as http:
    answer = http.get(f"https://{PARTNER}/through-the-core")
    out["partner"] = {"status": answer.status_code, "body": answer.json()}
    try:
        other = http.get(f"https://{OTHER}/")
        out["other_sdk"] = {"status": other.status_code}
    except httpx.ProxyError as e:
        out["other_sdk"] = {"error": str(e)}
proxy = urlsplit(os.environ["HTTPS_PROXY"])
def connect(target, token):
    sock = socket.create_connection((proxy.hostname, proxy.port), timeout=30)
    auth = f"Proxy-Authorization: Bearer {token}\\r\\n" if token else ""
    sock.sendall(f"CONNECT {target} HTTP/1.1\\r\\nHost: {target}\\r\\n{auth}\\r\\n".encode())
    head = b""
    while b"\\r\\n\\r\\n" not in head and (chunk := sock.recv(4096)):
        head += chunk
    sock.close()
    return head.partition(b"\\r\\n\\r\\n")[0].decode("latin-1")
out["other_raw"] = connect(f"{OTHER}:443", TokenFile.from_env().read())
out["no_credential"] = connect(f"{PARTNER}:443", None)
print(json.dumps(out))
"""


def parse_head(head: str) -> tuple[int, dict[str, str]]:
    status_line, *lines = head.split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers


def test_through_the_core_the_allowed_host_answers_and_others_are_refused(
    real_release: Any, egress_pod: dict[str, str]
) -> None:
    node: RealNode = real_release.node
    ca = (node.state_dir / "test-ca.crt").read_text()
    code = f"CA = {ca!r}\nPARTNER = {PARTNER!r}\nOTHER = {OTHER!r}\n" + PROXY_CODE
    seen = node.exec_python(egress_pod["namespace"], egress_pod["pod"], code)
    assert seen["proxy"] == (
        f"http://{contract.CORE_SERVICE_NAME}.{real_release.namespace}.svc:"
        f"{contract.CORE_PROXY_PORT}"
    )
    # The test host's own answer, over TLS end to end (the proxy only relays the tunnel).
    assert seen["partner"] == {
        "status": 200,
        "body": {"host": "partner", "path": "/through-the-core"},
    }
    assert "403" in seen["other_sdk"].get("error", ""), seen["other_sdk"]
    status, headers = parse_head(seen["other_raw"])
    assert (status, headers.get(contract.PROXY_REASON_HEADER.lower())) == (
        403,
        "domain_not_allowed",
    ), seen["other_raw"]
    status, headers = parse_head(seen["no_credential"])
    assert status == 407, seen["no_credential"]
    assert headers["proxy-authenticate"] == 'Basic realm="vivified"'


def test_dialled_directly_the_same_host_is_blocked_by_the_network_policy(
    real_release: Any, egress_pod: dict[str, str]
) -> None:
    assert_direct_dials_blocked(real_release.node, egress_pod)


def test_the_control_a_pod_no_policy_selects_reaches_the_host_directly(
    real_release: Any, unselected_pod: dict[str, str]
) -> None:
    """Without a NetworkPolicy the same direct dial completes: the route to the test host
    exists, so the plugin's block above is the policy's doing."""
    seen = direct_dials(real_release.node, unselected_pod)
    for host in (TEST_HOSTS["partner"].address(), PARTNER):
        assert seen[host]["stage"] == "done", seen
        assert seen[host]["status"] == 200, seen
        assert seen[host]["body"] == {"host": "partner", "path": "/direct"}, seen


def test_egress_enforced_names_the_domain(real_release: Any, egress_pod: dict[str, str]) -> None:
    """The operator's status tells the truth on the real node: the policy is applied and the
    core (through its Service, as the chart wires it) reports the allowlist loaded."""
    node: RealNode = real_release.node

    def enforced() -> dict[str, Any] | None:
        plugin = json.loads(
            node.k("get", f"vp/{PLUGIN}", "-n", egress_pod["namespace"], "-o", "json")
        )
        for condition in plugin.get("status", {}).get("conditions", []):
            if condition["type"] == "EgressEnforced" and condition["status"] == "True":
                return dict(condition)
        return None

    condition = wait_for("EgressEnforced True", enforced, timeout=60)
    assert condition["reason"] == "Enforced"
    assert PARTNER in condition["message"]
