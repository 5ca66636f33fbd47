"""Absolute-URI plain HTTP: one request per client connection, re-framed by h11.

The request is parsed by h11 (server side) and written anew by h11 (client side) with only
end-to-end headers, origin-form target and ``Connection: close``: whatever framing tricks the
client tried, the upstream sees one well-formed request. The response is relayed as it comes
and the connection then closes (no keep-alive, so no response can be mis-paired).
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import h11

from .head import RequestHead
from .responses import refusal
from .tunnel import Tunnel

__all__ = ["HOP_BY_HOP", "forward_request"]

#: Never forwarded (RFC 9110 §7.6.1), plus the proxy's own credentials.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-authenticate",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "expect",
    }
)


def upstream_headers(head: RequestHead) -> list[tuple[str, str]]:
    named = {
        token.strip().lower()
        for value in head.get_all("connection")
        for token in value.split(",")
        if token.strip()
    }
    kept = [(k, v) for k, v in head.headers if k not in HOP_BY_HOP and k not in named]
    kept.append(("connection", "close"))
    return kept


async def forward_request(
    tunnel: Tunnel, conn: h11.Connection, head: RequestHead, *, body_timeout: float = 60.0
) -> None:
    try:
        await _send_request(tunnel, conn, head, body_timeout)
    except (h11.RemoteProtocolError, TimeoutError) as error:
        # A malformed or truncated body, or none in time (found by tests/chaos/fuzz_proxy.py:
        # it escaped as an "unexpected error", the client got no answer and the upstream
        # connection was never closed). Say so, and close both sides.
        if isinstance(error, TimeoutError):
            answer = refusal(408, "body_timeout", "the request body did not arrive in time")
        else:
            answer = refusal(400, "request_malformed", f"malformed request body: {error}")
        tunnel.client_writer.write(answer)
        tunnel.close("request_malformed")
        tunnel.upstream_writer.close()
        return
    await tunnel.run(client_to_upstream=False)


async def _send_request(
    tunnel: Tunnel, conn: h11.Connection, head: RequestHead, body_timeout: float
) -> None:
    parts = urlsplit(head.target)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    upstream = h11.Connection(h11.CLIENT)
    out = tunnel.upstream_writer
    if any(v.lower() == "100-continue" for v in head.get_all("expect")):
        tunnel.client_writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    # Back to the bytes that arrived: a value with obs-text (bytes >= 0x80, latin-1 decoded by
    # the head reader) made h11's ASCII encoding raise (found by the fuzz tier).
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in upstream_headers(head)]
    out.write(upstream.send(h11.Request(method=head.method, target=path, headers=headers)) or b"")
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await asyncio.wait_for(tunnel.client_reader.read(65536), body_timeout)
            conn.receive_data(data)
            continue
        if isinstance(event, h11.Data):
            tunnel.bytes_out += len(event.data)
            out.write(upstream.send(h11.Data(data=event.data)) or b"")
            await out.drain()
            continue
        if isinstance(event, h11.EndOfMessage):
            out.write(upstream.send(h11.EndOfMessage()) or b"")
        break
    await out.drain()
