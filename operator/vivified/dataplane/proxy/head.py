"""Reading one request head with h11, within a size and a time budget.

h11 does the HTTP/1.1 parsing (request line, header syntax, conflicting Content-Length,
unsupported or repeated Transfer-Encoding, the head size cap); on top of it the proxy refuses
a request that carries *both* Content-Length and Transfer-Encoding — h11 accepts that shape
(chunked wins, as RFC 9112 allows) but it is the classic smuggling vector, and a proxy has no
reason to accept it — and heads with more than ``max_headers`` fields.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import h11

__all__ = ["HeadError", "RequestHead", "read_head"]


@dataclass(frozen=True)
class RequestHead:
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    """Names lower-cased by h11; values latin-1 decoded."""

    def get_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]


@dataclass(frozen=True)
class HeadError(Exception):
    status: int
    reason: str
    message: str


async def read_head(
    reader: asyncio.StreamReader,
    conn: h11.Connection,
    *,
    timeout: float,
    max_headers: int,
    max_bytes: int,
) -> RequestHead | None:
    """The request head, ``None`` if the client left without sending one, or HeadError."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                try:
                    event = conn.next_event()
                except h11.RemoteProtocolError as error:
                    hint = error.error_status_hint
                    if hint == 431 or "too long" in str(error).lower():
                        raise HeadError(
                            431, "headers_too_large", "the request head is too large"
                        ) from None
                    raise HeadError(
                        400 if hint not in (400, 501) else hint,
                        "request_malformed",
                        f"malformed request: {error}",
                    ) from None
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    conn.receive_data(data)
                    continue
                if isinstance(event, h11.Request):
                    return _head(event, max_headers, max_bytes)
                return None  # ConnectionClosed (or anything else before a request)
    except TimeoutError:
        raise HeadError(408, "head_timeout", "the request head did not arrive in time") from None


def _head(event: h11.Request, max_headers: int, max_bytes: int) -> RequestHead:
    headers = tuple(
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in event.headers
    )
    # h11 caps only a head that is still incomplete; one that arrived whole is measured here.
    size = len(event.target) + sum(len(n) + len(v) + 4 for n, v in headers)
    if size > max_bytes:
        raise HeadError(431, "headers_too_large", "the request head is too large")
    if len(headers) > max_headers:
        raise HeadError(431, "headers_too_large", f"more than {max_headers} header fields")
    names = {name for name, _ in headers}
    if "content-length" in names and "transfer-encoding" in names:
        raise HeadError(
            400,
            "request_smuggling",
            "Content-Length and Transfer-Encoding together are refused",
        )
    if len([n for n, _ in headers if n == "proxy-authorization"]) > 1:
        raise HeadError(400, "request_malformed", "more than one Proxy-Authorization header")
    return RequestHead(event.method.decode("ascii"), event.target.decode("latin-1"), headers)
