"""Issue 11's acceptance through the lanes: the real core, the operator and a real JetStream trail.

The operator manages the VivifiedPlugins and writes its lifecycle records; ``vivified core``
(a process) serves the operator lane, the proxy lane and the event lane and writes its
decisions; both write their own chain into the same JetStream stream on a real nats-server,
with signed checkpoints. Every record is read back with the ``vivified audit`` command.

Plugins: ``ledger`` (the target: basic, not audit_required, served by a recording HTTP server
on loopback through the core's address map), ``scribe`` (detailed, audit_required; calls
ledger, has no external_service, publishes DocumentProcessed), ``clinic`` (complete; calls
ledger) and ``kiosk`` (basic, not audit_required; calls ledger).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client
from tests.e2e.conftest import StartOperator
from tests.e2e.core_process import CoreProcess, core_env
from tests.e2e.kube import REPO, Cluster, plugin_body, wait_for
from tests.e2e.test_core import call
from tests.e2e.test_events import Recorder, _metric
from tests.e2e.test_proxy import PARTNER, _connect
from tests.nats_support import NatsServer

from vivified.audit.checkpoint import Signer
from vivified_sdk import CoreClient, PublishRefused, TokenFile, contract, publish

pytestmark = pytest.mark.cluster

LOOKUP = "/v1/invoke/ledger/lookup/7"


def plugin(plugin_id: str, level: str, traits: list[str], **manifest: Any) -> dict[str, Any]:
    body = plugin_body(plugin_id, traits=traits)
    spec = body["spec"]["manifest"]
    spec.update(manifest)
    spec["compliance"]["audit_level"] = level
    spec["health_check"] = {"type": "custom"}  # no probes: nothing listens for them
    return body


PLUGINS = (
    plugin("ledger", "basic", ["stateless"], endpoints={"health": "/health", "lookup": "/l/{id}"}),
    plugin(
        "scribe",
        "detailed",
        ["audit_required", "emits_events"],
        dependencies=["ledger"],
        events={"publishes": ["DocumentProcessed"]},
    ),
    plugin("clinic", "complete", ["stateless"], dependencies=["ledger"]),
    plugin("kiosk", "basic", ["stateless"], dependencies=["ledger"]),
)


def audit(*argv: str) -> subprocess.CompletedProcess[str]:
    """``vivified audit ...`` as a user runs it: a subprocess of the CLI."""
    return subprocess.run(
        [sys.executable, "-m", "vivified", "audit", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )


@pytest.fixture
def trail(  # noqa: PLR0917 - fixtures
    cluster: Cluster,
    namespace: str,
    operator_namespace: str,
    start_operator: StartOperator,
    kubeconfig_path: Path,
    nats_server: NatsServer,
    tmp_path: Path,
) -> Iterator[dict[str, Any]]:
    signer = Signer.generate()
    key, public = tmp_path / "audit.key", tmp_path / "audit.pub"
    key.write_bytes(signer.private_pem())
    public.write_bytes(signer.public_pem())
    ledger = Recorder()
    pod = f"core-audit-{uuid.uuid4().hex[:8]}"  # the Events' object: unique per run
    start_operator(
        namespace,
        audit_sink=nats_server.url,
        audit_key_file=str(key),
        audit_writer="operator-e2e",
    )
    env = {
        **core_env(
            kubeconfig=kubeconfig_path,
            namespace=namespace,
            operator_namespace=operator_namespace,
            key_file=tmp_path / "core-key.pem",
            address_map=f"ledger=127.0.0.1:{ledger.port}",
        ),
        "VIVIFIED_AUDIT_SINK": nats_server.url,
        "VIVIFIED_AUDIT_KEY_FILE": str(key),
        "VIVIFIED_AUDIT_WRITER": "core-e2e",
        "VIVIFIED_CORE_POD_NAME": pod,
        "VIVIFIED_NATS_URL": nats_server.url,
        "VIVIFIED_UI": "off",
        # TEST ONLY (docs/proxy.md): the partner's name from a map; never a real look-up.
        "VIVIFIED_PROXY_TEST_STATIC_HOSTS": json.dumps({PARTNER: ["127.0.0.1"]}),
    }
    core = CoreProcess(env, tmp_path / "core.log")
    try:
        wait_for("core ready", core.ready, timeout=180)  # imports are slow on a busy box
        for body in PLUGINS:
            cluster.apply_plugin(namespace, body)
        tokens = {}
        for body in PLUGINS:
            plugin_id = body["metadata"]["name"]
            cluster.wait_phase(namespace, plugin_id, "Active", timeout=60)
            data = wait_for(
                f"{plugin_id} token",
                lambda p=plugin_id: cluster.secret_data(namespace, f"{p}-token"),
                timeout=30,
            )
            tokens[plugin_id] = data["token"]
        yield {
            "core": core,
            "tokens": tokens,
            "ledger": ledger,
            "nats": nats_server,
            "namespace": namespace,
            "operator_namespace": operator_namespace,
            "pod": pod,
            "public_key": public,
            "tmp": tmp_path,
        }
    finally:
        core.stop()
        ledger.shutdown()


def records(url: str, *query: str) -> list[dict[str, Any]]:
    result = audit("query", "--nats", url, "-o", "json", *query)
    assert result.returncode == 0, result.stdout + result.stderr
    found: list[dict[str, Any]] = json.loads(result.stdout)
    return found


def one(found: list[dict[str, Any]], action: str, **where: Any) -> dict[str, Any]:
    """The single record of ``action`` whose top-level fields equal ``where``."""
    hits = [
        r for r in found if r["action"] == action and all(r.get(k) == v for k, v in where.items())
    ]
    assert len(hits) == 1, (action, where, found)
    return hits[0]


def verified(url: str, public_key: Path) -> str:
    result = audit("verify", "--nats", url, "--public-key", str(public_key))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("intact:"), result.stdout
    return result.stdout


def published(core: CoreProcess, token_file: Path) -> str:
    """Publish one DocumentProcessed (the lane connects to JetStream in the background)."""

    async def go() -> str:
        async with CoreClient(core.url, token_file=TokenFile(token_file)) as core_client:
            for _ in range(300):
                try:
                    return await publish(
                        core_client,
                        "DocumentProcessed",
                        {"document_id": "d-1", "status": "succeeded"},
                        event_id="audit-e2e-1",
                    )
                except PublishRefused as refused:
                    if refused.reason != "engine_unavailable":
                        raise
                await asyncio.sleep(0.3)
        raise AssertionError("the event lane never connected")

    return asyncio.run(go())


def test_lane_decisions_and_lifecycle_changes_are_on_the_trail(
    trail: dict[str, Any], cluster: Cluster
) -> None:
    core: CoreProcess = trail["core"]
    tokens: dict[str, str] = trail["tokens"]
    nats: NatsServer = trail["nats"]
    namespace = trail["namespace"]

    # The operator lane, by a detailed plugin.
    answered = call(core, tokens["scribe"], LOOKUP, "POST", content=b'{"q": 1}')
    assert answered.status_code == 204, answered.text
    # An egress refusal: scribe has no external_service.
    sock, head = _connect(core.proxy_port, f"{PARTNER}:443", tokens["scribe"])
    sock.close()
    assert head.startswith(b"HTTP/1.1 403"), head
    assert f"{contract.PROXY_REASON_HEADER}: trait_missing".encode() in head
    # A published event.
    token_file = trail["tmp"] / "scribe.token"
    token_file.write_text(tokens["scribe"])
    assert published(core, token_file) == "audit-e2e-1"
    # A disable and a re-enable.
    cluster.patch_spec(namespace, "scribe", {"enabled": False})
    cluster.wait_phase(namespace, "scribe", "Disabled")
    cluster.patch_spec(namespace, "scribe", {"enabled": True})
    cluster.wait_phase(namespace, "scribe", "Active", timeout=60)

    def scribe_records() -> list[dict[str, Any]] | None:
        found = records(nats.url, "--plugin", "scribe")
        actions = [r["action"] for r in found]
        return (
            found
            if "lifecycle.disabled" in actions and actions[-1] == "lifecycle.enabled"
            else None
        )

    found = wait_for("scribe's records", scribe_records, timeout=60)

    invoke = one(found, "invoke", outcome="allowed")
    assert invoke["writer"] == "core-e2e"
    assert invoke["agent"] == {"type": "plugin", "id": "scribe", "requestor": True}
    assert invoke["entity"] == {"target": "ledger", "operation": "lookup"}
    assert invoke["lane"] == "operator"
    assert invoke["audit_level"] == "detailed"
    assert invoke["details"]["method"] == "POST"
    assert invoke["details"]["request_bytes"] == len(b'{"q": 1}')
    result = one(found, "invoke.result")
    assert (result["writer"], result["outcome"]) == ("core-e2e", "allowed")
    assert result["entity"] == invoke["entity"]
    assert result["details"]["status"] == 204
    assert result["details"]["response_bytes"] == 0
    assert result["details"]["duration_ms"] >= 0
    assert "request_sha256" not in result["details"], "digests are for complete only"

    egress = one(found, "egress.decision")
    assert (egress["outcome"], egress["reason"]) == ("refused", "trait_missing")
    assert egress["entity"]["host"] == PARTNER
    assert egress["lane"] == "proxy"

    event = one(found, "event.publish")
    assert event["outcome"] == "allowed"
    assert event["entity"]["event_type"] == "DocumentProcessed"
    assert event["entity"]["event_id"] == "audit-e2e-1"

    disabled = one(found, "lifecycle.disabled")
    enabled_after = [
        r for r in found if r["action"] == "lifecycle.enabled" and r["time"] > disabled["time"]
    ]
    assert len(enabled_after) == 1, [(r["action"], r["entity"].get("message")) for r in found]
    for lifecycle in (disabled, *enabled_after):
        assert lifecycle["writer"] == "operator-e2e"
        assert lifecycle["agent"] == {
            "type": "system",
            "id": "vivified-operator",
            "requestor": True,
        }
        assert (lifecycle["entity"]["plugin"], lifecycle["entity"]["namespace"]) == (
            "scribe",
            namespace,
        )
    revoked = one(found, "lifecycle.token_revoked")
    assert revoked["writer"] == "operator-e2e"
    assert revoked["seq"] < disabled["seq"], "the token goes before the phase says Disabled"
    assert invoke["time"] < disabled["time"] < enabled_after[0]["time"]

    # The text query a human runs shows them too.
    text = audit("query", "--nats", nats.url, "--plugin", "scribe")
    assert text.returncode == 0, text.stderr
    for action in ("invoke", "egress.decision", "event.publish", "lifecycle.disabled"):
        assert action in text.stdout
    # Both chains verify against the platform key, and no token is anywhere in the trail.
    verified(nats.url, trail["public_key"])
    everything = json.dumps(records(nats.url))
    assert "eyJ" not in everything
    assert not [t for t in tokens.values() if t in everything]


def body(plugin_id: str) -> bytes:
    return json.dumps({"by": plugin_id}).encode()


def sink_events(k8s: client.CoreV1Api, namespace: str, pod: str) -> list[str]:
    return [
        e.reason
        for e in k8s.list_namespaced_event(namespace).items
        if e.involved_object.name == pod
    ]


def test_with_the_sink_down_complete_fails_closed_basic_is_held_and_nothing_is_lost(
    trail: dict[str, Any], cluster: Cluster
) -> None:
    core: CoreProcess = trail["core"]
    tokens: dict[str, str] = trail["tokens"]
    nats: NatsServer = trail["nats"]
    ledger: Recorder = trail["ledger"]

    def lookup(plugin_id: str) -> httpx.Response:
        return call(core, tokens[plugin_id], LOOKUP, "POST", content=body(plugin_id))

    assert lookup("clinic").status_code == 204
    assert lookup("kiosk").status_code == 204

    nats.stop()  # the trail's (and the event lane's) nats-server goes away
    reached = len(ledger.posts)
    refused = lookup("clinic")
    assert refused.status_code == 503, refused.text
    assert refused.json()["reason"] == "audit_unavailable"
    assert len(ledger.posts) == reached, "a fail-closed call never reaches its target"
    held = [lookup("kiosk") for _ in range(5)]
    assert [r.status_code for r in held] == [204] * 5
    assert len(ledger.posts) == reached + 5

    # Counted and alerted.
    assert (_metric(core, "vivified_audit_outages_total") or 0) >= 1
    assert (_metric(core, "vivified_audit_sink_up") or 0) == 0
    assert (_metric(core, "vivified_audit_records_held_total") or 0) >= 5
    assert (_metric(core, "vivified_audit_refused_unavailable_total") or 0) >= 1
    k8s = client.CoreV1Api(cluster.api)
    where = (trail["operator_namespace"], trail["pod"])
    wait_for("AuditSinkDown event", lambda: "AuditSinkDown" in sink_events(k8s, *where), 30)

    nats.start()  # same port, same store
    wait_for(
        "held records written",
        lambda: (
            _metric(core, "vivified_audit_sink_up") == 1
            and _metric(core, "vivified_audit_backlog") == 0
        ),
        timeout=60,
    )
    wait_for(
        "AuditSinkRecovered event", lambda: "AuditSinkRecovered" in sink_events(k8s, *where), 30
    )

    # Nothing lost: every answered call has its record, the refused one has none.
    found = records(nats.url, "--action", "invoke")
    kiosk = [r for r in found if r["agent"]["id"] == "kiosk"]
    clinic = [r for r in found if r["agent"]["id"] == "clinic"]
    assert [r["action"] for r in kiosk] == ["invoke"] * 6, "1 before the outage + 5 held"
    assert all(r["outcome"] == "allowed" for r in kiosk)
    # clinic: its one call before the outage (decision and result); the 503 left nothing.
    assert [(r["action"], r["outcome"]) for r in clinic] == [
        ("invoke", "allowed"),
        ("invoke.result", "allowed"),
    ]
    assert clinic[0]["audit_level"] == "complete"
    assert clinic[1]["details"]["request_sha256"] == hashlib.sha256(body("clinic")).hexdigest()
    verified(nats.url, trail["public_key"])
