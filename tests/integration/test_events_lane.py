"""The event lane against a real nats-server: publish, deliver, refuse, retry, dead-letter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from audit_support import SwitchableSink
from events_support import (
    Subscriber,
    World,
    cloudevent,
    manifest,
    record,
    set_phase,
    user_created,
)
from nats_support import NatsServer
from vivified.audit.hook import MemoryAuditor
from vivified.dataplane import events
from vivified.dataplane.app import build_app
from vivified.dataplane.audit.auditor import ChainAuditor
from vivified.dataplane.directory import StaticDirectory
from vivified.dataplane.events import EventLane, EventLaneSettings
from vivified.dataplane.events.stream import owned_consumers

PUBLISHER = "user-management"


@dataclass
class Env:
    client: TestClient[Any, Any]
    lane: EventLane
    world: World
    subscribers: dict[str, Subscriber] = field(default_factory=dict)

    @property
    def directory(self) -> StaticDirectory:
        return self.world.directory

    @property
    def auditor(self) -> MemoryAuditor:
        return self.world.auditor

    def bearer(self, plugin: str = PUBLISHER) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.world.token_for(plugin)}"}

    async def publish(self, body: Any, plugin: str = PUBLISHER, **kw: Any) -> Any:
        headers = self.bearer(plugin)
        headers.update(kw.pop("headers", {}))
        if isinstance(body, bytes | str):
            kw["data"] = body
            headers.setdefault("Content-Type", "application/cloudevents+json")
            return await self.client.post("/v1/events", headers=headers, **kw)
        headers.setdefault("Content-Type", "application/cloudevents+json")
        import json  # noqa: PLC0415

        return await self.client.post("/v1/events", data=json.dumps(body), headers=headers)


async def until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def _settings(nats: NatsServer) -> EventLaneSettings:
    return EventLaneSettings(
        nats_url=nats.url,
        max_attempts=3,
        backoff_initial_seconds=0.05,
        backoff_max_seconds=0.2,
        delivery_timeout_seconds=0.5,
        reconcile_seconds=0.2,
        ack_wait_seconds=3.0,
        orphan_grace_seconds=1.0,
        audit_retry_seconds=0.3,
    )


EnvFactory = Callable[..., Awaitable[Env]]


@pytest.fixture
async def make_env(nats_server: NatsServer) -> AsyncIterator[EnvFactory]:
    made: list[Env] = []

    async def factory(**subs: tuple[dict[str, Any], str]) -> Env:
        world = World()
        world.directory.put(record(manifest(PUBLISHER, publishes=["UserCreated"])))
        subscribers: dict[str, Subscriber] = {}
        for plugin_id, (raw, mode) in subs.items():
            world.directory.put(record(raw))
            subscribers[plugin_id] = await Subscriber(mode=mode).start()
        app = build_app(
            world.ctx,
            [
                events.lane(
                    _settings(nats_server), resolve_url=lambda r: subscribers[r.plugin_id].url
                )
            ],
        )
        client = TestClient(TestServer(app))
        await client.start_server()
        lane = app[events.LANE_KEY]
        await until(lambda: lane.ready, 60)  # connects in the background; slow when loaded
        env = Env(client, lane, world, subscribers)
        made.append(env)
        return env

    yield factory
    for env in made:
        await env.client.close()
        for sub in env.subscribers.values():
            await sub.stop()


ACCOUNTING = ("accounting", manifest("accounting", subscribes=["UserCreated"]))


async def test_published_event_is_delivered_as_published_with_core_attributes(
    make_env: EnvFactory,
) -> None:
    env = await make_env(
        accounting=(ACCOUNTING[1], "ok"),
        nosy=(manifest("nosy", pii=False, subscribes=["DocumentProcessed"]), "ok"),
    )
    sent = user_created(1) | {"subject": "u1", "traceparent": "00-abc"}
    resp = await env.publish(sent)
    assert resp.status == 201, await resp.text()
    assert await resp.json() == {
        "id": "evt-1",
        "type": "UserCreated",
        "source": "vivified://plugins/user-management",
    }
    accounting = env.subscribers["accounting"]
    await until(lambda: len(accounting.received) == 1)
    got = accounting.received[0]
    core_set = {"source", "time", "datacontenttype", "vivifiedclassification"}
    assert {k: v for k, v in got.items() if k not in core_set} == sent
    assert got["source"] == "vivified://plugins/user-management"
    assert got["vivifiedclassification"] == "pii"
    identity = env.world.delivered_by_core("accounting", accounting.tokens[0])
    assert identity.caller == PUBLISHER
    assert identity.target == "accounting"
    await asyncio.sleep(0.5)
    assert env.subscribers["nosy"].received == []
    actions = [(e.action, e.outcome, e.agent) for e in env.auditor.entries]
    assert ("event.publish", "allowed", PUBLISHER) in actions
    assert ("event.deliver", "allowed", "accounting") in actions


async def test_duplicate_id_is_stored_once(make_env: EnvFactory) -> None:
    env = await make_env(accounting=(ACCOUNTING[1], "ok"))
    assert (await env.publish(user_created(7))).status == 201
    again = await env.publish(user_created(7))
    assert again.status == 200
    assert (await again.json())["duplicate"] is True
    await until(lambda: len(env.subscribers["accounting"].received) == 1)
    await asyncio.sleep(0.5)
    assert env.subscribers["accounting"].ids() == ["evt-7"]


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ("{not json", 400, "malformed_json"),
        ("[1, 2]", 400, "not_a_cloudevent"),
        ({"hello": "world"}, 400, "not_a_cloudevent"),
        (cloudevent("UserCreated", {}, "x", specversion="0.3"), 400, "unsupported_specversion"),
        (cloudevent("NoSuchType", {}, "x"), 400, "unknown_event_type"),
        (cloudevent("PaymentReceived", {}, "x"), 403, "type_not_declared"),
        (cloudevent("UserCreated", {"user_id": 5}, "x"), 422, "data_invalid"),
        (user_created(1) | {"source": "vivified://plugins/billing"}, 403, "source_mismatch"),
        (user_created(1) | {"vivifiedclassification": "public"}, 400, "reserved_attribute"),
        (
            user_created(1) | {"data": {"user_id": "u", "email": "e@x", "pad": "x" * 70000}},
            413,
            "event_too_large",
        ),
    ],
)
async def test_bad_input_is_refused_with_problem_json(
    make_env: EnvFactory, body: Any, status: int, reason: str
) -> None:
    env = await make_env(accounting=(ACCOUNTING[1], "ok"))
    resp = await env.publish(body)
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    problem = await resp.json()
    assert problem["reason"] == reason
    assert problem["detail"]
    await asyncio.sleep(0.3)
    assert env.subscribers["accounting"].received == []


async def test_authentication_and_media_type(make_env: EnvFactory) -> None:
    env = await make_env()
    resp = await env.client.post("/v1/events", json=user_created(1))
    assert (resp.status, (await resp.json())["reason"]) == (401, "missing_credentials")
    resp = await env.publish(user_created(1), headers={"Authorization": "Bearer forged"})
    assert (resp.status, (await resp.json())["reason"]) == (401, "invalid_token")
    forged = World().token_for(PUBLISHER)  # signed by another operator's key
    resp = await env.publish(user_created(1), headers={"Authorization": f"Bearer {forged}"})
    assert (resp.status, (await resp.json())["reason"]) == (401, "invalid_token")
    resp = await env.publish("x", headers={"Content-Type": "text/plain"})
    assert (resp.status, (await resp.json())["reason"]) == (415, "unsupported_media_type")
    resp = await env.publish(user_created(1), plugin="stranger")
    assert (resp.status, (await resp.json())["reason"]) == (401, "unknown_plugin")
    set_phase(env.directory, PUBLISHER, "Disabled")
    resp = await env.publish(user_created(1))
    assert (resp.status, (await resp.json())["reason"]) == (401, "plugin_inactive")
    refused = [e for e in env.auditor.entries if e.action == "event.publish"]
    assert [e.outcome for e in refused] == ["refused"] * 6
    assert refused[0].agent == "anonymous"
    assert refused[-1].reason == "plugin_inactive"


async def test_failing_subscriber_dead_letters_after_attempts_others_unaffected(
    make_env: EnvFactory,
) -> None:
    env = await make_env(
        accounting=(ACCOUNTING[1], "ok"),
        broken=(manifest("broken", subscribes=["UserCreated"]), "fail"),
        stuck=(manifest("stuck", subscribes=["UserCreated"]), "hang"),
    )
    for n in range(2):
        assert (await env.publish(user_created(n))).status == 201
    await until(lambda: len(env.subscribers["accounting"].received) == 2)
    lane = env.lane
    await until(lambda: lane.metrics.dead_lettered.value("broken", "UserCreated") == 2)
    await until(lambda: lane.metrics.dead_lettered.value("stuck", "UserCreated") == 2, 60)
    assert env.subscribers["broken"].attempts == 2 * 3
    status = await lane.subscriber_status("broken")
    assert status["deadLettered"] == 2
    assert status["pending"] == 0
    metrics = await (await env.client.get("/metrics")).text()
    assert (
        'vivified_events_dead_lettered_total{subscriber="broken",type="UserCreated"} 2' in metrics
    )
    resp = await env.client.get("/v1/events/status/broken", headers=env.bearer("broken"))
    assert (await resp.json())["deadLettered"] == 2
    resp = await env.client.get("/v1/events/status/broken", headers=env.bearer(PUBLISHER))
    assert (resp.status, (await resp.json())["reason"]) == (403, "not_your_status")
    dead = [e for e in env.auditor.entries if e.action == "event.dead_letter"]
    assert len(dead) == 4


async def test_delivery_pauses_while_disabled_and_resumes_losing_nothing(
    make_env: EnvFactory,
) -> None:
    env = await make_env(accounting=(ACCOUNTING[1], "ok"))
    set_phase(env.directory, "accounting", "Disabled")
    await asyncio.sleep(0.5)
    for n in range(5):
        assert (await env.publish(user_created(n))).status == 201
    await asyncio.sleep(1.0)
    assert env.subscribers["accounting"].received == []
    assert (await env.lane.subscriber_status("accounting"))["pending"] == 5
    set_phase(env.directory, "accounting", "Active")
    await until(lambda: len(env.subscribers["accounting"].received) == 5)
    assert env.subscribers["accounting"].ids() == [f"evt-{n}" for n in range(5)]  # in order


async def test_per_type_order_with_a_flaky_subscriber(make_env: EnvFactory) -> None:
    env = await make_env(accounting=(ACCOUNTING[1], "ok"))
    sub = env.subscribers["accounting"]
    sub.mode = "fail"
    for n in range(10):
        assert (await env.publish(user_created(n))).status == 201
    await until(lambda: sub.attempts >= 2)
    sub.mode = "ok"
    await until(lambda: len(sub.received) >= 9)
    ids = sub.ids()
    assert ids == sorted(ids, key=lambda i: int(i.split("-")[1]))


async def test_sdk_publish_and_receiver_end_to_end(make_env: EnvFactory, tmp_path: Any) -> None:
    from vivified_sdk import (  # noqa: PLC0415
        CoreClient,
        EventReceiver,
        PublishRefused,
        TokenFile,
        publish,
    )

    env = await make_env(accounting=(ACCOUNTING[1], "ok"))
    handled: list[dict[str, Any]] = []
    # The subscriber's side: the core's call tokens, checked against the core's JWKS.
    receiver = EventReceiver(env.world.call_verifier("accounting"), handled.append)

    async def on_event(request: web.Request) -> web.Response:
        status, body = await receiver.receive(dict(request.headers), await request.read())
        return web.json_response(body, status=status) if body else web.Response(status=status)

    app = web.Application()
    app.router.add_post("/events", on_event)
    sdk_sub = TestServer(app)
    await sdk_sub.start_server()
    env.subscribers["accounting"].url = str(sdk_sub.make_url("")).rstrip("/")

    token_file = tmp_path / "token"
    token_file.write_text(env.world.token_for(PUBLISHER))
    base = str(env.client.make_url("")).rstrip("/")
    async with CoreClient(base, token_file=TokenFile(token_file)) as core:
        event_id = await publish(core, "UserCreated", {"user_id": "u9"}, event_id="e9")
        assert event_id == "e9"
        assert await publish(core, "UserCreated", {"user_id": "u9"}, event_id="e9") == "e9"
        with pytest.raises(PublishRefused) as refused:
            await publish(core, "PatientAdmitted", {"patient_id": "p"})
        assert refused.value.reason == "type_not_declared"
    await until(lambda: len(handled) == 1)
    assert handled[0]["data"] == {"user_id": "u9"}
    assert env.lane.metrics.delivered.value("accounting", "UserCreated") == 1
    await sdk_sub.close()


async def test_user_management_publishes_user_created_on_profile_creation(
    make_env: EnvFactory, tmp_path: Any
) -> None:
    import sys  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    import httpx  # noqa: PLC0415

    from vivified_sdk import StaticJwks, StaticRevocations, TokenFile, TokenVerifier  # noqa: PLC0415

    env = await make_env(
        accounting=(ACCOUNTING[1], "ok"),
        nosy=(manifest("nosy", pii=False, subscribes=["DocumentProcessed"]), "ok"),
    )
    plugin_dir = Path(__file__).resolve().parents[2] / "plugins" / "user-management"
    sys.path.insert(0, str(plugin_dir))
    try:
        from user_management.app import Config, create_app  # noqa: PLC0415
    finally:
        sys.path.remove(str(plugin_dir))
    from vivified import tokens  # noqa: PLC0415

    (tmp_path / "token").write_text(env.world.token_for(PUBLISHER))
    settings = env.world.ctx.settings
    app = create_app(
        Config(
            verifier=TokenVerifier(
                StaticJwks(tokens.jwks(env.world.keyring)),
                revocations=StaticRevocations(),
                audience=settings.token_audience,
                issuer=settings.token_issuer,
            ),
            db_path=str(tmp_path / "users.db"),
            token_file=TokenFile(tmp_path / "token"),
            core_url=str(env.client.make_url("")).rstrip("/"),
        )
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://um") as um:
        reply = await um.put(
            "/api/users/alice",
            json={"email": "alice@example.org"},
            headers=env.bearer("hr-portal"),
        )
        assert reply.status_code == 201, reply.text
    accounting = env.subscribers["accounting"]
    await until(lambda: len(accounting.received) == 1)
    event = accounting.received[0]
    assert event["type"] == "UserCreated"
    assert event["source"] == "vivified://plugins/user-management"
    assert event["data"] == {"user_id": "alice", "email": "alice@example.org"}
    assert env.world.delivered_by_core("accounting", accounting.tokens[0]).caller == PUBLISHER
    await asyncio.sleep(0.5)
    assert env.subscribers["nosy"].received == []


async def test_chunked_bodies_are_read_whole_and_limited(make_env: EnvFactory) -> None:
    import json  # noqa: PLC0415

    env = await make_env(accounting=(ACCOUNTING[1], "ok"))
    raw = json.dumps(user_created(3)).encode()

    async def chunks(data: bytes) -> Any:
        for i in range(0, len(data), 7):
            yield data[i : i + 7]

    headers = {**env.bearer(), "Content-Type": "application/cloudevents+json"}
    resp = await env.client.post("/v1/events", data=chunks(raw), headers=headers)
    assert resp.status == 201, await resp.text()
    big = json.dumps(user_created(4) | {"data": {"user_id": "x" * 70000}}).encode()
    resp = await env.client.post("/v1/events", data=chunks(big), headers=headers)
    assert (resp.status, (await resp.json())["reason"]) == (413, "event_too_large")


async def test_subscriber_deleted_while_events_pending(make_env: EnvFactory) -> None:
    env = await make_env(
        accounting=(ACCOUNTING[1], "ok"),
        gone=(manifest("gone", subscribes=["UserCreated"]), "hang"),
    )
    for n in range(3):
        assert (await env.publish(user_created(n))).status == 201
    await until(lambda: env.subscribers["gone"].attempts >= 1)
    env.directory.remove("gone")
    await until(lambda: ("gone", "UserCreated") not in env.lane.workers)
    deadline = time.monotonic() + 10
    while "vd_gone_UserCreated" in await owned_consumers(env.lane.js, env.lane.settings):
        assert time.monotonic() < deadline, "the orphaned consumer was not deleted"
        await asyncio.sleep(0.2)
    for n in range(3, 5):
        assert (await env.publish(user_created(n))).status == 201
    await until(lambda: len(env.subscribers["accounting"].received) == 5)
    assert env.subscribers["gone"].received == []


def _basic(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` without ``audit_required``, at level basic: its trail may lag in an outage."""
    return {**raw, "traits": ["handles_pii"], "compliance": {"audit_level": "basic"}}


