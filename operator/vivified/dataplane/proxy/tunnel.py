"""An open upstream connection: two pumps, byte counts, and a way to close it from outside.

Half-close is passed on (a client that shuts its sending side still gets the response); the
proxy's policy loop closes a tunnel whose plugin was disabled or whose domain was removed, and
closes tunnels idle for longer than the idle timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CHUNK", "Closed", "Tunnel"]

CHUNK = 256 * 1024


@dataclass(eq=False)
class Tunnel:
    plugin_id: str
    host: str
    port: int
    address: str
    client_reader: asyncio.StreamReader
    client_writer: asyncio.StreamWriter
    upstream_reader: asyncio.StreamReader
    upstream_writer: asyncio.StreamWriter
    opened: float = field(default_factory=time.monotonic)
    last_activity: float = field(default_factory=time.monotonic)
    bytes_out: int = 0
    """Plugin → upstream."""
    bytes_in: int = 0
    """Upstream → plugin."""
    close_reason: str = ""
    judged: object = None
    """The directory record the tunnel was last allowed against (the proxy's live re-check
    skips the decision while the directory still holds that same, immutable, record)."""
    _done: asyncio.Event = field(default_factory=asyncio.Event)
    _eofs: int = 0

    @classmethod
    def failed(cls, reason: str) -> Closed:
        """The close facts of a dial that never connected."""
        return Closed(close_reason=reason)

    @property
    def duration(self) -> float:
        return time.monotonic() - self.opened

    def side_finished(self) -> None:
        """One direction sent EOF; when both have, the tunnel is done."""
        self._eofs += 1
        if self._eofs >= 2:
            self.close("eof")

    async def wait_done(self) -> None:
        await self._done.wait()

    async def splice(self, first_bytes: bytes = b"", *, kernel: bool = True) -> None:
        """CONNECT: relay inside the kernel where it can (:mod:`.kernel_splice`), else
        transport to transport (:mod:`.splice`)."""
        from . import kernel_splice  # noqa: PLC0415 - both import this module's type
        from .splice import splice  # noqa: PLC0415

        if kernel and kernel_splice.AVAILABLE:
            await kernel_splice.kernel_splice(self, first_bytes)
        else:
            await splice(self, first_bytes)

    def close(self, reason: str) -> None:
        """Stop both directions now (idempotent); the first reason given is kept."""
        if not self.close_reason:
            self.close_reason = reason
        self._done.set()

    async def run(self, first_bytes: bytes = b"", *, client_to_upstream: bool = True) -> None:
        """Relay until both sides finished, an error, or :meth:`close`."""
        if first_bytes:
            self.upstream_writer.write(first_bytes)
            self.bytes_out += len(first_bytes)
        pumps: list[asyncio.Task[Any]] = [
            asyncio.create_task(self._pump(self.upstream_reader, self.client_writer, False))
        ]
        if client_to_upstream:
            pumps.append(
                asyncio.create_task(self._pump(self.client_reader, self.upstream_writer, True))
            )
        finished: asyncio.Task[Any] = asyncio.create_task(self._done.wait())
        remaining: set[asyncio.Task[Any]] = set(pumps)
        try:
            while remaining and not self._done.is_set():
                done, _ = await asyncio.wait(
                    remaining | {finished}, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done & remaining:
                    remaining.discard(task)
                    if task.exception() is not None:
                        self.close("error")
                if not client_to_upstream and not remaining:
                    break
        finally:
            self.close("eof")
            for task in (*pumps, finished):
                task.cancel()
            for task in (*pumps, finished):
                with contextlib.suppress(BaseException):
                    await task
            for writer in (self.upstream_writer, self.client_writer):
                writer.close()
            for writer in (self.upstream_writer, self.client_writer):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, outbound: bool
    ) -> None:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                if writer.can_write_eof():
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                return
            writer.write(data)
            self.last_activity = time.monotonic()
            if outbound:
                self.bytes_out += len(data)
            else:
                self.bytes_in += len(data)
            await writer.drain()


@dataclass
class Closed:
    """What the close record needs, for a connection that never opened."""

    close_reason: str
    address: str = ""
    bytes_in: int = 0
    bytes_out: int = 0
    duration: float = 0.0
