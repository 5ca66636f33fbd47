"""Event lane on a real API server, through the real ``vivified core`` and a real nats-server.

The operator manages the VivifiedPlugins and mints their tokens; ``vivified core`` (a process,
watching them read-only) serves ``POST /v1/events`` on the pinned nats-server and delivers to
the accounting example plugin (uvicorn, on loopback through the core's address map), which
checks every delivery's call token against the core's ``/v1/jwks`` with the SDK's
``EventReceiver``.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tests.e2e.conftest import StartOperator
from tests.e2e.kube import EXAMPLES, REPO, Cluster, load_example, wait_for
from tests.e2e.test_core import CoreProcess
from tests.e2e.test_health import free_port

from vivified.settings import OperatorSettings
from vivified.tokens import generate_signing_key, keyring_from_secret_data, mint_operator_token
from vivified_sdk import CoreClient, PublishRefused, TokenFile, contract, publish

pytestmark = pytest.mark.cluster

ACCOUNTING = REPO / "plugins" / "accounting"


def test_pii_subscription_without_handles_pii_is_invalid_naming_the_field(
    cluster: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    start_operator(namespace)
    body = yaml.safe_load((EXAMPLES / "invalid" / "events-pii-without-trait.yaml").read_text())
    cluster.apply_plugin(namespace, body)
    status = cluster.wait_phase(namespace, body["metadata"]["name"], "Invalid")
    errors = {e["field"]: e["message"] for e in status["validationErrors"]}
    assert "'handles_pii' trait to subscribe" in errors["spec.manifest.events.subscribes[0]"]
    assert "spec.manifest.endpoints.events" in errors


class Recorder(http.server.ThreadingHTTPServer):
    """A plugin's events endpoint that records every POST (nothing should arrive)."""

    def __init__(self) -> None:
        self.posts: list[bytes] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                recorder.posts.append(self.rfile.read(length))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                del args

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])


def _custom_health(body: dict[str, Any]) -> dict[str, Any]:
    body["spec"]["manifest"]["health_check"] = {"type": "custom"}  # no probes in this test
    return body


def _plugin(plugin_id: str, *, subscribes: list[str], traits: list[str]) -> dict[str, Any]:
    body = load_example("accounting.yaml")
    body["metadata"]["name"] = plugin_id
    manifest = body["spec"]["manifest"]
    manifest.update(id=plugin_id, name=plugin_id, traits=traits)
    manifest["events"] = {"subscribes": subscribes}
    if "handles_pii" not in traits:
        manifest["security"]["data_classification"] = ["internal"]
    return _custom_health(body)


@pytest.fixture
def lane(  # noqa: PLR0917 - fixtures
    cluster: Cluster,
    namespace: str,
    operator_namespace: str,
    start_operator: StartOperator,
    kubeconfig_path: Path,
    nats_server: Any,
    tmp_path: Path,
) -> Iterator[dict[str, Any]]:
    nosy = Recorder()
    accounting_port = free_port()
    key_file = tmp_path / "core-key.pem"
    key_file.write_bytes(generate_signing_key(datetime.now(UTC)).private_pem)
    closed_port = free_port()  # "broken" answers nothing: every delivery fails
    env = {
        **os.environ,
        "VIVIFIED_CORE_SIGNING_KEY_FILE": str(key_file),
        "KUBECONFIG": str(kubeconfig_path),
        "VIVIFIED_CORE_HOST": "127.0.0.1",
        "VIVIFIED_CORE_NAMESPACES": namespace,
        "VIVIFIED_CORE_IDENTITY_NAMESPACE": operator_namespace,
        "VIVIFIED_CORE_ADDRESS_MAP": (
            f"accounting=127.0.0.1:{accounting_port},nosy=127.0.0.1:{nosy.port},"
            f"broken=127.0.0.1:{closed_port}"
        ),
        "VIVIFIED_NATS_URL": nats_server.url,
        "VIVIFIED_EVENTS_MAX_ATTEMPTS": "2",
        "VIVIFIED_EVENTS_BACKOFF_INITIAL_SECONDS": "0.1",
        "VIVIFIED_EVENTS_DELIVERY_TIMEOUT_SECONDS": "2",
        "VIVIFIED_EVENTS_RECONCILE_SECONDS": "0.5",
        "VIVIFIED_UI": "off",
        "PYTHONUNBUFFERED": "1",
    }
    core = CoreProcess(env, tmp_path / "core.log")
    accounting: subprocess.Popen[bytes] | None = None
    try:
        # The operator reads every subscriber's counts from the core (GET /v1/events/status,
        # its own token) for status.events.pending / deadLettered.
        start_operator(namespace, core_url=core.url, events_status_seconds=1)
        wait_for("core ready", core.ready, timeout=180)
        cluster.apply_plugin(namespace, _custom_health(load_example("user-management.yaml")))
        cluster.apply_plugin(namespace, _custom_health(load_example("accounting.yaml")))
        cluster.apply_plugin(
            namespace, _plugin("nosy", subscribes=["DocumentProcessed"], traits=["audit_required"])
        )
        cluster.apply_plugin(
            namespace,
            _plugin("broken", subscribes=["UserCreated"], traits=["handles_pii", "audit_required"]),
        )
        tokens = {}
        for plugin_id in ("user-management", "accounting", "nosy", "broken"):
            cluster.wait_phase(namespace, plugin_id, "Active", timeout=60)
            data = wait_for(
                f"{plugin_id} token",
                lambda p=plugin_id: cluster.secret_data(namespace, f"{p}-token"),
                timeout=30,
            )
            tokens[plugin_id] = data["token"]
        log = (tmp_path / "accounting.log").open("wb")
        accounting = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "accounting.app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(accounting_port),
                "--no-access-log",
            ],
            env={
                **os.environ,
                "PYTHONPATH": str(ACCOUNTING),
                "PLUGIN_ID": "accounting",
                "VIVIFIED_JWKS_URL": f"{core.url}/v1/jwks",
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_for("accounting up", lambda: _health(accounting_port) is not None, timeout=180)
        token_file = tmp_path / "um-token"
        token_file.write_text(tokens["user-management"])
        yield {
            "cluster": cluster,
            "namespace": namespace,
            "operator_namespace": operator_namespace,
            "core": core,
            "tokens": tokens,
            "token_file": token_file,
            "accounting_port": accounting_port,
            "nosy": nosy,
            "log": tmp_path / "core.log",
        }
    finally:
        if accounting is not None:
            accounting.terminate()
            accounting.wait(timeout=10)
        core.stop()
        nosy.shutdown()


def _health(port: int) -> dict[str, Any] | None:
    try:
        reply = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1, trust_env=False)
    except httpx.HTTPError:
        return None
    return reply.json() if reply.is_success else None


