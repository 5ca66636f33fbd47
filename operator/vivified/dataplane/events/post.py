"""The delivery POST: one HTTP/1.1 request to a subscriber over a kept-alive connection.

Why not aiohttp's or httpx's client: a delivery is the lane's hot path (one after another per
(subscriber, type)), and their per-request machinery (cookie jars, redirects, tracing, URL
objects, pools with limits) cost 4-8x what the delivery itself needs (bench/delivery_post.py;
numbers in docs/decisions.md). The response is parsed by ``httptools`` (llhttp, uvicorn's
parser); this module only writes the request and keeps connections.

Rules (the lane's, not a general client's):

- Never follows a redirect: a 3xx is the subscriber's answer (a failed attempt), so the call
  token is never sent anywhere else.
- A response head over :data:`MAX_HEAD_BYTES` is refused (a failed attempt), not buffered.
- The status is the answer; a body is read and dropped, or the connection closed when the
  response says it will not be kept.
- A reused connection that the subscriber closed while idle (it fails before any byte of an
  answer) is re-sent once on a fresh one; delivery is at least once anyway.
- ``timeout`` bounds everything (connect, send, answer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

__all__ = ["MAX_HEAD_BYTES", "Answer", "DeliveryClient"]

#: A subscriber's response head (status line + headers) larger than this is refused.
MAX_HEAD_BYTES = 16 * 1024
#: Idle connections kept per subscriber address.
MAX_IDLE = 64


@dataclass(frozen=True)
class Answer:
    """``status`` 0 = no HTTP answer; ``error`` says why (a dead letter's last error)."""

    status: int
    error: str


class _AttemptError(Exception):
    def __init__(self, reason: str, *, answered: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        #: Some answer byte had arrived: not a stale idle connection, never re-sent.
        self.answered = answered


class _Connection(asyncio.Protocol):
    """One connection, one exchange at a time; httptools calls back as the answer parses."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[int] | None = None
        self._head_bytes = 0
        self._in_head = False
        self._status = 0
        self._answered = False

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # noqa: S101 - create_connection's
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():  # bytes nobody asked for: the connection is bad
            self._close()
            return
        self._answered = True
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._fail("response head too large")
                return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(f"malformed response ({type(exc).__name__})")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail("connection closed")

    # -- httptools callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_head = True

    def on_headers_complete(self) -> None:
        self._in_head = False
        status = self._parser.get_status_code()
        if status < 200:  # 1xx (interim): the real answer follows
            return
        self._status = status
        if not self._parser.should_keep_alive():  # the body does not matter: close now
            self._done(status)
            self._close()

    def on_message_complete(self) -> None:
        if self._status:
            self._done(self._status)

    # -- the exchange ---------------------------------------------------------------------

    async def exchange(self, request: bytes) -> int:
        assert self.transport is not None  # noqa: S101 - made by create_connection
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiter, self._status, self._head_bytes = waiter, 0, 0
        self._in_head, self._answered = True, False
        self.transport.write(request)
        try:
            return await waiter
        except BaseException:  # failed, timed out or cancelled mid-exchange: never reused, and
            self._close()  # closed now (a hanging subscriber must not keep it open for ever)
            raise
        finally:
            self._waiter = None

    def _done(self, status: int) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(status)

    def _fail(self, reason: str) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(_AttemptError(reason, answered=self._answered))
        self._close()

    def _close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


@dataclass(frozen=True)
class _Target:
    host: str
    port: int
    head: bytes  # "POST <path> HTTP/1.1\r\nHost: ...\r\n"


class DeliveryClient:
    """Keeps idle connections per subscriber address; :meth:`post` is one delivery."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._targets: dict[str, _Target] = {}

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, timeout: float
    ) -> Answer:
        try:
            target = self._target(url)
        except ValueError as exc:
            return Answer(0, str(exc))
        lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        if lines.count("\n") != len(headers) or lines.count("\r") != len(headers):
            return Answer(0, "a header with a line break")
        request = b"".join(
            (target.head, lines.encode("latin-1"), b"Content-Length: %d\r\n\r\n" % len(body), body)
        )
        try:
            async with asyncio.timeout(timeout):
                return Answer(await self._send(target, request), "")
        except TimeoutError:
            return Answer(0, "timed out")
        except _AttemptError as failed:
            return Answer(0, failed.reason)
        except OSError as exc:
            return Answer(0, f"unreachable ({type(exc).__name__})")

    async def _send(self, target: _Target, request: bytes) -> int:
        key = (target.host, target.port)
        idle = self._idle.setdefault(key, [])
        while idle:
            conn = idle.pop()
            if conn.closed:
                continue
            try:
                status = await conn.exchange(request)
            except _AttemptError as failed:
                if failed.answered:
                    raise
                break  # closed while idle: once more on a fresh connection
            self._keep(idle, conn)
            return status
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(_Connection, target.host, target.port)
        status = await conn.exchange(request)
        self._keep(idle, conn)
        return status

    @staticmethod
    def _keep(idle: list[_Connection], conn: _Connection) -> None:
        if not conn.closed and len(idle) < MAX_IDLE:
            idle.append(conn)
        elif not conn.closed:
            conn._close()

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            parts = urlsplit(url)
            if parts.scheme != "http" or not parts.hostname:
                raise ValueError(f"not an http:// URL: {url[:100]!r}")
            port = parts.port or 80
            path = parts.path or "/"
            if parts.query:
                path += "?" + parts.query
            host = parts.netloc.rsplit("@", 1)[-1]
            if any(c in path + host for c in " \r\n"):
                raise ValueError(f"not a usable URL: {url[:100]!r}")
            head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
            target = _Target(parts.hostname, port, head.encode("latin-1"))
            if len(self._targets) > 1024:  # subscribers' URLs: few; bound it anyway
                self._targets.clear()
            self._targets[url] = target
        return target

    async def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn._close()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports close