async def test_a_trail_outage_holds_deliveries_that_must_be_on_record(
    make_env: EnvFactory, tmp_path: Any
) -> None:
    """Fail closed: while the trail is down, an event for an ``audit_required`` subscriber is
    not delivered (handed back, again and again) and a basic one is; when the trail is back the
    held event is delivered, after its record, and nothing was lost."""
    import json  # noqa: PLC0415

    env = await make_env(
        records=(manifest("records", subscribes=["UserCreated"]), "ok"),
        plain=(_basic(manifest("plain", subscribes=["UserCreated"])), "ok"),
    )
    env.directory.put(record(_basic(manifest("hr", publishes=["UserCreated"]))))
    path = tmp_path / "audit.jsonl"
    sink = SwitchableSink(path)
    auditor = ChainAuditor(sink, "core-test", retry_seconds=0.2)
    await auditor.start()
    env.world.ctx.auditor = auditor
    records, plain = env.subscribers["records"], env.subscribers["plain"]
    try:
        assert (await env.publish(user_created(0), plugin="hr")).status == 201
        await until(lambda: len(records.received) == len(plain.received) == 1)
        sink.down = True
        assert (await env.publish(user_created(1), plugin="hr")).status == 201  # held record
        held = env.lane.metrics.audit_held
        await until(lambda: len(plain.received) == 2 and held.value("records", "UserCreated") >= 2)
        assert records.ids() == ["evt-0"]  # handed back twice, never delivered unaudited
        sink.down = False
        await until(lambda: records.ids() == ["evt-0", "evt-1"])
    finally:
        await auditor.close()
    trail = [json.loads(line) for line in path.read_text().splitlines()]
    delivered = [
        (r["agent"]["id"], r["entity"]["event_id"]) for r in trail if r["action"] == "event.deliver"
    ]
    assert ("records", "evt-1") in delivered
    assert ("plain", "evt-1") in delivered  # held during the outage, written after it
