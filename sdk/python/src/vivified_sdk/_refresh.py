"""The background thread that keeps URL sources fresh, so ``verify()`` never waits.

A thread rather than an asyncio task: the same verifier then serves FastAPI, plain asyncio
and sync WSGI apps, and a fetch stalled for its whole timeout delays only the next refresh,
never a request. Start and stop are explicit (``TokenVerifier.start/stop``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from ._sources import Polled

__all__ = ["Refresher", "Refreshing"]

logger = logging.getLogger("vivified_sdk")

#: Upper bound of one sleep, so a changed schedule is noticed.
_MAX_SLEEP = 60.0


class Refresher:
    """Runs ``refresh()`` of each source when it is due, on one daemon thread."""

    def __init__(self, sources: Sequence[Polled], *, name: str = "vivified-sdk-refresh") -> None:
        self.sources = tuple(sources)
        self._name = name
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._first_round = threading.Event()
        self._lock = threading.Lock()  # one refresh at a time (thread or refresh_now)
        self._thread: threading.Thread | None = None
        for source in self.sources:
            source.wake = self._wake.set

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (idempotent; a no-op without sources). Returns at once."""
        if not self.sources or self.running:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the thread; waits up to ``timeout`` for a fetch in flight to end."""
        self._stopping.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """True once every source was tried at least once (successfully or not)."""
        if not self.sources:
            return True
        return self._first_round.wait(timeout)

    def refresh_now(self) -> None:
        """Refresh every source in the calling thread (blocking: scripts and tests)."""
        for source in self.sources:
            self._refresh(source)
        self._first_round.set()

    def _refresh(self, source: Polled) -> None:
        with self._lock:
            try:
                source.refresh()
            except Exception:  # a bug in one source must not end the thread
                logger.exception("refresh of %s failed", source.url)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            for source in self.sources:
                if self._stopping.is_set():
                    return
                if source.due_in() <= 0:
                    self._refresh(source)
            self._first_round.set()
            sleep = min(source.due_in() for source in self.sources)
            self._wake.wait(min(max(sleep, 0.01), _MAX_SLEEP))


class Refreshing:
    """The start/stop/``with`` life cycle of a verifier whose sources a :class:`Refresher`
    keeps fresh (``TokenVerifier``, ``CallVerifier``); subclasses set ``_refresher``."""

    _refresher: Refresher

    def start(self) -> None:
        """Start the background refresh (idempotent)."""
        self._refresher.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the background refresh (waits up to ``timeout`` for a fetch in flight)."""
        self._refresher.stop(timeout)

    def wait_ready(self, timeout: float | None = 5.0) -> bool:
        """Block until every URL source was tried once; False on timeout. Not for request
        handlers: call it at startup if the first requests should not be refused."""
        return self._refresher.wait_ready(timeout)

    def refresh_now(self) -> None:
        """Fetch every URL source now, in this thread (blocking: scripts, tests, CLIs)."""
        self._refresher.refresh_now()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        """Start, and wait (off the event loop) up to 5 s for the first fetches."""
        self.start()
        await asyncio.to_thread(self.wait_ready, 5.0)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)