def _metric(core: CoreProcess, needle: str) -> float | None:
    text = httpx.get(f"{core.url}/metrics", timeout=5, trust_env=False).text
    for line in text.splitlines():
        if line.startswith(needle + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def _pending(core: CoreProcess, token: str) -> int:
    reply = httpx.get(
        f"{core.url}/v1/events/status/broken",
        headers={"Authorization": f"Bearer {token}"},
        trust_env=False,
    )
    return int(reply.json()["pending"])


def _counts_in_status(
    cluster: Cluster, namespace: str, plugin_id: str, dead: int
) -> dict[str, Any] | None:
    events = cluster.status(namespace, plugin_id).get("events") or {}
    return events if events.get("deadLettered") == dead and events.get("pending") == 0 else None


def test_user_created_reaches_the_subscriber_through_the_core(lane: dict[str, Any]) -> None:
    core: CoreProcess = lane["core"]

    async def publish_some() -> tuple[int, list[str]]:
        async with CoreClient(core.url, token_file=TokenFile(lane["token_file"])) as client:
            # The lane connects to JetStream in the background (503 engine_unavailable until
            # then) and creates a subscription's consumer when it sees the plugin: only events
            # stored after that are the subscriber's. Probe until one arrives.
            probes = 0
            while not (_health(lane["accounting_port"]) or {}).get("payroll_records"):
                assert probes < 300, "no probe event ever reached accounting"
                try:
                    await publish(client, "UserCreated", {"user_id": f"p{probes}"})
                except PublishRefused as refused:
                    if refused.reason != "engine_unavailable":
                        raise
                probes += 1
                await asyncio.sleep(0.3)
            await asyncio.sleep(1.0)  # the other subscriptions of the same pass are in place
            before = int((_health(lane["accounting_port"]) or {})["payroll_records"])
            ids = [
                await publish(client, "UserCreated", {"user_id": f"u{n}"}, event_id=f"e{n}")
                for n in range(5)
            ]
            with pytest.raises(PublishRefused) as refused:
                await publish(client, "PatientAdmitted", {"patient_id": "x"})
            assert refused.value.reason == "type_not_declared"
            return before, ids

    before, ids = asyncio.run(publish_some())
    assert ids == [f"e{n}" for n in range(5)]
    # accounting verified each delivery's call token with the core's JWKS and handled it once.
    want = before + 5
    wait_for(
        "payroll records for every user",
        lambda: (_health(lane["accounting_port"]) or {}).get("payroll_records", 0) >= want,
        timeout=60,
    )
    delivered = 'vivified_events_delivered_total{subscriber="accounting",type="UserCreated"}'
    assert (_metric(core, delivered) or 0) >= want
    # broken never answers: every event ends in the dead-letter stream after 2 attempts.
    dead = 'vivified_events_dead_lettered_total{subscriber="broken",type="UserCreated"}'
    wait_for("dead-lettered", lambda: (_metric(core, dead) or 0) >= 5, timeout=90)
    wait_for("no retry left", lambda: _pending(core, lane["tokens"]["broken"]) == 0, timeout=60)
    status = httpx.get(
        f"{core.url}/v1/events/status/broken",
        headers={"Authorization": f"Bearer {lane['tokens']['broken']}"},
        trust_env=False,
    ).json()
    assert status["deadLettered"] == _metric(core, dead)
    assert status["subscribes"] == ["UserCreated"]
    # ... and the operator shows the count in broken's status (read with its own token).
    cluster: Cluster = lane["cluster"]
    shown = wait_for(
        "dead-lettered count in the CR status",
        lambda: _counts_in_status(cluster, lane["namespace"], "broken", status["deadLettered"]),
        timeout=60,
    )
    assert shown == {
        "publishes": [],
        "subscribes": ["UserCreated"],
        "pending": 0,
        "deadLettered": status["deadLettered"],
    }
    # nosy subscribes to another type: it received nothing.
    assert lane["nosy"].posts == []
    # A spoofed source and an unauthenticated publish are refused with problem+json.
    spoof = httpx.post(
        f"{core.url}/v1/events",
        content=json.dumps(
            {
                "specversion": "1.0",
                "id": "s1",
                "type": "UserCreated",
                "source": "vivified://plugins/accounting",
                "data": {"user_id": "x"},
            }
        ),
        headers={
            "Authorization": f"Bearer {lane['tokens']['user-management']}",
            "Content-Type": "application/cloudevents+json",
        },
        trust_env=False,
    )
    assert (spoof.status_code, spoof.json()["reason"]) == (403, "source_mismatch")
    anonymous = httpx.post(f"{core.url}/v1/events", json={}, trust_env=False)
    assert (anonymous.status_code, anonymous.json()["reason"]) == (401, "missing_credentials")


def _operator_token(cluster: Cluster, operator_namespace: str) -> str:
    """A token as the operator mints it: the operator's own key ring, from its Secret."""
    data = cluster.secret_data(operator_namespace, OperatorSettings().signing_key_secret)
    assert data is not None
    ring = keyring_from_secret_data(data)
    issuer = OperatorSettings().token_issuer
    return mint_operator_token(ring, issuer=issuer, now=datetime.now(UTC)).token


def _connect(port: int, token: str) -> tuple[int, str]:
    """CONNECT through the core's proxy with ``token``: (status, reason header)."""
    target = "api.partner.test:443"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
            f"Proxy-Authorization: Bearer {token}\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    reason = {k.lower(): v for k, v in headers.items()}.get(contract.PROXY_REASON_HEADER.lower())
    return int(lines[0].split()[1]), reason or ""


def test_the_operator_routes_take_the_operators_token_and_nothing_else(
    lane: dict[str, Any],
) -> None:
    core: CoreProcess = lane["core"]
    cluster: Cluster = lane["cluster"]
    plugin = {"Authorization": f"Bearer {lane['tokens']['user-management']}"}
    operator = {"Authorization": f"Bearer {_operator_token(cluster, lane['operator_namespace'])}"}

    def call(method: str, path: str, headers: dict[str, str]) -> tuple[int, str | None]:
        reply = httpx.request(
            method, f"{core.url}{path}", headers=headers, json={}, timeout=10, trust_env=False
        )
        body = reply.json() if reply.headers.get("content-type", "").endswith("json") else {}
        return reply.status_code, body.get("reason")

    # The operator's token reads every subscriber's counts and every plugin's allowlist ...
    def report() -> dict[str, Any] | None:  # 503 engine_unavailable until JetStream is up
        url = f"{core.url}{contract.CORE_EVENTS_STATUS_PATH}"
        reply = httpx.get(url, headers=operator, timeout=10, trust_env=False)
        return dict(reply.json()) if reply.status_code == 200 else None

    counts = wait_for("the event lane's counts", report, timeout=60)
    assert set(counts["plugins"]) == {"accounting", "nosy", "broken"}, "subscribers only"
    assert call("GET", contract.CORE_PROXY_ALLOWLISTS_PATH, operator) == (200, None)
    # ... a plugin's token reads neither (nor does no token) ...
    for path in (contract.CORE_EVENTS_STATUS_PATH, contract.CORE_PROXY_ALLOWLISTS_PATH):
        assert call("GET", path, plugin) == (403, "operator_only"), path
        assert call("GET", path, {}) == (401, "missing_credentials"), path
    # ... and the operator's token opens none of the lanes or plugin services.
    refused = (403, "operator_token_refused")
    assert call("POST", contract.CORE_EVENTS_PATH, operator) == refused
    assert call("GET", f"{contract.CORE_INVOKE_PATH}/accounting/health", operator) == refused
    assert call("POST", contract.CORE_HEARTBEAT_PATH, operator) == refused
    assert call("GET", contract.CORE_PLUGINS_PATH, operator) == refused
    assert call("GET", f"{contract.CORE_EVENTS_STATUS_PATH}/broken", operator) == refused
    assert _connect(core.proxy_port, operator["Authorization"].split()[1]) == (
        403,
        "operator_token_refused",
    )
