"""The CONNECT relay on Linux: ``splice(2)`` moves the bytes inside the kernel.

Once the tunnel is up the proxy never looks at a byte again, so copying each one into Python
and out again is pure cost. Here each direction is socket → pipe → socket with
``os.splice``: the pages move between the two sockets' buffers without entering user space,
driven by the event loop's readiness callbacks on duplicates of the two sockets (the asyncio
transports are paused, and closed at the end). Flow control is the kernel's: a direction whose
destination is full stops reading its source until the destination drains. Half-close is
passed on (EOF from one side → ``shutdown(SHUT_WR)`` on the other); an error or
``tunnel.close()`` ends both directions. :mod:`.splice` (transport to transport) is the
fallback where ``os.splice`` does not exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import socket
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .tunnel import Tunnel

__all__ = ["AVAILABLE", "kernel_splice"]

AVAILABLE = hasattr(os, "splice") and hasattr(os, "SPLICE_F_NONBLOCK")
PIPE_BYTES = 1024 * 1024
_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)


class _Direction:
    """One direction of the tunnel: ``src`` → pipe → ``dst``."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        tunnel: Tunnel,
        src: int,
        dst: int,
        outbound: bool,
    ) -> None:
        self.loop, self.tunnel, self.src, self.dst, self.outbound = loop, tunnel, src, dst, outbound
        self.pipe_r, self.pipe_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(self.pipe_w, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        self.in_pipe = 0
        self.reading = False
        self.writing = False
        self.finished = False

    def start(self) -> None:
        self._want_read(True)

    def _want_read(self, on: bool) -> None:
        if on and not self.reading:
            self.loop.add_reader(self.src, self._readable)
        elif not on and self.reading:
            self.loop.remove_reader(self.src)
        self.reading = on

    def _want_write(self, on: bool) -> None:
        if on and not self.writing:
            self.loop.add_writer(self.dst, self._drain)
        elif not on and self.writing:
            self.loop.remove_writer(self.dst)
        self.writing = on

    def _readable(self) -> None:
        try:
            moved = os.splice(self.src, self.pipe_w, PIPE_BYTES, flags=_FLAGS)
        except BlockingIOError:
            return
        except OSError as error:
            self._fail(error)
            return
        if moved == 0:
            self._eof()
            return
        self.in_pipe += moved
        self._drain()

    def _drain(self) -> None:
        while self.in_pipe:
            try:
                moved = os.splice(self.pipe_r, self.dst, self.in_pipe, flags=_FLAGS)
            except BlockingIOError:
                self._want_read(False)  # the destination is full: stop reading the source
                self._want_write(True)
                return
            except OSError as error:
                self._fail(error)
                return
            self.in_pipe -= moved
            self.tunnel.last_activity = time.monotonic()
            if self.outbound:
                self.tunnel.bytes_out += moved
            else:
                self.tunnel.bytes_in += moved
        self._want_write(False)
        if not self.finished:
            self._want_read(True)

    def _eof(self) -> None:
        self._want_read(False)
        self.finished = True
        try:
            with socket.socket(fileno=os.dup(self.dst)) as dst:
                dst.shutdown(socket.SHUT_WR)
        except OSError:
            self.tunnel.close("error")
            return
        self.tunnel.side_finished()

    def _fail(self, error: OSError) -> None:
        quiet = error.errno in (errno.ECONNRESET, errno.EPIPE)
        self.tunnel.close("eof" if quiet and self.finished else "error")

    def stop(self) -> None:
        self._want_read(False)
        self._want_write(False)
        for fd in (self.pipe_r, self.pipe_w):
            with contextlib.suppress(OSError):
                os.close(fd)


async def _flush(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Write ``data`` and wait until asyncio's write buffer is empty."""
    transport = writer.transport
    transport.set_write_buffer_limits(high=0)
    if data:
        writer.write(data)
    await writer.drain()
    while transport.get_write_buffer_size() and not transport.is_closing():
        await asyncio.sleep(0.001)  # drain() returns at the low mark; wait for "empty"


async def kernel_splice(tunnel: Tunnel, first_bytes: bytes) -> None:
    """Relay until both sides sent EOF, either failed, or ``tunnel.close()``."""
    from .splice import _buffered  # noqa: PLC0415 - the same hand-over of buffered bytes

    loop = asyncio.get_running_loop()
    client, upstream = tunnel.client_writer.transport, tunnel.upstream_writer.transport
    for transport in (client, upstream):
        assert isinstance(transport, asyncio.ReadTransport)  # noqa: S101 - TCP transports
        transport.pause_reading()
    pending_out, client_eof = _buffered(tunnel.client_reader)
    pending_in, upstream_eof = _buffered(tunnel.upstream_reader)
    fds: list[int] = []
    directions: list[_Direction] = []
    try:
        await _flush(tunnel.client_writer, pending_in)  # the 200 line, then upstream's bytes
        await _flush(tunnel.upstream_writer, first_bytes + pending_out)
        tunnel.bytes_out += len(first_bytes) + len(pending_out)
        tunnel.bytes_in += len(pending_in)
        for writer in (tunnel.client_writer, tunnel.upstream_writer):
            sock = writer.get_extra_info("socket")
            fds.append(os.dup(sock.fileno()))
        client_fd, upstream_fd = fds
        out = _Direction(loop, tunnel, client_fd, upstream_fd, True)
        back = _Direction(loop, tunnel, upstream_fd, client_fd, False)
        directions = [out, back]
        for direction, eof in ((out, client_eof), (back, upstream_eof)):
            if eof:
                direction._eof()
            else:
                direction.start()
        await tunnel.wait_done()
    finally:
        for direction in directions:
            direction.stop()
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        for transport in (client, upstream):
            transport.close()
