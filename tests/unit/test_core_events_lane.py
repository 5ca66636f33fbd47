"""The event lane as the core mounts it: on/off from the environment, the publish path while
JetStream is unreachable, and the deliveries' call tokens (no nats-server needed here; the
lane against a real one: tests/integration/test_events_lane.py)."""

from __future__ import annotations

import json
import socket
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer
from tests.unit.core_fakes import NOW, World, manifest

from vivified.dataplane import events
from vivified.dataplane.app import build_app
from vivified.dataplane.events.tokens import DeliveryTokens
from vivified.dataplane.lanes import core_lanes, events_setup
from vivified.manifest import PluginManifest
from vivified_sdk import CallVerifier, StaticJwks, TokenInvalid, contract


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


PUBLISHER = PluginManifest.model_validate(
    {
        **manifest("hr", traits=["handles_pii", "audit_required"]).model_dump(),
        "events": {"publishes": ["UserCreated"]},
        "security": {"authentication_required": True, "data_classification": ["pii"]},
    }
)
EVENT = {"specversion": "1.0", "id": "e1", "type": "UserCreated", "data": {"user_id": "u1"}}


def test_the_lane_is_mounted_only_with_a_nats_url() -> None:
    assert events_setup({}) is events.off
    assert events_setup({"VIVIFIED_NATS_URL": "  "}) is events.off
    assert events_setup({"VIVIFIED_NATS_URL": "nats://127.0.0.1:4222"}) is not events.off
    assert core_lanes({"VIVIFIED_UI": "off", "VIVIFIED_PROXY": "off"}) == [events.off]


async def test_without_nats_publishes_are_refused_saying_so() -> None:
    world = World()
    async with TestClient(TestServer(build_app(world.ctx, [events.off]))) as client:
        reply = await client.post(contract.CORE_EVENTS_PATH, json=EVENT)
        assert reply.status == 503
        assert (await reply.json())["reason"] == "event_lane_off"


async def test_an_unreachable_jetstream_answers_503_and_the_core_keeps_serving() -> None:
    world = World()
    world.add(PUBLISHER)
    settings = events.EventLaneSettings(nats_url=f"nats://127.0.0.1:{_closed_port()}")
    app = build_app(world.ctx, [events.lane(settings)])
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/healthz")).status == 200
        reply = await client.post(
            contract.CORE_EVENTS_PATH,
            data=json.dumps(EVENT),
            headers={**world.bearer(PUBLISHER), "Content-Type": contract.CLOUDEVENTS_CONTENT_TYPE},
        )
        assert reply.status == 503, await reply.text()
        assert (await reply.json())["reason"] == "engine_unavailable"
        anonymous = await client.post(contract.CORE_EVENTS_PATH, json=EVENT)
        assert (await anonymous.json())["reason"] == "missing_credentials"
        metrics = await (await client.get("/metrics")).text()
    assert (
        'vivified_core_requests_total{lane="events",outcome="error",reason="engine_unavailable"} 1'
        in metrics
    )
    assert 'vivified_events_published_total{type="UserCreated",reason="published"} 1' in metrics
    publishes = [e for e in world.auditor.entries if e.action == "event.publish"]
    assert [(e.agent, e.outcome) for e in publishes] == [
        ("hr", "allowed"),
        ("anonymous", "refused"),
    ]


def test_delivery_tokens_are_the_cores_call_tokens_for_the_subscriber() -> None:
    world = World()
    world.add(PUBLISHER)
    minted = DeliveryTokens(world.ctx)
    token = minted.token(subscriber="accounting", publisher="hr")
    jwks = json.loads(world.trust.published_jwks())
    verifier = CallVerifier(StaticJwks(jwks), plugin_id="accounting", clock=lambda: world.now)
    identity = verifier.verify(token)
    assert identity.caller == "hr"
    assert identity.operation == contract.EVENT_DELIVERY_OPERATION
    assert identity.actor == world.ctx.settings.call_token_issuer
    assert "handles_pii" in identity.traits
    other = CallVerifier(StaticJwks(jwks), plugin_id="billing", clock=lambda: world.now)
    with pytest.raises(TokenInvalid, match="audience"):
        other.verify(token)
    # Reused for half its lifetime, then minted afresh.
    assert minted.token(subscriber="accounting", publisher="hr") == token
    world.now = NOW + timedelta(seconds=world.ctx.settings.call_token_ttl_seconds / 2 + 1)
    assert minted.token(subscriber="accounting", publisher="hr") != token
    assert minted.token(subscriber="billing", publisher="hr") != token
