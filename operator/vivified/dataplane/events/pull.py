"""Pulling one durable consumer ahead, as its pinned client (JetStream priority groups).

nats-py 2.16 has no API for priority groups, so this speaks the pull protocol itself over the
core's connection (ADR-42; nats-server >= 2.11): a pull request is JSON published to
``$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`` with a reply inbox, naming the group and,
once the server pinned us, the pin id it put on our first message (``Nats-Pin-Id``).

One request for up to ``batch`` events is kept open at all times (re-issued when it is
fulfilled or expires), so events stream in while earlier ones are delivered: one round trip
per batch instead of per event, and the server's ``max_ack_pending`` bounds what is held here.
Pulling never stops while the worker retries an event, so the pin is kept (a pinned client
that stops pulling for ``priority_timeout`` is unpinned, and another replica would go on).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError

from vivified.dataplane.events.stream import PRIORITY_GROUP

log = logging.getLogger(__name__)

_STATUS = "Status"
_PIN = "Nats-Pin-Id"
_HEARTBEAT = "100"
_PIN_MISMATCH = "423"
_EXPIRED = "408"
_NS = 1_000_000_000


class Puller:
    """``next()`` → the consumer's next event (stream order), pulled in batches."""

    def __init__(
        self,
        nc: NatsClient,
        stream: str,
        durable: str,
        *,
        batch: int,
        expires: float,
        ack_wait: float = 30.0,
    ) -> None:
        self._nc = nc
        self._subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._batch = batch
        self._expires = expires
        self._ack_wait = ack_wait
        self._inbox = nc.new_inbox()
        self._buffer: deque[Msg] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._request_done = asyncio.Event()
        self._running = asyncio.Event()  # set = pulling; clear = paused
        self._current = ""  # reply subject of the open request
        self._received = 0  # events received for the open request
        self._sequence = 0
        self._bad_status = False
        self._pause_delay = 1.0
        self.pin: str | None = None
        self._sub: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Subscribe the inbox; pulling starts with the first :meth:`resume`."""
        self._sub = await self._nc.subscribe(self._inbox + ".*", cb=self._on_msg)
        self._tasks = [
            asyncio.create_task(self._keep_pulling(), name=f"pull:{self._subject}"),
            asyncio.create_task(self._keep_held(), name=f"hold:{self._subject}"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._sub is not None:
            with contextlib.suppress(NatsError):
                await self._sub.unsubscribe()

    @property
    def held(self) -> tuple[Msg, ...]:
        """Events pulled and not yet taken (their ack deadline runs)."""
        return tuple(self._buffer)

    async def next(self, timeout: float) -> Msg | None:
        """The next event, or None after ``timeout`` without one."""
        if not self._buffer:
            # A bare future and one timer (not wait_for: no task per wait on the hot path).
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiter = waiter
            timer = loop.call_later(timeout, _wake, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
            if not self._buffer:
                return None
        return self._buffer.popleft()

    def resume(self) -> None:
        self._running.set()

    async def pause(self, delay: float) -> None:
        """Stop pulling and hand back (nak) what is held, in order: JetStream redelivers
        naked events, lowest sequence first, before any newer one."""
        self._running.clear()
        self._pause_delay = delay
        await self.hand_back(delay)

    async def hand_back(self, delay: float) -> None:
        while self._buffer:
            msg = self._buffer.popleft()
            with contextlib.suppress(NatsError):
                await msg.nak(delay=delay)

    async def touch(self) -> None:
        """Push the ack deadline of everything held out again (an earlier event is retrying)."""
        for msg in tuple(self._buffer):
            with contextlib.suppress(NatsError):
                await msg.in_progress()

    async def _keep_held(self) -> None:
        """Held events stay ours however slow the subscriber: their deadline is pushed out
        three times per ``ack_wait`` (else JetStream would redeliver them, out of order)."""
        while True:
            await asyncio.sleep(self._ack_wait / 3)
            await self.touch()

    async def _keep_pulling(self) -> None:
        while True:
            await self._running.wait()
            self._sequence += 1
            self._current = f"{self._inbox}.{self._sequence}"
            self._received = 0
            self._bad_status = False
            self._request_done.clear()
            request: dict[str, object] = {
                "batch": self._batch,
                "expires": int(self._expires * _NS),
                "group": PRIORITY_GROUP,
            }
            if self.pin:
                request["id"] = self.pin
            try:
                await self._nc.publish(
                    self._subject, json.dumps(request).encode(), reply=self._current
                )
            except NatsError as exc:  # reconnecting: try again shortly
                log.debug("pull %s: %s", self._subject, type(exc).__name__)
                await asyncio.sleep(0.5)
                continue
            # A request lost in a reconnect never answers: give up on it after its expiry.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._request_done.wait(), self._expires + 1.0)
            if self._bad_status:  # consumer gone, too many waiting pulls ...: do not spin
                await asyncio.sleep(0.5)

    async def _on_msg(self, msg: Msg) -> None:
        headers = msg.headers
        status = headers.get(_STATUS) if headers else None
        if status is not None:
            if status == _HEARTBEAT:
                return
            if status == _PIN_MISMATCH:  # unpinned (we were too slow): pull again unpinned
                self.pin = None
            if msg.subject == self._current:
                self._bad_status = status != _EXPIRED and self._received == 0
                self._request_done.set()
            return
        if headers:
            pin = headers.get(_PIN)
            if pin:
                self.pin = pin
        if not self._running.is_set():  # arrived after a pause: hand it back at once
            with contextlib.suppress(NatsError):
                await msg.nak(delay=self._pause_delay)
            return
        self._buffer.append(msg)
        if self._waiter is not None:
            _wake(self._waiter)
        # An event carries its own subject, not the request's inbox: it counts toward the open
        # request (one at a time; a late one of an expired request only makes a pull early).
        self._received += 1
        if self._received >= self._batch:
            self._request_done.set()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
