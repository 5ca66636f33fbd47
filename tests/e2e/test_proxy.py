"""The proxy lane end to end: the real ``vivified core`` process, the operator, the local cluster.

The operator manages the VivifiedPlugins and mints their tokens; ``vivified core`` runs as a
process (its proxy listener started by ``core_lanes()``) and reads the plugins through its
watch. The targets are test servers on loopback — an HTTPS server with a throw-away CA and a
TCP echo server — and the plugin names resolve through the core's TEST-ONLY static map with
loopback admitted by the TEST-ONLY allowed networks: nothing leaves this machine, no real DNS
look-up is made.

* ``billing`` (external_service, allowed_domains [api.partner.test]) fetches through the
  proxy with the SDK's client; to other.partner.test → 403; ``notes`` (no trait) → 403; no
  credential → 407 with the challenge;
* editing billing's allowed domains takes effect without restarting the core, and
  ``EgressEnforced`` follows with the new domains;
* disabling billing closes its open tunnel.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import StartOperator
from tests.e2e.core_process import CoreProcess
from tests.e2e.kube import Cluster, plugin_body, wait_for
from tests.e2e.test_health import free_port
from tests.proxy_ground import LoopbackCA

from vivified.tokens import generate_signing_key
from vivified_sdk import TokenFile, contract, egress_client, refusal_reason

pytestmark = pytest.mark.cluster

PARTNER = "api.partner.test"
OTHER = "other.partner.test"


def egress_plugin(plugin_id: str, traits: list[str], domains: list[str]) -> dict[str, Any]:
    body = plugin_body(plugin_id, traits=traits)
    body["spec"]["manifest"]["health_check"] = {"type": "custom"}
    body["spec"]["manifest"]["allowed_domains"] = domains
    return body


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        payload = b"hello from upstream"
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        del args


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


class Targets:
    """An HTTPS server and a TCP echo server on 127.0.0.1, each on its own thread."""

    def __init__(self, tmp: Path) -> None:
        self.ca = LoopbackCA.create([PARTNER, OTHER])
        self.https = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
        context = self.ca.server_context(tmp)
        self.https.socket = context.wrap_socket(self.https.socket, server_side=True)
        self.echo = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
        self.echo.daemon_threads = True
        for server in (self.https, self.echo):
            threading.Thread(target=server.serve_forever, daemon=True).start()

    @property
    def https_port(self) -> int:
        return int(self.https.server_address[1])

    @property
    def echo_port(self) -> int:
        return int(self.echo.server_address[1])

    def close(self) -> None:
        for server in (self.https, self.echo):
            server.shutdown()
            server.server_close()


@pytest.fixture
def ground(  # noqa: PLR0917 - fixtures
    cluster: Cluster,
    namespace: str,
    operator_namespace: str,
    start_operator: StartOperator,
    kubeconfig_path: Path,
    tmp_path: Path,
) -> Iterator[dict[str, Any]]:
    targets = Targets(tmp_path)
    key_file = tmp_path / "core-key.pem"
    key_file.write_bytes(generate_signing_key(datetime.now(UTC)).private_pem)
    proxy_port = free_port()
    env = {
        **os.environ,
        "VIVIFIED_CORE_SIGNING_KEY_FILE": str(key_file),
        "KUBECONFIG": str(kubeconfig_path),
        "VIVIFIED_CORE_HOST": "127.0.0.1",
        "VIVIFIED_CORE_NAMESPACES": namespace,
        "VIVIFIED_CORE_IDENTITY_NAMESPACE": operator_namespace,
        "VIVIFIED_UI": "off",
        "VIVIFIED_PROXY_PORT": str(proxy_port),
        "VIVIFIED_PROXY_ALLOWED_PORTS": f"{targets.https_port},{targets.echo_port}",
        # TEST ONLY (docs/proxy.md): names from a map, loopback treated as public.
        "VIVIFIED_PROXY_TEST_STATIC_HOSTS": json.dumps(
            {PARTNER: ["127.0.0.1"], OTHER: ["127.0.0.1"]}
        ),
        "VIVIFIED_PROXY_TEST_ALLOW_NETWORKS": "127.0.0.0/8",
        "PYTHONUNBUFFERED": "1",
    }
    core = CoreProcess(env, tmp_path / "core.log")
    try:
        start_operator(namespace, core_url=core.url, egress_report_seconds=1)
        wait_for("core ready", core.ready, timeout=180)  # imports are slow on a busy box
        cluster.apply_plugin(namespace, egress_plugin("billing", ["external_service"], [PARTNER]))
        cluster.apply_plugin(namespace, egress_plugin("notes", ["audit_required"], []))
        tokens = {}
        for plugin_id in ("billing", "notes"):
            cluster.wait_phase(namespace, plugin_id, "Active", timeout=60)
            data = wait_for(
                f"{plugin_id} token",
                lambda p=plugin_id: cluster.secret_data(namespace, f"{p}-token"),
                timeout=30,
            )
            token_file = tmp_path / f"{plugin_id}.token"
            token_file.write_text(data["token"])
            tokens[plugin_id] = TokenFile(token_file)
        yield {
            "core": core,
            "proxy_url": f"http://127.0.0.1:{proxy_port}",
            "proxy_port": proxy_port,
            "targets": targets,
            "tokens": tokens,
            "namespace": namespace,
        }
    finally:
        core.stop()
        targets.close()


def _connect(port: int, target: str, token: str | None) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    auth = f"Proxy-Authorization: Bearer {token}\r\n" if token else ""
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{auth}\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return sock, head


def _enforced(cluster: Cluster, namespace: str, domain: str) -> dict[str, Any] | None:
    condition = cluster.condition(namespace, "billing", "EgressEnforced")
    if condition.get("status") == "True" and domain in condition.get("message", ""):
        return condition
    return None


def test_the_proxy_lane_end_to_end(ground: dict[str, Any], cluster: Cluster) -> None:
    targets: Targets = ground["targets"]
    tokens: dict[str, TokenFile] = ground["tokens"]
    namespace: str = ground["namespace"]
    partner = f"https://{PARTNER}:{targets.https_port}/"
    other = f"https://{OTHER}:{targets.https_port}/"
    verify = ssl.create_default_context(cadata=targets.ca.ca_pem.decode())

    with egress_client(
        proxy_url=ground["proxy_url"], token_file=tokens["billing"], verify=verify
    ) as http_:
        assert http_.get(partner).text == "hello from upstream"
        with pytest.raises(httpx.ProxyError, match="403"):
            http_.get(other)
    with (
        egress_client(
            proxy_url=ground["proxy_url"], token_file=tokens["notes"], verify=verify
        ) as http_,
        pytest.raises(httpx.ProxyError, match="403"),
    ):
        http_.get(partner)
    port = ground["proxy_port"]
    sock, head = _connect(port, f"{PARTNER}:{targets.https_port}", None)
    sock.close()
    assert head.startswith(b"HTTP/1.1 407")
    assert b'Proxy-Authenticate: Basic realm="vivified"' in head
    sock, head = _connect(port, f"{OTHER}:{targets.https_port}", tokens["billing"].read())
    sock.close()
    assert f"{contract.PROXY_REASON_HEADER}: domain_not_allowed".encode() in head
    # Plain HTTP through the same client: the refusal names its reason.
    with egress_client(proxy_url=ground["proxy_url"], token_file=tokens["billing"]) as plain:
        refused = plain.get(f"http://{OTHER}:{targets.https_port}/")
        assert refused.status_code == 403
        assert refusal_reason(refused) == "domain_not_allowed"

    # The status tells the truth: the NetworkPolicy forces egress through the core, and the
    # core reports billing's allowlist loaded.
    condition = wait_for(
        "EgressEnforced True", lambda: _enforced(cluster, namespace, PARTNER), timeout=60
    )
    assert condition["reason"] == "Enforced"

    # Live policy: the CR edit reaches the proxy without a restart of the core.
    manifest = cluster.plugin(namespace, "billing")["spec"]["manifest"]  # type: ignore[index]
    cluster.patch_spec(
        namespace, "billing", {"manifest": {**manifest, "allowed_domains": [PARTNER, OTHER]}}
    )

    def other_allowed() -> bool:
        with egress_client(
            proxy_url=ground["proxy_url"], token_file=tokens["billing"], verify=verify
        ) as client:
            try:
                return client.get(other).status_code == 200
            except httpx.ProxyError:
                return False

    wait_for("the new domain through the proxy", other_allowed, timeout=30)
    wait_for("EgressEnforced lists it", lambda: _enforced(cluster, namespace, OTHER), timeout=60)
    assert ground["core"].process.poll() is None  # the same core process throughout

    # Disabling the plugin closes its open tunnel. (The edit rolled the Deployment: the plugin
    # is Pending until it is Available again, and the proxy serves Active plugins only.)
    cluster.wait_phase(namespace, "billing", "Active", timeout=60)
    sock, head = _connect(port, f"{PARTNER}:{targets.echo_port}", tokens["billing"].read())
    assert head.startswith(b"HTTP/1.1 200"), head
    sock.sendall(b"ping")
    assert sock.recv(16) == b"ping"
    cluster.patch_spec(namespace, "billing", {"enabled": False})
    sock.settimeout(30)
    try:
        assert sock.recv(16) == b""  # closed by the core
    finally:
        sock.close()
    sock, head = _connect(port, f"{PARTNER}:{targets.echo_port}", tokens["billing"].read())
    sock.close()
    assert head.startswith((b"HTTP/1.1 403", b"HTTP/1.1 407")), head
