"""The chained auditor: the lanes' :class:`Auditor`, writing one chain per writer to a sink.

``record()`` returns only once the sink confirmed the record: a lane answers its caller after
its record is stored, so no answered request lacks a record (the kill-during-burst test
counts this). Concurrent callers are group-committed: one writer task seals whatever is
queued, in order, and stores it as one batch (one JetStream message, one file append), so
the sink's round trip is paid per batch, not per record, and a batch is stored whole or not.

An entry marked ``after_answer`` (the ``invoke.result`` of a call whose decision is stored)
is queued in chain order and ``record()`` returns at once: it rides the next batch, or is
written after ``linger`` seconds. A call then waits for one round trip, not two. The price:
a crash loses the result records of the last few milliseconds, never a decision.

When the sink fails, entries that must be kept (``complete`` or ``audit_required``) raise
:class:`AuditUnavailable` (their lane answers 503); the others are held in memory, in order
and unsealed, and written when a background probe finds the sink back. A full backlog refuses
further entries (back-pressure) rather than dropping any. Nothing waits for a dead sink longer
than ``append_timeout``, and while an outage is known nothing waits for it at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from vivified.audit.chain import Head, canonical, head_of, seal_line
from vivified.audit.checkpoint import Signer
from vivified.audit.hook import AuditEntry, AuditUnavailable
from vivified.audit.record import build_body, must_persist
from vivified.dataplane.audit.alert import LogAlert, OutageAlert
from vivified.dataplane.audit.metrics import AuditMetrics
from vivified.dataplane.audit.sink import Sink, SinkUnavailable
from vivified.dataplane.readiness import DEFAULT_GRACE_SECONDS, ready_for_traffic

logger = logging.getLogger(__name__)

T = TypeVar("T")

REASON_UNAVAILABLE = "audit_unavailable"
REASON_BACKPRESSURE = "audit_backlog_full"


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Pending:
    body: dict[str, object]
    required: bool
    done: asyncio.Future[None] | None = field(default=None)
    """The caller waiting for the sink; None when nobody waits (after the answer, held)."""
    answered: bool = False
    """An ``after_answer`` record still queued: nobody can be refused for it any more."""


class ChainAuditor:
    """Seals entries into ``writer``'s chain and stores them in ``sink``, batch by batch."""

    def __init__(
        self,
        sink: Sink,
        writer: str,
        *,
        signer: Signer | None = None,
        clock: Callable[[], datetime] = _utc_now,
        checkpoint_every: int = 1000,
        checkpoint_seconds: float = 10.0,
        backlog_limit: int = 100_000,
        append_timeout: float = 1.0,
        retry_seconds: float = 1.0,
        max_batch: int = 256,
        max_batch_bytes: int = 512 * 1024,
        linger: float = 0.005,
        alert: OutageAlert | None = None,
        metrics: AuditMetrics | None = None,
        ready_grace_seconds: float = DEFAULT_GRACE_SECONDS,
    ) -> None:
        self.sink = sink
        self.writer = writer
        self.metrics = metrics or AuditMetrics()
        self._signer = signer
        self._clock = clock
        self._checkpoint_every = checkpoint_every
        self._checkpoint_seconds = checkpoint_seconds
        self._backlog_limit = backlog_limit
        self._append_timeout = append_timeout
        self._retry_seconds = retry_seconds
        self._max_batch = max_batch
        self._max_batch_bytes = max_batch_bytes
        self._linger_seconds = linger
        self._linger: asyncio.TimerHandle | None = None
        self._waiting = 0
        self._alert = alert or LogAlert()
        self._io = asyncio.Lock()
        self._wake = asyncio.Event()
        self._head: Head | None = None
        self._queue: deque[_Pending] = deque()
        self._backlog: deque[_Pending] = deque()
        self._down_reason: str | None = None
        self._checkpointed = -1
        self._closing = False
        self._writer_gone = False
        self._tasks: list[asyncio.Task[None]] = []
        self._ready_grace = ready_grace_seconds
        self._started_at: float | None = None
        self._was_up = False

    @property
    def head(self) -> Head | None:
        return self._head

    def ready_for_traffic(self) -> bool:
        """The core's readiness share: the sink took the chain once (a replica that just
        started refuses ``audit_required`` requests until then), or the grace is over (a
        trail down for every replica must not keep the lanes unready; a later outage does
        not flip it either: the lanes fail closed or hold records then, docs/audit.md)."""
        self._was_up = self._was_up or (self._started_at is not None and self._down_reason is None)
        return ready_for_traffic(
            connected_once=self._was_up,
            started_at=self._started_at,
            now=asyncio.get_running_loop().time(),
            grace=self._ready_grace,
        )

    async def start(self) -> None:
        """Resume the chain from the sink; start the writer, the probe and the checkpoint timer."""
        self._started_at = asyncio.get_running_loop().time()
        async with self._io:
            try:
                await self._resume()
            except SinkUnavailable as exc:
                await self._went_down(str(exc))
        self._tasks = [
            asyncio.create_task(self._writer_loop(), name="audit-writer"),
            asyncio.create_task(self._probe_loop(), name="audit-probe"),
            asyncio.create_task(self._checkpoint_loop(), name="audit-checkpoint"),
        ]

    async def close(self) -> None:
        """Write what is queued or held if the sink allows, checkpoint, stop, close the sink."""
        self._closing = True
        self._wake.set()
        writer = self._tasks[0] if self._tasks else None
        if writer is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        for task in self._tasks[1:]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._writer_gone = True
        self._cancel_linger()
        async with self._io:
            self._route_queue()
            if self._backlog:
                await self._probe()
                await self._flush_backlog()
            if self._down_reason is None:
                await self._checkpoint()
        if self._backlog:
            self.metrics.records_lost_total += len(self._backlog)
            logger.error("audit: %d held records not written at shutdown", len(self._backlog))
        await self.sink.close()

    async def record(self, entry: AuditEntry) -> None:
        """Store ``entry``'s record, hold it during an outage, or raise AuditUnavailable."""
        body = build_body(entry, self._clock())
        if body is None:
            self.metrics.records_skipped_total += 1
            return
        if entry.after_answer:
            self._queue_after_answer(_Pending(body, False, answered=True))
            return
        pending = _Pending(body, must_persist(entry))
        if self._down_reason is not None or self._writer_gone:
            self._route_queue()
            refused = self._hold(pending)
            if refused is not None:
                raise AuditUnavailable(refused)
            return
        pending.done = asyncio.get_running_loop().create_future()
        self._queue.append(pending)
        self._waiting += 1
        self._wake.set()
        await pending.done

    def _queue_after_answer(self, pending: _Pending) -> None:
        """Queue an answered call's record behind the others; the next batch (or the linger
        timer) writes it. Nothing waits, so the queue is bounded like the backlog."""
        self.metrics.records_after_answer_total += 1
        if self._down_reason is not None or self._writer_gone:
            self._route_queue()
            self._settle(pending, self._hold(pending))
            return
        if len(self._queue) >= self._backlog_limit:
            self._settle(pending, REASON_BACKPRESSURE)
            return
        self._queue.append(pending)
        self.metrics.pending += 1
        if self._linger is None:
            self._linger = asyncio.get_running_loop().call_later(
                self._linger_seconds, self._lingered
            )

    def _lingered(self) -> None:
        self._linger = None
        self._wake.set()

    def _cancel_linger(self) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None

    # -- routing during an outage (synchronous: no await, so order is kept) ----------------

    def _hold(self, pending: _Pending) -> str | None:
        """During an outage: keep ``pending`` for later, or say why not (it must be stored
        now: ``audit_unavailable``; the backlog is full: ``audit_backlog_full``)."""
        if pending.required:
            self.metrics.refused_unavailable_total += 1
            return REASON_UNAVAILABLE
        if len(self._backlog) >= self._backlog_limit:
            if not pending.answered:
                self.metrics.refused_backpressure_total += 1
            return REASON_BACKPRESSURE
        self._backlog.append(_Pending(pending.body, False))
        self.metrics.records_held_total += 1
        self.metrics.backlog = len(self._backlog)
        return None

    def _settle(self, pending: _Pending, refused: str | None) -> None:
        """Tell the caller waiting for ``pending`` how it ended. Nobody waits for an answered
        call's record (it is counted lost if refused), nor for a cancelled caller's."""
        if pending.answered:
            if refused is not None:
                self.metrics.records_lost_total += 1
                logger.error("audit: an answered call's record was not kept: %s", refused)
            return
        if pending.done is None or pending.done.done():
            return
        if refused is None:
            pending.done.set_result(None)
        else:
            pending.done.set_exception(AuditUnavailable(refused))

    def _route_queue(self) -> None:
        while self._queue:
            self._route(self._queue.popleft())

    def _route(self, pending: _Pending) -> None:
        """Take ``pending`` off the queue into the outage's hands (held or refused)."""
        if pending.answered:
            self.metrics.pending -= 1
        elif pending.done is not None:
            self._waiting -= 1
        self._settle(pending, self._hold(pending))

    # -- the writer ---------------------------------------------------------------------------

    def _due(self) -> bool:
        """Write the queue now: a caller waits, the linger is over, or we are closing."""
        return bool(self._queue) and (self._waiting > 0 or self._linger is None or self._closing)

    async def _writer_loop(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                async with self._io:
                    while self._due() or (self._backlog and self._down_reason is None):
                        if self._down_reason is not None:
                            self._route_queue()
                            break
                        if self._backlog:
                            await self._flush_backlog()
                            continue
                        await self._write_batch(self._queue)
                if self._closing and not self._queue:
                    return
        finally:
            self._writer_gone = True

    def _take(self, source: deque[_Pending]) -> list[_Pending]:
        """Pop the next batch off ``source``: once popped, nobody else can route or write it
        (a close() or an outage during the write used to write it a second time)."""
        batch: list[_Pending] = []
        size = 0
        while source and len(batch) < self._max_batch and size < self._max_batch_bytes:
            pending = source.popleft()
            if source is self._queue:
                if pending.answered:
                    self.metrics.pending -= 1
                elif pending.done is not None:
                    self._waiting -= 1
            batch.append(pending)
            size += 512  # a typical record; the exact size is known only once sealed
        return batch

    async def _write_batch(self, source: deque[_Pending]) -> bool:
        """Seal and store the next batch of ``source``; route it on failure."""
        batch = self._take(source)
        try:
            await self._resume()
            if self._head is None:  # pragma: no cover - _resume sets it or raises
                raise SinkUnavailable("chain head unknown")
            head = self._head
            records: list[dict[str, object]] = []
            lines: list[bytes] = []
            for pending in batch:
                record, line, head = seal_line(pending.body, head)
                records.append(record)
                lines.append(line)
            payload = b"\n".join(lines)
            await self._with_timeout(self.sink.append(records, payload))
        except SinkUnavailable as exc:
            # The batch may have landed after all: re-read the head before the next write.
            self._head = None
            newly = self._mark_down(str(exc))
            if source is self._queue:  # in order: the batch, then what queued behind it
                for pending in batch:
                    self._settle(pending, self._hold(pending))
                self._route_queue()
            else:
                source.extendleft(reversed(batch))
            if newly:
                await self._alert.outage_started(self._down_reason or "sink unavailable")
            return False
        self._head = head
        for pending in batch:
            self._settle(pending, None)
        self.metrics.records_written_total += len(batch)
        self.metrics.backlog = len(self._backlog)
        if head.seq - self._checkpointed >= self._checkpoint_every:
            await self._checkpoint()
        return True

    async def _flush_backlog(self) -> None:
        held = len(self._backlog)
        while self._backlog and self._down_reason is None:
            if not await self._write_batch(self._backlog):
                return
        if held:
            await self._alert.outage_ended(held)

    # -- sink state ---------------------------------------------------------------------------

    async def _with_timeout(self, awaitable: Awaitable[T]) -> T:
        """``asyncio.timeout``, not ``wait_for``: no task per write (3.11 wraps each one)."""
        try:
            async with asyncio.timeout(self._append_timeout):
                return await awaitable
        except TimeoutError as exc:
            raise SinkUnavailable(f"no answer within {self._append_timeout}s") from exc

    async def _resume(self) -> None:
        if self._head is None:
            last = await self._with_timeout(self.sink.last(self.writer))
            self._head = head_of(last) if last is not None else Head(self.writer)
            if self._checkpointed < 0:
                self._checkpointed = self._head.seq

    def _mark_down(self, reason: str) -> bool:
        """Enter an outage (synchronously, so nothing queues behind a failed batch); True if
        it is a new one."""
        if self._down_reason is not None:
            return False
        self._down_reason = reason or "sink unavailable"
        self.metrics.outages_total += 1
        self.metrics.sink_up = 0
        return True

    async def _went_down(self, reason: str) -> None:
        if self._mark_down(reason):
            await self._alert.outage_started(self._down_reason or "sink unavailable")

    async def _probe(self) -> bool:
        """During an outage: mark the sink up again once it answers; True if it is up."""
        if self._down_reason is None:
            return True
        try:
            await self._with_timeout(self.sink.ping())
            await self._resume()
        except SinkUnavailable as exc:
            logger.debug("audit sink still down: %s", exc)
            return False
        self._down_reason = None
        self.metrics.sink_up = 1
        if not self._backlog:
            await self._alert.outage_ended(0)
        return True

    async def _checkpoint(self) -> None:
        if self._signer is None or self._head is None or self._head.seq == self._checkpointed:
            return
        checkpoint = self._signer.checkpoint(self._head, self._clock())
        try:
            await self._with_timeout(self.sink.checkpoint(checkpoint, canonical(checkpoint)))
        except SinkUnavailable as exc:
            self.metrics.checkpoint_failures_total += 1
            logger.warning("audit checkpoint not published: %s", exc)
            return
        self._checkpointed = self._head.seq
        self.metrics.checkpoints_total += 1

    # -- timers -------------------------------------------------------------------------------

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(self._retry_seconds)
            if self._down_reason is not None:
                async with self._io:
                    up = await self._probe()
                if up:
                    self._wake.set()

    async def _checkpoint_loop(self) -> None:
        while True:
            await asyncio.sleep(self._checkpoint_seconds)
            async with self._io:
                if self._down_reason is None:
                    await self._checkpoint()
