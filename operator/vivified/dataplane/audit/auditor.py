"""The chained auditor: the lanes' :class:`Auditor`, writing one chain per writer to a sink.

Records are sealed and written one at a time under a lock, and ``record()`` returns only once
the sink confirmed the write: a lane answers its caller after its record is stored, so no
answered request lacks a record (the kill-during-burst test counts this).

When the sink fails, entries that must be kept (``complete`` or ``audit_required``) raise
:class:`AuditUnavailable` at once (their lane answers 503); the others are held in memory, in
order and unsealed, and written by a background retry when the sink is back. A full backlog
refuses further entries (back-pressure) rather than dropping any. Nothing waits for a dead
sink longer than ``append_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from vivified.audit.chain import Head, canonical, head_of, seal
from vivified.audit.checkpoint import Signer
from vivified.audit.hook import AuditEntry, AuditUnavailable
from vivified.audit.record import build_body, must_persist
from vivified.dataplane.audit.alert import LogAlert, OutageAlert
from vivified.dataplane.audit.metrics import AuditMetrics
from vivified.dataplane.audit.sink import Sink, SinkUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")

REASON_UNAVAILABLE = "audit_unavailable"
REASON_BACKPRESSURE = "audit_backlog_full"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ChainAuditor:
    """Seals entries into ``writer``'s chain and stores them in ``sink``."""

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
        alert: OutageAlert | None = None,
        metrics: AuditMetrics | None = None,
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
        self._alert = alert or LogAlert()
        self._lock = asyncio.Lock()
        self._head: Head | None = None
        self._backlog: deque[dict[str, object]] = deque()
        self._down_reason: str | None = None
        self._checkpointed = 0
        self._checkpointed_at = time.monotonic()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def head(self) -> Head | None:
        return self._head

    async def start(self) -> None:
        """Resume the chain from the sink; start retry and checkpoint timers."""
        async with self._lock:
            try:
                await self._resume()
            except SinkUnavailable as exc:
                await self._went_down(str(exc))
        self._tasks = [
            asyncio.create_task(self._retry_loop(), name="audit-retry"),
            asyncio.create_task(self._checkpoint_loop(), name="audit-checkpoint"),
        ]

    async def close(self) -> None:
        """Write what is held if the sink allows, checkpoint, stop timers, close the sink."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        async with self._lock:
            if self._backlog:
                await self._drain()
            if self._down_reason is None:
                await self._checkpoint()
            if self._backlog:
                logger.error("audit: %d held records not written at shutdown", len(self._backlog))
        await self.sink.close()

    async def record(self, entry: AuditEntry) -> None:
        """Store ``entry``'s record, hold it during an outage, or raise AuditUnavailable."""
        body = build_body(entry, self._clock())
        if body is None:
            self.metrics.records_skipped_total += 1
            return
        required = must_persist(entry)
        async with self._lock:
            if self._down_reason is None and not self._backlog:
                try:
                    await self._write(body)
                except SinkUnavailable as exc:
                    await self._went_down(str(exc))
                else:
                    return
            if required:
                self.metrics.refused_unavailable_total += 1
                raise AuditUnavailable(REASON_UNAVAILABLE)
            self._hold(body)

    # -- internals (called with the lock held) ---------------------------------------------

    async def _resume(self) -> None:
        if self._head is None:
            last = await self._with_timeout(self.sink.last(self.writer))
            self._head = head_of(last) if last is not None else Head(self.writer)
            self._checkpointed = min(self._checkpointed, self._head.seq) or self._head.seq

    async def _with_timeout(self, awaitable: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(awaitable, self._append_timeout)
        except TimeoutError as exc:
            raise SinkUnavailable(f"no answer within {self._append_timeout}s") from exc

    async def _write(self, body: dict[str, object]) -> None:
        await self._resume()
        if self._head is None:  # pragma: no cover - _resume sets it or raises
            raise SinkUnavailable("chain head unknown")
        record, head = seal(body, self._head)
        try:
            await self._with_timeout(self.sink.append(record, canonical(record)))
        except SinkUnavailable:
            # The record may have landed after all: re-read the head before the next write.
            self._head = None
            raise
        self._head = head
        self.metrics.records_written_total += 1
        if head.seq - self._checkpointed >= self._checkpoint_every:
            await self._checkpoint()

    def _hold(self, body: dict[str, object]) -> None:
        if len(self._backlog) >= self._backlog_limit:
            self.metrics.refused_backpressure_total += 1
            raise AuditUnavailable(REASON_BACKPRESSURE)
        self._backlog.append(body)
        self.metrics.records_held_total += 1
        self.metrics.backlog = len(self._backlog)

    async def _went_down(self, reason: str) -> None:
        if self._down_reason is None:
            self._down_reason = reason or "sink unavailable"
            self.metrics.outages_total += 1
            self.metrics.sink_up = 0
            await self._alert.outage_started(self._down_reason)

    async def _drain(self) -> bool:
        """Write held records in order; True once the backlog is empty and the sink is up."""
        held = len(self._backlog)
        try:
            await self._resume()
            if not self._backlog:
                await self._with_timeout(self.sink.ping())
            while self._backlog:
                await self._write(self._backlog[0])
                self._backlog.popleft()
                self.metrics.backlog = len(self._backlog)
        except SinkUnavailable as exc:
            logger.debug("audit sink still down: %s", exc)
            return False
        if self._down_reason is not None:
            self._down_reason = None
            self.metrics.sink_up = 1
            await self._alert.outage_ended(held)
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
        self._checkpointed_at = time.monotonic()
        self.metrics.checkpoints_total += 1

    # -- timers -----------------------------------------------------------------------------

    async def _retry_loop(self) -> None:
        while True:
            await asyncio.sleep(self._retry_seconds)
            if self._down_reason is not None or self._backlog:
                async with self._lock:
                    await self._drain()

    async def _checkpoint_loop(self) -> None:
        while True:
            await asyncio.sleep(self._checkpoint_seconds)
            async with self._lock:
                if self._down_reason is None:
                    await self._checkpoint()
