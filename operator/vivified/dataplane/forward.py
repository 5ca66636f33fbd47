"""Forward one allowed call to its target: address, headers, body and response, bounded.

* Address: the target's Service ``<id>.<namespace>.<service_domain>:<port>`` in cluster, or
  ``address_map`` (tests, the demo) — never anything the caller supplied.
* Request headers: hop-by-hop headers (RFC 9110 7.6.1, and any the ``Connection`` header
  names) are dropped, so are the caller's ``Authorization``, cookies, ``Host``, proxy and
  forwarding headers and any ``X-Vivified-*`` (only the core sets those). The core adds the
  call token (``Authorization: Bearer``) and ``X-Vivified-Caller`` / ``-Operation`` (for logs;
  the token is what a target must trust).
* Bodies stream both ways through a pooled ``aiohttp.ClientSession``; a request body over
  ``max_request_bytes`` is a 413 before anything is sent, a declared response over
  ``max_response_bytes`` a 502, and one that grows past it mid-stream is cut off.
* Timeouts: connect and total; a timeout is a 504, an unreachable target a 503. Never open.
* A :class:`Tally` (for the audit trail) counts the bytes each way as they stream, and with
  ``digests`` hashes them (SHA-256): the bodies are never buffered for it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from vivified.dataplane.directory import PluginRecord
from vivified.dataplane.settings import CoreSettings

__all__ = [
    "HOP_BY_HOP",
    "ForwardFailure",
    "Forwarder",
    "request_headers",
    "response_headers",
    "upstream_address",
]

logger = logging.getLogger(__name__)

HOP_BY_HOP: frozenset[str] = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_DROPPED_REQUEST: frozenset[str] = frozenset(
    {
        "authorization",
        "cookie",
        "host",
        "content-length",
        "expect",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-real-ip",
    }
)
_DROPPED_RESPONSE: frozenset[str] = frozenset({"content-length", "server", "set-cookie"})
CHUNK = 64 * 1024
#: Answers up to this size with a Content-Length are read whole and sent in one write.
BUFFERED_BYTES = 64 * 1024


class ForwardFailure(Exception):  # noqa: N818
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


def upstream_address(target: PluginRecord, settings: CoreSettings) -> str:
    mapped = settings.address_map.get(target.plugin_id)
    if mapped:
        return mapped
    return f"{target.plugin_id}.{target.namespace}.{settings.service_domain}:{target.port}"


def _connection_named(headers: CIMultiDictProxy[str]) -> set[str]:
    return {
        token.strip().lower()
        for value in headers.getall("Connection", ())
        for token in value.split(",")
        if token.strip()
    }


def request_headers(
    incoming: CIMultiDictProxy[str],
    *,
    call_token: str,
    caller: str,
    operation: str,
) -> list[tuple[str, str]]:
    named = _connection_named(incoming)
    out = [
        (name, value)
        for name, value in incoming.items()
        if (lowered := name.lower()) not in HOP_BY_HOP
        and lowered not in _DROPPED_REQUEST
        and lowered not in named
        and not lowered.startswith("x-vivified-")
    ]
    out.append(("Authorization", f"Bearer {call_token}"))
    out.append(("X-Vivified-Caller", caller))
    out.append(("X-Vivified-Operation", operation))
    return out


def response_headers(upstream: aiohttp.ClientResponse) -> list[tuple[str, str]]:
    named = _connection_named(upstream.headers)
    return [
        (name, value)
        for name, value in upstream.headers.items()
        if (lowered := name.lower()) not in HOP_BY_HOP
        and lowered not in _DROPPED_RESPONSE
        and lowered not in named
    ]


@dataclass
class Tally:
    """What passed through one forwarded call: sizes, and SHA-256 digests when asked."""

    digests: bool = False
    request_bytes: int = 0
    response_bytes: int = 0
    _request: hashlib._Hash | None = field(default=None, repr=False)
    _response: hashlib._Hash | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.digests:
            self._request, self._response = hashlib.sha256(), hashlib.sha256()

    def sent(self, chunk: bytes) -> None:
        self.request_bytes += len(chunk)
        if self._request is not None:
            self._request.update(chunk)

    def received(self, chunk: bytes) -> None:
        self.response_bytes += len(chunk)
        if self._response is not None:
            self._response.update(chunk)

    def details(self) -> dict[str, object]:
        """Audit details: sizes, and the digests (of empty bodies too) when asked."""
        out: dict[str, object] = {
            "request_bytes": self.request_bytes,
            "response_bytes": self.response_bytes,
        }
        if self._request is not None and self._response is not None:
            out["request_sha256"] = self._request.hexdigest()
            out["response_sha256"] = self._response.hexdigest()
        return out


@dataclass
class Forwarder:
    """Owns the pooled upstream session (created lazily in the running loop)."""

    settings: CoreSettings
    _session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=0,
                limit_per_host=self.settings.upstream_connections_per_host,
                ttl_dns_cache=30,
                enable_cleanup_closed=True,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                trust_env=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _body(self, request: web.Request, tally: Tally | None) -> AsyncIterator[bytes]:
        sent = 0
        limit = self.settings.max_request_bytes
        async for chunk in request.content.iter_chunked(CHUNK):
            sent += len(chunk)
            if sent > limit:
                raise ForwardFailure(413, "body_too_large", f"request body over {limit} bytes")
            if tally is not None:
                tally.sent(chunk)
            yield chunk

    async def forward(
        self,
        request: web.Request,
        target: PluginRecord,
        path: str,
        *,
        call_token: str,
        caller: str,
        operation: str,
        tally: Tally | None = None,
    ) -> web.StreamResponse:
        limit = self.settings.max_request_bytes
        if request.content_length is not None and request.content_length > limit:
            raise ForwardFailure(413, "body_too_large", f"request body over {limit} bytes")
        url = f"http://{upstream_address(target, self.settings)}{path}"
        timeout = aiohttp.ClientTimeout(
            total=self.settings.upstream_timeout_seconds,
            sock_connect=self.settings.connect_timeout_seconds,
        )
        headers = request_headers(
            request.headers, call_token=call_token, caller=caller, operation=operation
        )
        data = self._body(request, tally) if request.body_exists else None
        try:
            async with self.session().request(
                request.method,
                url,
                headers=headers,
                data=data,
                timeout=timeout,
                allow_redirects=False,
            ) as upstream:
                return await self._relay(request, upstream, tally)
        except ForwardFailure:
            raise
        except TimeoutError:
            raise ForwardFailure(
                504, "upstream_timeout", f"{target.plugin_id!r} did not answer in time"
            ) from None
        except aiohttp.ClientConnectorError:
            raise ForwardFailure(
                503, "target_unreachable", f"{target.plugin_id!r} cannot be reached"
            ) from None
        except aiohttp.ClientError as error:
            raise ForwardFailure(
                502, "upstream_error", f"{target.plugin_id!r} broke the exchange"
            ) from error

    async def _relay(
        self, request: web.Request, upstream: aiohttp.ClientResponse, tally: Tally | None
    ) -> web.StreamResponse:
        limit = self.settings.max_response_bytes
        if upstream.content_length is not None and upstream.content_length > limit:
            raise ForwardFailure(502, "response_too_large", f"response over {limit} bytes")
        if (
            upstream.content_length is not None
            and upstream.content_length <= BUFFERED_BYTES
            and request.method != "HEAD"
            and upstream.status not in (204, 304)
        ):
            # A small answer of known size (the usual API reply) goes out in one write, not a
            # header write, a chunk write and an end write.
            body = await upstream.content.readexactly(upstream.content_length)
            if tally is not None:
                tally.received(body)
            return web.Response(
                status=upstream.status,
                reason=upstream.reason,
                body=body,
                headers=CIMultiDict(response_headers(upstream)),
            )
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for name, value in response_headers(upstream):
            response.headers.add(name, value)
        if upstream.content_length is not None:
            response.content_length = upstream.content_length
        await response.prepare(request)
        received = 0
        async for chunk in upstream.content.iter_chunked(CHUNK):
            received += len(chunk)
            if received > limit:
                # Headers are out already: the only honest signal left is a cut connection.
                logger.warning("response from upstream over %d bytes; cut off", limit)
                if request.transport is not None:
                    request.transport.close()
                return response
            if tally is not None:
                tally.received(chunk)
            await response.write(chunk)
        await response.write_eof()
        return response
