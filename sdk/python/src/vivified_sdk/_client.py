"""Authenticated calls from a plugin to the platform.

``TokenAuth`` puts the plugin's *current* token on every request (the file is re-read when
the kubelet swapped it) and, when the platform answers 401, re-reads the file once and
retries if the token changed in between — the moment of rotation costs no failed call.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from . import contract as c
from ._env import optional
from ._token_file import TokenFile

__all__ = ["CoreClient", "TokenAuth"]


class TokenAuth(httpx.Auth):
    """``Authorization: Bearer <token from TokenFile>``, for sync and async httpx clients."""

    def __init__(self, token_file: TokenFile) -> None:
        self.token_file = token_file

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.token_file.read()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            fresh = self.token_file.read(force=True)
            if fresh != token:
                request.headers["Authorization"] = f"Bearer {fresh}"
                yield request


class CoreClient:
    """An ``httpx.AsyncClient`` for the core at ``VIVIFIED_CORE_URL``, authenticated as
    this plugin. Use as ``async with CoreClient.from_env() as core: await core.get(...)``."""

    def __init__(
        self,
        base_url: str,
        *,
        token_file: TokenFile,
        heartbeat_url: str | None = None,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.token_file = token_file
        self.heartbeat_url = heartbeat_url
        self.http = httpx.AsyncClient(
            base_url=base_url,
            auth=TokenAuth(token_file),
            timeout=timeout,
            follow_redirects=False,  # never carry the token to another host
            transport=transport,
        )

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> CoreClient:
        env = os.environ if environ is None else environ
        base_url = optional(env, c.ENV_CORE_URL)
        if base_url is None:
            raise RuntimeError(f"{c.ENV_CORE_URL} is not set")
        return cls(
            base_url,
            token_file=TokenFile.from_env(env),
            heartbeat_url=optional(env, c.ENV_HEARTBEAT_URL),
            transport=transport,
        )

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return await self.http.request(method, url, **kwargs)

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.http.get(url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.http.post(url, **kwargs)

    async def invoke(
        self,
        target: str,
        operation: str,
        *path: str,
        method: str = "GET",
        **kwargs: Any,
    ) -> httpx.Response:
        """Call ``operation`` of plugin ``target`` through the core's operator lane
        (``{method} /v1/invoke/{target}/{operation}/{path...}``). Each ``path`` value fills
        one placeholder of the operation's template (``/api/users/{id}`` → ``invoke(
        "user-management", "user_info", "42")``) and is %-encoded whole, so it can never
        add a segment. A refusal is a problem+json response whose ``reason`` says why."""
        segments = "".join("/" + quote(str(p), safe="") for p in path)
        url = f"/v1/invoke/{quote(target, safe='')}/{quote(operation, safe='')}{segments}"
        return await self.http.request(method, url, **kwargs)

    async def heartbeat(
        self,
        status: str = "healthy",
        *,
        metrics: Mapping[str, int | float | str] | None = None,
        message: str | None = None,
    ) -> httpx.Response:
        """``POST`` a heartbeat to ``VIVIFIED_HEARTBEAT_URL`` (the core's ``/v1/heartbeat``,
        docs/core.md). Raises ``RuntimeError`` when no heartbeat URL is configured."""
        if self.heartbeat_url is None:
            raise RuntimeError(f"{c.ENV_HEARTBEAT_URL} is not set")
        body: dict[str, Any] = {"status": status}
        if metrics:
            body["metrics"] = dict(metrics)
        if message:
            body["message"] = message
        return await self.http.post(self.heartbeat_url, json=body)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> CoreClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
