"""The proxy lane's client side: httpx clients for calls to the outside world, through the core.

The operator sets ``HTTPS_PROXY`` (the core's ``proxy`` port, ``contract.CORE_PROXY_PORT``) for
plugins with ``external_service``;
the proxy wants the plugin's token in ``Proxy-Authorization``. The token rotates, so it cannot
live in the proxy URL: these clients read the token file (a cheap ``stat`` per request) and,
when it changed, build new connections with the new credentials. Open tunnels keep working
(the proxy checks credentials when a tunnel opens). A 407 (a token that just expired) is
retried once with a freshly read token.

    from vivified_sdk import async_egress_client

    async with async_egress_client() as http:
        response = await http.get("https://api.partner.test/v1/charges")

A refusal by the proxy is a ``403`` (or ``429``/``502``...) with the reason in the
``X-Vivified-Reason`` header (``contract.PROXY_REASON_HEADER``) for plain HTTP; for HTTPS
httpx raises ``httpx.ProxyError`` naming the status. :func:`refusal_reason` reads the reason.

Use :class:`vivified_sdk.CoreClient` for calls to the core itself (never proxied).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

import httpx

from . import contract as c
from ._token_file import TokenFile

__all__ = [
    "AsyncEgressTransport",
    "EgressNotConfigured",
    "EgressTransport",
    "async_egress_client",
    "egress_client",
    "proxy_url_from_env",
    "refusal_reason",
]


class EgressNotConfigured(RuntimeError):  # noqa: N818 - reads as a state
    """No proxy is configured: the plugin lacks ``external_service`` (or runs outside the
    platform without ``HTTPS_PROXY``)."""


def proxy_url_from_env(environ: Mapping[str, str] | None = None) -> str:
    """The core's proxy URL from ``HTTPS_PROXY`` (or ``https_proxy``), as the operator sets it."""
    env = os.environ if environ is None else environ
    for name in (c.ENV_HTTPS_PROXY, c.ENV_HTTPS_PROXY.lower()):
        value = env.get(name, "").strip()
        if value:
            return value
    raise EgressNotConfigured(
        f"{c.ENV_HTTPS_PROXY} is not set: the plugin needs trait external_service and "
        "allowed domains"
    )


def refusal_reason(response: httpx.Response) -> str | None:
    """The proxy's machine-readable reason for refusing ``response``'s request, or None (the
    answer came from the target, not from the proxy)."""
    reason: str | None = response.headers.get(c.PROXY_REASON_HEADER)
    return reason


def _proxy(url: str, token: str) -> httpx.Proxy:
    return httpx.Proxy(url, headers={"Proxy-Authorization": f"Bearer {token}"})


def _is_auth_refusal(error: Exception | None, response: httpx.Response | None) -> bool:
    if response is not None:
        return response.status_code == 407
    return isinstance(error, httpx.ProxyError) and "407" in str(error)


class _Rotating:
    """Which transport carries the current token; the previous one is closed on the next swap."""

    def __init__(self, proxy_url: str, token_file: TokenFile, options: dict[str, Any]) -> None:
        self.proxy_url = proxy_url
        self.token_file = token_file
        self.options = options
        self.lock = threading.Lock()
        self.token: str | None = None


class EgressTransport(httpx.BaseTransport):
    """An httpx transport through the proxy with the token file's current token."""

    def __init__(self, proxy_url: str, token_file: TokenFile, **options: Any) -> None:
        self._state = _Rotating(proxy_url, token_file, options)
        self._current: httpx.HTTPTransport | None = None
        self._retired: list[httpx.HTTPTransport] = []

    def _transport(self, *, force: bool = False) -> httpx.HTTPTransport:
        state = self._state
        token = state.token_file.read(force=force)
        with state.lock:
            if self._current is None or token != state.token:
                if self._current is not None:
                    for old in self._retired:
                        old.close()
                    self._retired = [self._current]
                state.token = token
                self._current = httpx.HTTPTransport(
                    proxy=_proxy(state.proxy_url, token), **state.options
                )
            return self._current

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = self._transport().handle_request(request)
        except httpx.ProxyError as error:
            if not _is_auth_refusal(error, None):
                raise
            return self._transport(force=True).handle_request(request)
        if _is_auth_refusal(None, response):
            response.close()
            return self._transport(force=True).handle_request(request)
        return response

    def close(self) -> None:
        for transport in (*self._retired, *([self._current] if self._current else [])):
            transport.close()


class AsyncEgressTransport(httpx.AsyncBaseTransport):
    """The async twin of :class:`EgressTransport`."""

    def __init__(self, proxy_url: str, token_file: TokenFile, **options: Any) -> None:
        self._state = _Rotating(proxy_url, token_file, options)
        self._current: httpx.AsyncHTTPTransport | None = None
        self._retired: list[httpx.AsyncHTTPTransport] = []

    async def _transport(self, *, force: bool = False) -> httpx.AsyncHTTPTransport:
        state = self._state
        token = state.token_file.read(force=force)
        if self._current is None or token != state.token:
            if self._current is not None:
                for old in self._retired:
                    await old.aclose()
                self._retired = [self._current]
            state.token = token
            self._current = httpx.AsyncHTTPTransport(
                proxy=_proxy(state.proxy_url, token), **state.options
            )
        return self._current

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await (await self._transport()).handle_async_request(request)
        except httpx.ProxyError as error:
            if not _is_auth_refusal(error, None):
                raise
            return await (await self._transport(force=True)).handle_async_request(request)
        if _is_auth_refusal(None, response):
            await response.aclose()
            return await (await self._transport(force=True)).handle_async_request(request)
        return response

    async def aclose(self) -> None:
        for transport in (*self._retired, *([self._current] if self._current else [])):
            await transport.aclose()


def egress_client(
    *,
    proxy_url: str | None = None,
    token_file: TokenFile | None = None,
    verify: Any = True,
    **kwargs: Any,
) -> httpx.Client:
    """A sync client whose every connection goes through the proxy with the current token."""
    transport = EgressTransport(
        proxy_url or proxy_url_from_env(), token_file or TokenFile.from_env(), verify=verify
    )
    return httpx.Client(transport=transport, trust_env=False, **kwargs)


def async_egress_client(
    *,
    proxy_url: str | None = None,
    token_file: TokenFile | None = None,
    verify: Any = True,
    **kwargs: Any,
) -> httpx.AsyncClient:
    """The async twin of :func:`egress_client`."""
    transport = AsyncEgressTransport(
        proxy_url or proxy_url_from_env(), token_file or TokenFile.from_env(), verify=verify
    )
    return httpx.AsyncClient(transport=transport, trust_env=False, **kwargs)
