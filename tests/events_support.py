"""Harness for event-lane tests: plugin records, a fake authenticator, recording subscribers,
and the core's event lane on a real aiohttp server (in-process, or as a process to kill)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from seed import user_management_manifest
from vivified.dataplane.directory import PluginRecord, StaticDirectory
from vivified.manifest import PluginManifest
from vivified.tokens import TokenInvalid, VerifiedToken

#: A test "token" is this prefix plus the plugin id (the real verifier is tested elsewhere).
TOKEN_PREFIX = "test-token:"


class FakeAuthenticator:
    def verify(self, token: str) -> VerifiedToken:
        if not token.startswith(TOKEN_PREFIX):
            raise TokenInvalid("bad signature")
        plugin = token.removeprefix(TOKEN_PREFIX)
        now = datetime.now(UTC)
        return VerifiedToken(
            plugin_id=plugin,
            subject=f"plugin:{plugin}",
            jti="j",
            kid="k",
            issuer="i",
            audience=("a",),
            issued_at=now,
            not_before=now,
            expires_at=now + timedelta(hours=1),
            traits=(),
            data_classification=(),
            version=None,
            claims={},
        )


def token_for(plugin: str) -> str:
    return TOKEN_PREFIX + plugin


def manifest(plugin_id: str, *, pii: bool = True, **events: list[str]) -> dict[str, Any]:
    raw = user_management_manifest(id=plugin_id, name=plugin_id, events=events)
    if events.get("subscribes"):
        raw["endpoints"] = {**raw["endpoints"], "events": "/events"}
    if not pii:
        raw["traits"] = ["audit_required"]
        raw["security"] = {"authentication_required": True, "data_classification": ["internal"]}
    return raw


def record(raw: Mapping[str, Any], phase: str = "Active") -> PluginRecord:
    return PluginRecord(
        plugin_id=raw["id"],
        namespace="t",
        manifest=PluginManifest.model_validate(raw),
        phase=phase,  # type: ignore[arg-type]
    )


def set_phase(directory: StaticDirectory, plugin_id: str, phase: str) -> None:
    current = directory.get(plugin_id)
    assert current is not None
    directory.put(replace(current, phase=phase))  # type: ignore[arg-type]


@dataclass
class Subscriber:
    """A plugin's events endpoint: records deliveries; `mode` ok | fail | hang."""

    mode: str = "ok"
    delay: float = 0.0
    received: list[dict[str, Any]] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    attempts: int = 0
    url: str = ""
    _runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        if self.mode == "hang":
            await asyncio.sleep(3600)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.mode == "fail":
            return web.Response(status=500)
        self.received.append(json.loads(await request.read()))
        self.tokens.append(request.headers.get("Authorization", "").removeprefix("Bearer "))
        return web.Response(status=204)

    async def start(self) -> Subscriber:
        app = web.Application()
        app.router.add_post("/events", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def ids(self) -> list[str]:
        return [e["id"] for e in self.received]


def cloudevent(type_name: str, data: Any, event_id: str, **extra: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": event_id, "type": type_name, "data": data, **extra}


def user_created(n: int) -> dict[str, Any]:
    return cloudevent("UserCreated", {"user_id": f"u{n}", "email": f"u{n}@example.org"}, f"evt-{n}")
