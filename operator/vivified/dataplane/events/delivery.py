"""Delivery workers: one per (subscriber, type), pulling the core's durable consumer ahead.

At least once: an event is acknowledged to JetStream only after the subscriber answered 2xx
(or after it was stored in the dead-letter stream). A crash loses nothing: what is not
acknowledged is redelivered after the ack deadline.

Order. Each consumer is pulled by one core replica at a time (JetStream's pinned client), in
batches (``prefetch``). With ``max_in_flight`` 1 (default) its events are delivered one after
another in stream order, a failing one retried in place while the rest wait: per-type order
per subscriber. With ``max_in_flight`` N > 1 up to N are delivered at once, and only events
with the same CloudEvents ``subject`` keep their order (the next waits for the one before).
After a replica crash, events stored after the ones it held may arrive before those are
redelivered (at most ``prefetch``); subscribers must be idempotent anyway.

Audit fails closed. The delivery's record is written *before* the POST, at the stricter level
of publisher and subscriber (as the operator lane does for caller and target); when the trail
cannot take a record that must be kept (:class:`AuditUnavailable`) the event is not delivered
but handed back (nak with ``audit_retry_seconds`` delay, the events behind it too, so order
holds): nothing lost, nothing delivered unaudited, and other consumers keep flowing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.errors import Error as JsError

from vivified.audit.hook import AuditEntry, AuditUnavailable
from vivified.dataplane.directory import PluginRecord
from vivified.dataplane.events import names
from vivified.dataplane.events.metrics import LANE
from vivified.dataplane.events.pull import Puller
from vivified.dataplane.events.settings import backoff_seconds
from vivified.manifest import AUDIT_LEVELS, EVENTS_ENDPOINT
from vivified.policy.events import EventDecision, decide_delivery
from vivified_sdk import contract

if TYPE_CHECKING:
    from vivified.dataplane.events.lane import EventLane

log = logging.getLogger(__name__)

#: Header the publish path sets from the CloudEvents ``subject`` (the ordering key when
#: deliveries run concurrently).
SUBJECT_HEADER = "Vivified-Subject"


class Outcome(Enum):
    DELIVERED = "delivered"
    DEAD_LETTERED = "dead_lettered"
    #: Handed back (nak): the subscriber was paused, or the audit trail was unavailable.
    HANDED_BACK = "handed_back"


def _levels(records: tuple[PluginRecord | None, ...]) -> tuple[str, bool]:
    """The stricter audit level of the parties, and whether any requires the trail."""
    manifests = [r.manifest for r in records if r is not None]
    levels = [m.compliance.audit_level for m in manifests] or ["basic"]
    level = max(levels, key=AUDIT_LEVELS.index)
    return level, any("audit_required" in m.traits for m in manifests)


def identify(msg: Msg) -> tuple[str, str]:
    """(publisher, event id) of a stored event: from its ``Nats-Msg-Id`` (set on publish as
    ``<publisher>/<id>``; plugin ids have no '/'), so a delivery does not parse the body."""
    msg_id = msg.headers.get("Nats-Msg-Id", "") if msg.headers else ""
    publisher, sep, event_id = msg_id.partition("/")
    if sep:
        return publisher, event_id
    event = json.loads(msg.data)  # ValueError: not ours
    if not isinstance(event, dict):
        raise ValueError("not a CloudEvent")
    source = str(event.get("source", ""))
    return source.removeprefix(contract.EVENT_SOURCE_PREFIX), str(event.get("id", ""))


class DeliveryWorker:
    def __init__(self, lane: EventLane, subscriber: str, type_name: str) -> None:
        self.lane = lane
        self.subscriber = subscriber
        self.type_name = type_name
        self.durable = names.consumer_name(subscriber, type_name)
        self.task: asyncio.Task[None] | None = None
        self.puller: Puller | None = None
        #: The last refusal's reason while paused ("" = delivering): audited once per change.
        self.paused_reason = ""
        self._decided: tuple[PluginRecord | None, EventDecision] | None = None
        self._terms: dict[str, tuple[PluginRecord | None, PluginRecord | None, str, bool]] = {}
        self._url_of: PluginRecord | None = None
        self._events_url = ""
        self._slots = asyncio.Semaphore(max(1, lane.settings.max_in_flight))
        self._tasks: set[asyncio.Task[None]] = set()
        #: Per ordering key: the outcome of the last event dispatched with that key.
        self._chains: dict[str, asyncio.Future[Outcome]] = {}

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"deliver:{self.durable}")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task

    # -- policy and audit terms, recomputed only when a record changes -----------------------

    def _allowed(self) -> bool:
        record = self.lane.ctx.directory.get(self.subscriber)
        cached = self._decided
        if cached is not None and cached[0] is record:
            decision = cached[1]
        else:
            decision = decide_delivery(record, self.type_name, self.lane.registry)
            self._decided = (record, decision)
        reason = "" if decision.allowed else decision.reason
        if reason != self.paused_reason:
            self.paused_reason = reason
            task = asyncio.get_running_loop().create_task(self._audit_pause(decision))
            self.lane.background.add(task)
            task.add_done_callback(self.lane.background.discard)
        return decision.allowed

    def _audit_terms(self, publisher: str) -> tuple[str, bool]:
        """The stricter of subscriber and publisher (like the operator lane's caller and
        target): a delivery moves the publisher's data to the subscriber."""
        directory = self.lane.ctx.directory
        sub, pub = directory.get(self.subscriber), directory.get(publisher)
        cached = self._terms.get(publisher)
        if cached is not None and cached[0] is sub and cached[1] is pub:
            return cached[2], cached[3]
        level, required = _levels((sub, pub))
        if len(self._terms) > 256:  # publishers of one type: few; bound it anyway
            self._terms.clear()
        self._terms[publisher] = (sub, pub, level, required)
        return level, required

    async def _audit_pause(self, decision: EventDecision) -> None:
        """Delivery stopped (refused by policy: Disabled, trait lost ...) or resumed."""
        outcome = "allowed" if decision.allowed else "refused"
        self.lane.ctx.metrics.decisions.inc(LANE, outcome, decision.reason)
        level, required = _levels((self.lane.ctx.directory.get(self.subscriber),))
        await self._record(
            AuditEntry(
                action="event.deliver",
                agent=self.subscriber,
                outcome="allowed" if decision.allowed else "refused",
                reason="resumed" if decision.allowed else decision.reason,
                entity={"event_type": self.type_name},
                details={"state": "delivering" if decision.allowed else "paused"},
                audit_level=level,
                audit_required=required,
            )
        )

    # -- the loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        lane = self.lane
        s = lane.settings
        puller = Puller(
            lane.nc,
            s.stream,
            self.durable,
            batch=s.pull_batch,
            expires=s.pull_expires_seconds,
            ack_wait=s.ack_wait_seconds,
        )
        self.puller = puller
        await puller.start()
        try:
            while True:
                if not self._allowed():  # Disabled / not Active: paused, events wait in JetStream
                    await puller.pause(s.reconcile_seconds)
                    await asyncio.sleep(s.reconcile_seconds)
                    continue
                puller.resume()
                msg = await puller.next(timeout=1.0)
                if msg is None:
                    continue
                if s.max_in_flight > 1:
                    await self._dispatch(msg)
                    continue
                outcome = await self._deliver(msg)
                if outcome is Outcome.HANDED_BACK and self.paused_reason == "":
                    # The audit trail refused: hand back what is held behind it too (order),
                    # and pull again only once the first is due again.
                    await puller.pause(s.audit_retry_seconds)
                    await asyncio.sleep(s.audit_retry_seconds + 0.2)
        finally:
            for task in tuple(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await puller.stop()

    async def _dispatch(self, msg: Msg) -> None:
        """Concurrent delivery (``max_in_flight`` > 1), in order per CloudEvents subject."""
        await self._slots.acquire()
        key = msg.headers.get(SUBJECT_HEADER) if msg.headers else None
        before = self._chains.get(key) if key else None
        mine: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        if key:
            self._chains[key] = mine
        task = asyncio.create_task(self._keyed(msg, key, before, mine))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _keyed(
        self,
        msg: Msg,
        key: str | None,
        before: asyncio.Future[Outcome] | None,
        mine: asyncio.Future[Outcome],
    ) -> None:
        outcome = Outcome.HANDED_BACK
        try:
            if before is not None and await before is Outcome.HANDED_BACK:
                # The one before went back to JetStream: this one follows it, not overtakes.
                await self._nak(msg, self.lane.settings.audit_retry_seconds)
                return
            outcome = await self._deliver(msg)
        finally:
            mine.set_result(outcome)
            if key and self._chains.get(key) is mine:
                del self._chains[key]
            self._slots.release()

    async def _nak(self, msg: Msg, delay: float) -> None:
        with contextlib.suppress(NatsError, JsError):
            await msg.nak(delay=delay)

    async def _hold(self, msg: Msg, seconds: float) -> None:
        """Wait while retrying, keeping ``msg`` and the events held behind it ours (their ack
        deadline is pushed out at least three times per ``ack_wait``)."""
        step = max(0.05, self.lane.settings.ack_wait_seconds / 3)
        deadline = time.monotonic() + seconds
        while True:
            with contextlib.suppress(NatsError, JsError):
                await msg.in_progress()
            if self.puller is not None:
                await self.puller.touch()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(step, left))

    async def _deliver(self, msg: Msg) -> Outcome:
        lane = self.lane
        s = lane.settings
        try:
            publisher, event_id = identify(msg)
        except ValueError:  # never stored by us; do not block the stream on it
            await self._dead_letter(msg, 0, "not JSON")
            return Outcome.DEAD_LETTERED
        level, required = self._audit_terms(publisher)
        entity = {
            "event_type": self.type_name,
            "event_id": event_id[:256],
            "source": (contract.EVENT_SOURCE_PREFIX + publisher)[:128],
        }
        last_error = ""
        attempt = 0
        while attempt < s.max_attempts:
            if not self._allowed():  # paused mid-retry: hand it back, nothing lost
                await self._nak(msg, s.reconcile_seconds)
                return Outcome.HANDED_BACK
            attempt += 1
            if attempt > 1:  # retrying: push JetStream's redelivery deadline out again
                await self._hold(msg, 0)
            try:  # the record first: nothing reaches the subscriber unaudited
                await lane.ctx.auditor.record(
                    AuditEntry(
                        action="event.deliver",
                        agent=self.subscriber,
                        outcome="allowed",
                        entity=entity,
                        details={"attempt": attempt},
                        audit_level=level,
                        audit_required=required,
                    )
                )
            except AuditUnavailable:
                lane.metrics.audit_held.inc(self.subscriber, self.type_name)
                lane.ctx.metrics.decisions.inc(LANE, "error", "audit_unavailable")
                await self._nak(msg, s.audit_retry_seconds)
                return Outcome.HANDED_BACK
            status, last_error = await self._post(msg.data, publisher, attempt)
            if 200 <= status < 300:
                await msg.ack()
                lane.metrics.delivered.inc(self.subscriber, self.type_name)
                lane.metrics.latency.observe(_age(msg), self.type_name)
                lane.ctx.metrics.decisions.inc(LANE, "allowed", "delivered")
                return Outcome.DELIVERED
            lane.metrics.failed_attempts.inc(self.subscriber, self.type_name)
            if attempt < s.max_attempts:
                await self._hold(msg, backoff_seconds(s, attempt))
        await self._dead_letter(msg, attempt, last_error)
        await self._record(
            AuditEntry(
                action="event.dead_letter",
                agent=self.subscriber,
                outcome="error",
                reason="max_attempts",
                entity=entity,
                details={"attempts": attempt, "last_error": last_error},
                audit_level=level,
                audit_required=required,
            )
        )
        return Outcome.DEAD_LETTERED

    def _url(self) -> str | None:
        """The subscriber's events URL (recomputed only when its record changes)."""
        record = self.lane.ctx.directory.get(self.subscriber)
        if record is None:
            return None
        if self._url_of is not record:
            self._url_of = record
            self._events_url = (
                self.lane.resolve_url(record) + record.manifest.endpoints[EVENTS_ENDPOINT]
            )
        return self._events_url

    async def _post(self, data: bytes, caller: str, attempt: int) -> tuple[int, str]:
        lane = self.lane
        url = self._url()
        if url is None:
            return 0, "subscriber gone"
        token = lane.tokens.token(subscriber=self.subscriber, publisher=caller)
        headers = {
            "Content-Type": contract.CLOUDEVENTS_CONTENT_TYPE,
            "Authorization": f"Bearer {token}",
            contract.EVENT_ATTEMPT_HEADER: str(attempt),
        }
        answer = await lane.http.post(
            url, data, headers, timeout=lane.settings.delivery_timeout_seconds
        )
        if answer.status:
            return answer.status, f"HTTP {answer.status}"
        return 0, answer.error

    async def _dead_letter(self, msg: Msg, attempts: int, error: str) -> None:
        lane = self.lane
        seq = msg.metadata.sequence.stream
        while True:
            try:
                await lane.js.publish(
                    names.dead_letter_subject(self.subscriber, self.type_name),
                    msg.data,
                    timeout=5.0,
                    stream=lane.settings.dead_letter_stream,
                    headers={
                        "Nats-Msg-Id": f"{self.durable}/{seq}",
                        "Vivified-Subscriber": self.subscriber,
                        "Vivified-Attempts": str(attempts),
                        "Vivified-Last-Error": error[:200],
                        "Vivified-Stream-Sequence": str(seq),
                    },
                )
                break
            except (NatsError, JsError, TimeoutError):  # never ack before it is stored
                await self._hold(msg, 1.0)
        await msg.ack()
        lane.metrics.dead_lettered.inc(self.subscriber, self.type_name)
        lane.ctx.metrics.decisions.inc(LANE, "error", "dead_lettered")

    async def _record(self, entry: AuditEntry) -> None:
        try:
            await self.lane.ctx.auditor.record(entry)
        except AuditUnavailable:  # not a disclosure (pause, dead-letter): say so loudly
            log.error("audit unavailable for %s of %s", entry.action, self.durable)


def _age(msg: Msg) -> float:
    """Seconds since JetStream stored ``msg`` (0 when the metadata has no timestamp)."""
    try:
        stored = msg.metadata.timestamp
    except (AttributeError, ValueError, IndexError):
        return 0.0
    return max(0.0, (datetime.now(UTC) - stored).total_seconds())
