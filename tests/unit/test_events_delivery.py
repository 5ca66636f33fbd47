"""The delivery worker's decisions through fakes: the audit record comes before the POST, and
an event whose record cannot be kept is handed back instead of delivered (fail closed); the
events behind it keep their order. Against a real nats-server: tests/integration/."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from tests.unit.core_fakes import World

from vivified.audit.hook import AuditEntry, AuditUnavailable
from vivified.audit.record import must_persist
from vivified.dataplane.directory import PluginRecord
from vivified.dataplane.events.delivery import SUBJECT_HEADER, DeliveryWorker, Outcome, identify
from vivified.dataplane.events.metrics import EventMetrics
from vivified.dataplane.events.post import Answer
from vivified.dataplane.events.settings import EventLaneSettings
from vivified.dataplane.events.tokens import DeliveryTokens
from vivified.event_types import packaged_registry
from vivified.manifest import PluginManifest

TYPE = "DocumentProcessed"  # confidential: no trait needed to publish or subscribe


def _manifest(plugin_id: str, level: str, required: bool, **events: list[str]) -> PluginManifest:
    raw: dict[str, Any] = {
        "id": plugin_id,
        "name": plugin_id,
        "version": "1.0.0",
        "contracts": ["StoragePlugin"],
        "traits": ["audit_required"] if required else ["internal_service"],
        "endpoints": {"health": "/health", "events": "/events"},
        "security": {"authentication_required": True, "data_classification": ["confidential"]},
        "compliance": {"audit_level": level},
        "events": events,
    }
    return PluginManifest.model_validate(raw)


class SwitchableAuditor:
    """The chained auditor's rule without its storage: while ``down``, an entry that must be
    kept (``complete`` or ``audit_required``) raises; the others are held. ``log`` interleaves
    records with the fake subscriber's POSTs, so the order of the two is visible."""

    def __init__(self, log: list[str]) -> None:
        self.down = False
        self.log = log
        self.entries: list[AuditEntry] = []

    async def record(self, entry: AuditEntry) -> None:
        if self.down and must_persist(entry):
            raise AuditUnavailable("audit_unavailable")
        self.entries.append(entry)
        self.log.append(f"audit:{entry.action}:{entry.entity.get('event_id', '')}")


@dataclass
class FakeMsg:
    """What the worker uses of a JetStream message."""

    event_id: str
    publisher: str = "hr"
    subject: str | None = None
    acks: list[str] = field(default_factory=list)

    @property
    def headers(self) -> Mapping[str, str]:
        found = {"Nats-Msg-Id": f"{self.publisher}/{self.event_id}"}
        if self.subject:
            found[SUBJECT_HEADER] = self.subject
        return found

    data = b'{"specversion":"1.0"}'
    metadata = SimpleNamespace(
        sequence=SimpleNamespace(stream=1), timestamp=datetime(2026, 1, 1, tzinfo=UTC)
    )

    async def ack(self) -> None:
        self.acks.append("ack")

    async def nak(self, delay: float | None = None) -> None:
        self.acks.append(f"nak:{delay}")

    async def in_progress(self) -> None:
        self.acks.append("wpi")


class FakeHttp:
    """The subscriber: answers ``status`` and logs each POST's event (by attempt header)."""

    def __init__(self, log: list[str], status: int = 204) -> None:
        self.log = log
        self.status = status
        self.posts = 0

    async def post(self, url: str, body: bytes, headers: Any, *, timeout: float) -> Answer:
        self.posts += 1
        self.log.append("post")
        return Answer(self.status, "")


class Lane:
    """The parts of EventLane a worker touches."""

    def __init__(self, world: World, settings: EventLaneSettings) -> None:
        self.log: list[str] = []
        self.auditor = SwitchableAuditor(self.log)
        world.ctx.auditor = self.auditor
        self.ctx = world.ctx
        self.settings = settings
        self.registry = packaged_registry()
        self.metrics = EventMetrics(world.ctx.metrics)
        self.tokens = DeliveryTokens(world.ctx)
        self.http = FakeHttp(self.log)
        self.background: set[asyncio.Task[None]] = set()

    def resolve_url(self, record: PluginRecord) -> str:
        return "http://sub.test"


def _lane(sub_level: str, sub_required: bool, pub_level: str, pub_required: bool) -> Lane:
    world = World()
    world.add(_manifest("hr", pub_level, pub_required, publishes=[TYPE]))
    world.add(_manifest("billing", sub_level, sub_required, subscribes=[TYPE]))
    settings = EventLaneSettings(audit_retry_seconds=7.0, max_attempts=2, ack_wait_seconds=30)
    return Lane(world, settings)


def _worker(lane: Lane) -> DeliveryWorker:
    return DeliveryWorker(lane, "billing", TYPE)  # type: ignore[arg-type]


# (subscriber level, required, publisher level, required): must the trail have it?
STRICTNESS = [
    (("basic", False, "basic", False), False, "neither side needs the trail: held, delivered"),
    (("basic", True, "basic", False), True, "the subscriber is audit_required"),
    (("basic", False, "basic", True), True, "the publisher is audit_required (its data moves)"),
    (("basic", False, "complete", False), True, "the publisher is complete: the stricter wins"),
    (("complete", False, "basic", False), True, "the subscriber is complete"),
    (("detailed", False, "detailed", False), False, "detailed needs no fail-closed trail"),
]


