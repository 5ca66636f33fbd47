"""Harness for event-lane tests: the core's real context (plugin tokens minted by an operator
key ring, call tokens by the core's key), plugin records, recording subscribers, and the
core's app (``build_app`` with the event lane) in-process or as a process to kill."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from seed import user_management_manifest
from vivified import tokens
from vivified.audit.hook import MemoryAuditor
from vivified.dataplane.context import CoreContext
from vivified.dataplane.directory import PluginRecord, StaticDirectory
from vivified.dataplane.settings import CoreSettings
from vivified.dataplane.trust import CoreKey, TrustState
from vivified.manifest import PluginManifest
from vivified_sdk import CallIdentity, CallVerifier, StaticJwks, contract


def core_context(
    directory: StaticDirectory,
    operator_jwks: Mapping[str, Any],
    core_key: tokens.SigningKey,
    auditor: MemoryAuditor | None = None,
) -> CoreContext:
    """A ready core context: it trusts ``operator_jwks`` and signs with ``core_key``."""
    trust = TrustState(CoreKey(core_key))
    trust.set_jwks(tokens.jwks_to_configmap_data(operator_jwks))
    trust.set_revocations(tokens.revocations_to_configmap_data(tokens.RevocationList()))
    return CoreContext(
        settings=CoreSettings(heartbeat_leases=False),
        directory=directory,
        trust=trust,
        auditor=auditor if auditor is not None else MemoryAuditor(),
    )


@dataclass
class World:
    """The operator's identity (key ring), the core's key, a directory and the core context."""

    directory: StaticDirectory = field(default_factory=StaticDirectory)
    auditor: MemoryAuditor = field(default_factory=MemoryAuditor)
    keyring: tokens.KeyRing = field(
        default_factory=lambda: tokens.KeyRing(active=tokens.generate_signing_key(_now()))
    )
    core_key: tokens.SigningKey = field(default_factory=lambda: tokens.generate_signing_key(_now()))

    def __post_init__(self) -> None:
        self.ctx = core_context(
            self.directory, tokens.jwks(self.keyring), self.core_key, self.auditor
        )
        self._tokens: dict[str, str] = {}

    def token_for(self, plugin_id: str) -> str:
        """A real plugin token for ``plugin_id`` (its record's manifest, or a stand-in)."""
        if plugin_id not in self._tokens:
            record = self.directory.get(plugin_id)
            m = (
                record.manifest
                if record is not None
                else PluginManifest.model_validate(manifest(plugin_id))
            )
            settings = self.ctx.settings
            self._tokens[plugin_id] = tokens.mint_plugin_token(
                self.keyring,
                m,
                issuer=settings.token_issuer,
                audience=settings.token_audience,
                ttl_seconds=3600,
                now=_now(),
            ).token
        return self._tokens[plugin_id]

    def call_verifier(self, plugin_id: str) -> CallVerifier:
        """What the subscriber ``plugin_id`` verifies deliveries with (the core's JWKS)."""
        jwks = json.loads(self.ctx.trust.published_jwks())
        return CallVerifier(
            StaticJwks(jwks), plugin_id=plugin_id, issuer=self.ctx.settings.call_token_issuer
        )

    def delivered_by_core(self, subscriber: str, token: str) -> CallIdentity:
        """Verify a delivery's token as the subscriber would; returns who published."""
        identity = self.call_verifier(subscriber).verify(token)
        assert identity.operation == contract.EVENT_DELIVERY_OPERATION
        return identity

    def process_config(self, workdir: Path, **extra: Any) -> dict[str, Any]:
        """What ``events_core.py`` (the core's app as its own process) needs to trust the
        same keys: the operator JWKS and the core key's PEM file."""
        key_file = workdir / "core-key.pem"
        key_file.write_bytes(self.core_key.private_pem)
        return {"jwks": tokens.jwks(self.keyring), "core_key_file": str(key_file), **extra}


def _now() -> datetime:
    return datetime.now(UTC)


def manifest(plugin_id: str, *, pii: bool = True, **events: list[str]) -> dict[str, Any]:
    raw = user_management_manifest(id=plugin_id, name=plugin_id, events=events)
    if events.get("subscribes"):
        raw["endpoints"] = {**raw["endpoints"], "events": "/events"}
    if not pii:
        raw["traits"] = ["audit_required"]
        raw["security"] = {"authentication_required": True, "data_classification": ["internal"]}
    return raw


def record(raw: Mapping[str, Any], phase: str = "Active") -> PluginRecord:
    """A directory record of manifest ``raw``."""
    return PluginRecord(
        plugin_id=raw["id"],
        namespace="t",
        manifest=PluginManifest.model_validate(raw),
        phase=phase,  # type: ignore[arg-type]
    )


def directory_of(raws: Iterable[Mapping[str, Any]]) -> StaticDirectory:
    return StaticDirectory(record(raw) for raw in raws)


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
