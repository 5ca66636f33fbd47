"""Delivery workers: one per (subscriber, type), pulling from the core's durable consumer.

At least once: an event is acknowledged to JetStream only after the subscriber answered 2xx
(or after it was stored in the dead-letter stream). Order per (subscriber, type), with the
default ``max_in_flight`` 1: one event at a time, retried in place (extending JetStream's ack
deadline), so the next event waits. ``max_in_flight`` > 1 delivers each fetched batch
concurrently: more throughput, no order. A crash loses nothing: the unacknowledged event is
redelivered to any replica after the ack deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import Error as JsError

from vivified.audit.hook import AuditEntry, AuditUnavailable
from vivified.dataplane.events import names
from vivified.dataplane.events.metrics import LANE
from vivified.dataplane.events.settings import backoff_seconds
from vivified.manifest import AUDIT_LEVELS, EVENTS_ENDPOINT
from vivified.policy.events import EventDecision, decide_delivery
from vivified_sdk import contract

if TYPE_CHECKING:
    from vivified.dataplane.events.lane import EventLane

log = logging.getLogger(__name__)


class DeliveryWorker:
    def __init__(self, lane: EventLane, subscriber: str, type_name: str) -> None:
        self.lane = lane
        self.subscriber = subscriber
        self.type_name = type_name
        self.durable = names.consumer_name(subscriber, type_name)
        self.task: asyncio.Task[None] | None = None
        #: The last refusal's reason while paused ("" = delivering): audited once per change.
        self.paused_reason = ""

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"deliver:{self.durable}")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task

    def _allowed(self) -> bool:
        record = self.lane.ctx.directory.get(self.subscriber)
        decision = decide_delivery(record, self.type_name, self.lane.registry)
        reason = "" if decision.allowed else decision.reason
        if reason != self.paused_reason:
            self.paused_reason = reason
            task = asyncio.get_running_loop().create_task(self._audit_pause(decision))
            self.lane.background.add(task)
            task.add_done_callback(self.lane.background.discard)
        return decision.allowed

    async def _audit_pause(self, decision: EventDecision) -> None:
        """Delivery stopped (refused by policy: Disabled, trait lost ...) or resumed."""
        outcome = "allowed" if decision.allowed else "refused"
        self.lane.ctx.metrics.decisions.inc(LANE, outcome, decision.reason)
        await self._record(
            AuditEntry(
                action="event.deliver",
                agent=self.subscriber,
                outcome="allowed" if decision.allowed else "refused",
                reason="resumed" if decision.allowed else decision.reason,
                entity={"event_type": self.type_name},
                details={"state": "delivering" if decision.allowed else "paused"},
                **self._levels(),
            )
        )

    async def _run(self) -> None:
        lane = self.lane
        while True:
            try:
                psub = await lane.js.pull_subscribe_bind(
                    durable=self.durable, stream=lane.settings.stream
                )
                break
            except (NatsError, JsError, TimeoutError) as exc:
                log.warning("consumer %s not bound yet: %s", self.durable, exc)
                await asyncio.sleep(1.0)
        while True:
            if not self._allowed():  # Disabled / not Active: paused, events wait in JetStream
                await asyncio.sleep(lane.settings.reconcile_seconds)
                continue
            try:
                msgs = await psub.fetch(batch=lane.settings.max_in_flight, timeout=1.0)
            except (NatsTimeout, TimeoutError):
                continue
            except (NatsError, JsError) as exc:
                log.warning("fetch %s: %s", self.durable, type(exc).__name__)
                await asyncio.sleep(0.5)
                continue
            if lane.settings.max_in_flight == 1:
                for msg in msgs:
                    await self._deliver(msg)
            else:  # throughput over order (documented): the batch is delivered concurrently
                await asyncio.gather(*(self._deliver(msg) for msg in msgs))

    async def _deliver(self, msg: Msg) -> None:
        lane = self.lane
        s = lane.settings
        key = (self.subscriber, self.type_name)
        try:
            event = json.loads(msg.data)
            source = str(event.get("source", ""))
        except ValueError:  # never stored by us; do not block the stream on it
            await self._dead_letter(msg, 0, "not JSON")
            return
        caller = source.removeprefix(contract.EVENT_SOURCE_PREFIX)
        last_error = ""
        attempt = 0
        while attempt < s.max_attempts:
            if not self._allowed():  # paused mid-retry: hand it back, nothing lost
                await msg.nak(delay=s.reconcile_seconds)
                return
            attempt += 1
            if attempt > 1:  # retrying: push JetStream's redelivery deadline out again
                with contextlib.suppress(NatsError, JsError):
                    await msg.in_progress()
            started = time.perf_counter()
            status, last_error = await self._post(msg.data, caller, attempt)
            if 200 <= status < 300:
                await msg.ack()
                lane.metrics.delivered.inc(*key)
                lane.metrics.latency.observe(_age(msg), self.type_name)
                lane.ctx.metrics.decisions.inc(LANE, "allowed", "delivered")
                await self._audit(
                    "event.deliver", "allowed", "delivered", event, attempt, status, started
                )
                return
            lane.metrics.failed_attempts.inc(*key)
            if attempt < s.max_attempts:
                await asyncio.sleep(backoff_seconds(s, attempt))
        await self._dead_letter(msg, attempt, last_error)
        await self._audit("event.dead_letter", "error", "max_attempts", event, attempt, 0, None)

    async def _post(self, data: bytes, caller: str, attempt: int) -> tuple[int, str]:
        lane = self.lane
        record = lane.ctx.directory.get(self.subscriber)
        if record is None:
            return 0, "subscriber gone"
        url = lane.resolve_url(record) + record.manifest.endpoints[EVENTS_ENDPOINT]
        token = lane.tokens.token(subscriber=self.subscriber, publisher=caller)
        headers = {
            "Content-Type": contract.CLOUDEVENTS_CONTENT_TYPE,
            "Authorization": f"Bearer {token}",
            contract.EVENT_ATTEMPT_HEADER: str(attempt),
        }
        try:
            async with lane.http.post(
                url,
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=lane.settings.delivery_timeout_seconds),
            ) as resp:
                await resp.read()
                return resp.status, f"HTTP {resp.status}"
        except TimeoutError:
            return 0, "timed out"
        except aiohttp.ClientError as exc:
            return 0, f"{type(exc).__name__}"

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
                await asyncio.sleep(1.0)
        await msg.ack()
        lane.metrics.dead_lettered.inc(self.subscriber, self.type_name)
        lane.ctx.metrics.decisions.inc(LANE, "error", "dead_lettered")

    def _levels(self, publisher: str | None = None) -> dict[str, Any]:
        """The stricter of subscriber and publisher (like the operator lane's caller and
        target): a delivery moves the publisher's data to the subscriber."""
        directory = self.lane.ctx.directory
        records = [directory.get(self.subscriber), directory.get(publisher) if publisher else None]
        manifests = [r.manifest for r in records if r is not None]
        levels = [m.compliance.audit_level for m in manifests] or ["basic"]
        return {
            "audit_level": max(levels, key=AUDIT_LEVELS.index),
            "audit_required": any("audit_required" in m.traits for m in manifests),
        }

    async def _record(self, entry: AuditEntry) -> None:
        try:
            await self.lane.ctx.auditor.record(entry)
        except AuditUnavailable:  # the delivery already happened; say so loudly
            log.error("audit unavailable for %s of %s", entry.action, self.durable)

    async def _audit(  # noqa: PLR0917 - one private call site per outcome
        self,
        action: str,
        outcome: str,
        reason: str,
        event: object,
        attempt: int,
        status: int,
        started: float | None,
    ) -> None:
        ev = event if isinstance(event, dict) else {}
        source = str(ev.get("source", ""))
        details: dict[str, object] = {"attempts": attempt, "status": status}
        if started is not None:
            details["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)
        await self._record(
            AuditEntry(
                action=action,
                agent=self.subscriber,
                outcome="allowed" if outcome == "allowed" else "error",
                reason=reason,
                entity={
                    "event_type": self.type_name,
                    "event_id": str(ev.get("id", ""))[:256],
                    "source": str(ev.get("source", ""))[:128],
                },
                details=details,
                **self._levels(source.removeprefix(contract.EVENT_SOURCE_PREFIX)),
            )
        )


def _age(msg: Msg) -> float:
    """Seconds since JetStream stored ``msg`` (0 when the metadata has no timestamp)."""
    try:
        stored = msg.metadata.timestamp
    except (AttributeError, ValueError, IndexError):
        return 0.0
    return max(0.0, (datetime.now(UTC) - stored).total_seconds())
