"""The CONNECT relay: once the tunnel is up, bytes go transport to transport.

Streams are right for the head (h11 reads what the client sent); for the relay they copy every
byte twice more (into the reader's buffer, out of it). Here each side's protocol is swapped
for a splice protocol whose ``data_received`` writes straight into the peer transport, with
asyncio's own flow control (a full peer pauses reading on this side). That halves the proxy's
CPU per byte (see bench/proxy.py). Half-close is passed on; either side closing ends both.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .tunnel import Tunnel

__all__ = ["splice"]

HIGH_WATER = 1024 * 1024


class _Side(asyncio.Protocol):
    def __init__(self, tunnel: Tunnel, outbound: bool, peer: asyncio.WriteTransport) -> None:
        self.tunnel = tunnel
        self.outbound = outbound
        self.peer = peer
        self.transport: asyncio.Transport | None = None
        self.eof = False
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        if self.peer.is_closing():
            return
        self.peer.write(data)
        self.tunnel.last_activity = time.monotonic()
        if self.outbound:
            self.tunnel.bytes_out += len(data)
        else:
            self.tunnel.bytes_in += len(data)

    def eof_received(self) -> bool:
        self.eof = True
        if self.peer.can_write_eof() and not self.peer.is_closing():
            try:
                self.peer.write_eof()
            except OSError:
                self.tunnel.close("error")
        self.tunnel.side_finished()
        return True  # keep our transport open: the other direction may still be sending

    def pause_writing(self) -> None:  # our transport is full: stop reading the peer
        peer = self.peer
        if isinstance(peer, asyncio.ReadTransport) and not peer.is_closing():
            peer.pause_reading()

    def resume_writing(self) -> None:
        peer = self.peer
        if isinstance(peer, asyncio.ReadTransport) and not peer.is_closing():
            peer.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.tunnel.close("error" if exc is not None else "eof")
        if not self.lost.done():
            self.lost.set_result(None)


def _buffered(reader: asyncio.StreamReader) -> tuple[bytes, bool]:
    """What the stream reader already holds (and whether it saw EOF): handed on, not lost."""
    buffer = getattr(reader, "_buffer", None)  # no public peek; asyncio keeps a bytearray
    data = b""
    if isinstance(buffer, bytearray) and buffer:
        data = bytes(buffer)
        buffer.clear()
    return data, reader.at_eof() or bool(getattr(reader, "_eof", False))


async def splice(tunnel: Tunnel, first_bytes: bytes) -> None:
    """Relay until both sides sent EOF, either closed, or ``tunnel.close()``."""
    client = tunnel.client_writer.transport
    upstream = tunnel.upstream_writer.transport
    assert isinstance(client, asyncio.Transport)  # noqa: S101 - TCP transports
    assert isinstance(upstream, asyncio.Transport)  # noqa: S101
    out_side = _Side(tunnel, True, upstream)
    in_side = _Side(tunnel, False, client)
    pending_out, client_eof = _buffered(tunnel.client_reader)
    pending_in, upstream_eof = _buffered(tunnel.upstream_reader)
    for transport, side in ((client, out_side), (upstream, in_side)):
        transport.set_write_buffer_limits(high=HIGH_WATER)
        transport.set_protocol(side)
        side.transport = transport
    data = first_bytes + pending_out
    if data:
        out_side.data_received(data)
    if pending_in:
        in_side.data_received(pending_in)
    if client_eof:
        out_side.eof_received()
    if upstream_eof:
        in_side.eof_received()
    for transport in (client, upstream):
        transport.resume_reading()
    try:
        await tunnel.wait_done()
    finally:
        for transport in (client, upstream):
            transport.close()
        await asyncio.wait(
            [asyncio.ensure_future(side.lost) for side in (out_side, in_side)], timeout=1.0
        )
