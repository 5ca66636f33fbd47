"""A keyed work queue: each key is reconciled by one worker at a time, bursts collapse into one.

Many things ask for a plugin to be looked at again — its own watch events, its children's, a
dependency turning Active, a token nearing expiry. They all land here; a key already waiting is
not queued twice, a key being processed is re-queued once when it finishes, and failures come back
with exponential backoff. No Kubernetes here: the queue is tested on its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


class RetryLater(Exception):  # noqa: N818 — it is a request, not an error
    """Raised by a handler that wants its key back after ``delay`` seconds, without a warning."""

    def __init__(self, delay: float, reason: str = "") -> None:
        super().__init__(reason)
        self.delay = delay


def failure_backoff(failures: int, base: float, cap: float) -> float:
    """Seconds before retrying a key that failed ``failures`` times in a row: doubling from
    ``base``, never above ``cap``."""
    return min(base * 2.0 ** (failures - 1), cap)


class WorkQueue(Generic[K]):
    """Deduplicating queue with per-key exclusivity, delayed adds and failure backoff."""

    def __init__(
        self,
        handler: Callable[[K], Awaitable[float | None]],
        *,
        workers: int = 4,
        base_backoff: float = 0.5,
        max_backoff: float = 60.0,
    ) -> None:
        self._handler = handler
        self._workers = workers
        self._base_backoff = base_backoff
        self._max_backoff = max_backoff
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._pending: set[K] = set()
        self._active: set[K] = set()
        self._dirty: set[K] = set()
        self._failures: dict[K, int] = {}
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, key: K) -> None:
        """Ask for ``key`` to be handled soon."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if key in self._active:
            self._dirty.add(key)
            return
        if key in self._pending:
            return
        self._pending.add(key)
        self._idle.clear()
        self._queue.put_nowait(key)

    def add_after(self, key: K, delay: float) -> None:
        """Ask for ``key`` after ``delay`` seconds; an earlier request wins."""
        loop = asyncio.get_running_loop()
        existing = self._timers.get(key)
        when = loop.time() + max(delay, 0.0)
        if existing is not None and existing.when() <= when:
            return
        if existing is not None:
            existing.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def start(self) -> None:
        for _ in range(self._workers):
            self._tasks.append(asyncio.create_task(self._work()))

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    @property
    def depth(self) -> int:
        return len(self._pending) + len(self._active)

    async def join(self) -> None:
        """Wait until nothing is queued or running (delayed keys do not count)."""
        await self._idle.wait()

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            self._pending.discard(key)
            self._active.add(key)
            try:
                requeue_after = await self._handler(key)
            except asyncio.CancelledError:
                raise
            except RetryLater as later:
                self._failures.pop(key, None)
                self.add_after(key, later.delay)
            except Exception:
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                delay = failure_backoff(failures, self._base_backoff, self._max_backoff)
                logger.exception(
                    "reconcile of %s failed (attempt %d); retry in %.1fs", key, failures, delay
                )
                self.add_after(key, delay)
            else:
                self._failures.pop(key, None)
                if requeue_after is not None:
                    self.add_after(key, requeue_after)
            finally:
                self._active.discard(key)
                if key in self._dirty:
                    self._dirty.discard(key)
                    self.add(key)
                if not self._pending and not self._active:
                    self._idle.set()