@pytest.mark.parametrize(("parties", "fails_closed", "reason"), STRICTNESS)
async def test_an_outage_hands_back_what_must_be_on_record_and_delivers_the_rest(
    parties: tuple[str, bool, str, bool], fails_closed: bool, reason: str
) -> None:
    lane = _lane(*parties)
    lane.auditor.down = True
    msg = FakeMsg("e1")
    outcome = await _worker(lane)._deliver(msg)  # type: ignore[arg-type]
    if fails_closed:
        assert outcome is Outcome.HANDED_BACK, reason
        assert lane.http.posts == 0, reason  # nothing delivered unaudited
        assert msg.acks == ["nak:7.0"], reason  # not lost: redelivered after the delay
        assert lane.metrics.audit_held.value("billing", TYPE) == 1
    else:
        assert outcome is Outcome.DELIVERED, reason
        assert msg.acks == ["ack"], reason
        assert lane.log == ["audit:event.deliver:e1", "post"], reason


async def test_the_record_is_written_before_the_post_with_the_stricter_terms() -> None:
    lane = _lane("basic", False, "complete", False)
    msg = FakeMsg("e1")
    assert await _worker(lane)._deliver(msg) is Outcome.DELIVERED  # type: ignore[arg-type]
    assert lane.log == ["audit:event.deliver:e1", "post"]
    entry = lane.auditor.entries[0]
    assert (entry.audit_level, entry.audit_required) == ("complete", False)
    assert entry.entity["source"] == "vivified://plugins/hr"
    assert msg.acks == ["ack"]


async def test_every_attempt_is_on_record_and_dead_lettering_too() -> None:
    lane = _lane("basic", True, "basic", False)
    lane.http.status = 500
    worker = _worker(lane)
    dead: list[int] = []

    async def dead_letter(msg: Any, attempts: int, error: str) -> None:
        dead.append(attempts)

    worker._dead_letter = dead_letter  # type: ignore[method-assign]
    lane.settings = EventLaneSettings(max_attempts=2, backoff_initial_seconds=0.0)
    outcome = await worker._deliver(FakeMsg("e1"))  # type: ignore[arg-type]
    assert outcome is Outcome.DEAD_LETTERED
    assert dead == [2]
    assert lane.log == [
        "audit:event.deliver:e1",
        "post",
        "audit:event.deliver:e1",
        "post",
        "audit:event.dead_letter:e1",
    ]


async def test_the_trail_back_delivers_the_handed_back_event() -> None:
    lane = _lane("basic", True, "basic", False)
    worker = _worker(lane)
    lane.auditor.down = True
    assert await worker._deliver(FakeMsg("e1")) is Outcome.HANDED_BACK  # type: ignore[arg-type]
    lane.auditor.down = False
    redelivered = FakeMsg("e1")
    assert await worker._deliver(redelivered) is Outcome.DELIVERED  # type: ignore[arg-type]
    assert redelivered.acks == ["ack"]
    assert lane.log == ["audit:event.deliver:e1", "post"]


async def test_concurrent_deliveries_keep_a_subjects_order_behind_a_handed_back_event() -> None:
    """max_in_flight > 1: an event handed back (trail down) takes the later events of the
    same subject with it, so they cannot overtake it; other subjects are delivered."""
    lane = _lane("basic", True, "basic", False)
    lane.settings = EventLaneSettings(max_in_flight=4, audit_retry_seconds=7.0)
    worker = DeliveryWorker(lane, "billing", TYPE)  # type: ignore[arg-type]
    lane.auditor.down = True
    first, second = FakeMsg("a1", subject="k-a"), FakeMsg("a2", subject="k-a")
    await worker._dispatch(first)  # type: ignore[arg-type]
    await worker._dispatch(second)  # type: ignore[arg-type]
    await asyncio.gather(*worker._tasks)
    lane.auditor.down = False
    other = FakeMsg("b1", subject="k-b")
    await worker._dispatch(other)  # type: ignore[arg-type]
    await asyncio.gather(*worker._tasks)
    assert (first.acks, second.acks, other.acks) == (["nak:7.0"], ["nak:7.0"], ["ack"])
    assert lane.http.posts == 1


def test_a_delivery_names_its_publisher_without_parsing_the_body() -> None:
    assert identify(FakeMsg("id/with/slashes", publisher="hr")) == (  # type: ignore[arg-type]
        "hr",
        "id/with/slashes",
    )
    legacy = SimpleNamespace(headers=None, data=b'{"id":"x","source":"vivified://plugins/old"}')
    assert identify(legacy) == ("old", "x")  # type: ignore[arg-type]
    with pytest.raises(UnicodeDecodeError):
        identify(SimpleNamespace(headers=None, data=b"\xff"))  # type: ignore[arg-type]


def test_the_delivery_tunables_come_from_the_environment() -> None:
    s = EventLaneSettings.from_env(
        {
            "VIVIFIED_EVENTS_PREFETCH": "16",
            "VIVIFIED_EVENTS_MAX_IN_FLIGHT": "32",
            "VIVIFIED_EVENTS_PIN_TIMEOUT_SECONDS": "4",
            "VIVIFIED_EVENTS_PULL_EXPIRES_SECONDS": "1.5",
            "VIVIFIED_EVENTS_AUDIT_RETRY_SECONDS": "3",
        }
    )
    assert (s.prefetch, s.max_in_flight, s.pin_timeout_seconds) == (16, 32, 4.0)
    assert (s.pull_expires_seconds, s.audit_retry_seconds) == (1.5, 3.0)
    assert s.pull_batch == 32  # never hold fewer than run at once
    assert EventLaneSettings().pull_batch == 64
