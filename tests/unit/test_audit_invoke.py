"""The operator lane's records by audit level: the decision before forwarding, and at
``detailed``/``complete`` the ``invoke.result`` after the answer (status, sizes, duration,
body digests at ``complete``). Through the real core app and a real upstream server."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest
from tests.unit.core_fakes import manifest
from tests.unit.test_core_gateway import A, B, Lane, lane

from vivified.audit.record import build_body
from vivified.manifest import PluginManifest

__all__ = ["lane"]  # the fixture, shared with test_core_gateway


def at(m: PluginManifest, level: str) -> PluginManifest:
    return m.model_copy(
        update={"compliance": m.compliance.model_copy(update={"audit_level": level})}
    )


def kept(lane: Lane) -> list[dict[str, object]]:
    """The record bodies the trail would keep for the entries the lane made."""
    bodies = [build_body(e, datetime.now(UTC)) for e in lane.world.auditor.entries]
    return [b for b in bodies if b is not None]


@pytest.mark.parametrize(
    ("level", "actions", "digests", "why"),
    [
        ("basic", ["invoke"], False, "metadata: the decision only"),
        ("detailed", ["invoke", "invoke.result"], False, "+ the exchange's status, sizes, time"),
        ("complete", ["invoke", "invoke.result"], True, "+ SHA-256 of both bodies"),
    ],
)
async def test_what_an_operator_lane_call_leaves_by_level(
    lane: Lane, level: str, actions: list[str], digests: bool, why: str
) -> None:
    caller = at(A, level)
    lane.world.add(caller)
    token = lane.world.token(caller).token
    sent = b'{"plan": "gold"}'
    response = await lane.client.put(
        "/v1/invoke/b/echo",
        data=sent,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "User-Agent": "audit-test",
            "Cookie": "session=secret",
        },
    )
    assert response.status == 200
    received = await response.read()
    bodies = kept(lane)
    assert [b["action"] for b in bodies] == actions, why
    decision = bodies[0]
    assert decision["audit_level"] == level
    assert decision["entity"] == {"target": "b", "operation": "echo"}
    if level == "basic":
        assert "details" not in decision
        return
    assert decision["details"] == {
        "method": "PUT",
        "request_bytes": len(sent),
        "headers": {
            "accept": "*/*",  # the test client's
            "content-length": str(len(sent)),
            "content-type": "application/json",
            "user-agent": "audit-test",
        },
    }
    result = bodies[1]
    assert result["outcome"] == "allowed"
    assert result["lane"] == "operator"
    details = result["details"]
    assert isinstance(details, dict)
    assert details["status"] == 200
    assert (details["request_bytes"], details["response_bytes"]) == (len(sent), len(received))
    assert isinstance(details["duration_ms"], int | float)
    if digests:
        assert details["request_sha256"] == hashlib.sha256(sent).hexdigest()
        assert details["response_sha256"] == hashlib.sha256(received).hexdigest()
    else:
        assert "request_sha256" not in details
    text = json.dumps(bodies)
    assert token not in text
    assert "secret" not in text  # the Cookie is not an allowlisted header


async def test_an_upstream_failure_is_the_result_with_its_reason(lane: Lane) -> None:
    caller = at(A, "detailed")
    lane.world.add(caller)
    response = await lane.client.get("/v1/invoke/b/slow", headers=lane.world.bearer(caller))
    assert response.status == 504
    decision, result = kept(lane)
    assert decision["outcome"] == "allowed", "the policy allowed it"
    assert (result["action"], result["outcome"]) == ("invoke.result", "error")
    assert result["reason"] == "upstream_timeout"
    assert result["details"]["status"] == 504  # type: ignore[index]


async def test_a_refusal_has_no_result(lane: Lane) -> None:
    loner = at(manifest("c", dependencies=[]), "complete")
    lane.world.add(loner)
    response = await lane.client.get("/v1/invoke/b/echo", headers=lane.world.bearer(loner))
    assert response.status == 403
    assert [b["action"] for b in kept(lane)] == ["invoke"]
    assert B.id == "b"
