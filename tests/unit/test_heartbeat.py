"""POST /plugins/heartbeat: only a plugin's own valid token may report, and only for itself."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from tests.unit.test_monitor import FakeKube, ScriptedProber

from vivified import tokens
from vivified.health import Health, Heartbeat, ProbeAddressResolver, ProbeKind, ProbeTarget
from vivified.manifest import PluginManifest
from vivified.registry import PluginRegistry
from vivified.settings import OperatorSettings
from vivified.shell.events import EventRecorder
from vivified.shell.heartbeat import (
    HEARTBEAT_PATH,
    JWKS_PATH,
    MAX_HEARTBEAT_BYTES,
    REVOCATIONS_PATH,
    HeartbeatServer,
)
from vivified.shell.monitor import HealthMonitor

NS = "team-a"
SETTINGS = OperatorSettings(heartbeat_host="127.0.0.1")


def utc_now() -> datetime:
    return datetime.now(UTC)


def manifest(plugin_id: str) -> PluginManifest:
    return PluginManifest.model_validate(
        {
            "id": plugin_id,
            "name": plugin_id,
            "version": "1.0.0",
            "contracts": ["StoragePlugin"],
            "traits": ["audit_required"],
            "security": {"authentication_required": True, "data_classification": ["internal"]},
            "compliance": {"audit_level": "basic"},
        }
    )


def resource(plugin_id: str, namespace: str = NS) -> dict[str, Any]:
    return {
        "apiVersion": "vivified.dev/v1alpha1",
        "kind": "VivifiedPlugin",
        "metadata": {
            "name": plugin_id,
            "namespace": namespace,
            "uid": f"uid-{plugin_id}",
            "creationTimestamp": "2025-01-01T00:00:00Z",
        },
        "spec": {"manifest": {"id": plugin_id}},
        "status": {},
    }


@dataclass
class FakeIdentity:
    keyring: tokens.KeyRing
    revocations: tokens.RevocationList = field(default_factory=tokens.RevocationList)


@dataclass
class RecordingSink:
    beats: list[tuple[tuple[str, str], Heartbeat]] = field(default_factory=list)
    tracked: set[tuple[str, str]] = field(default_factory=set)

    def record_heartbeat(self, key: tuple[str, str], beat: Heartbeat) -> Health | None:
        if key not in self.tracked:
            return None
        self.beats.append((key, beat))
        return beat.health


@dataclass
class World:
    url: str
    identity: FakeIdentity
    sink: RecordingSink
    registry: PluginRegistry
    server: HeartbeatServer

    def mint(self, plugin_id: str, **kwargs: Any) -> tokens.MintedToken:
        options: dict[str, Any] = {
            "issuer": SETTINGS.token_issuer,
            "audience": SETTINGS.token_audience,
            "ttl_seconds": 600,
            "now": utc_now(),
        }
        options.update(kwargs)
        return tokens.mint_plugin_token(self.identity.keyring, manifest(plugin_id), **options)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    identity = FakeIdentity(tokens.KeyRing(active=tokens.generate_signing_key(utc_now())))
    registry = PluginRegistry()
    sink = RecordingSink()
    for plugin_id in ("plugin-a", "plugin-b"):
        registry.upsert((NS, plugin_id), resource(plugin_id))
        sink.tracked.add((NS, plugin_id))
    registry.upsert((NS, "disabled"), resource("disabled"))
    server = HeartbeatServer(sink, registry, identity, SETTINGS, utc_now, port=0)
    await server.start()
    assert server.bound_port
    yield World(
        f"http://127.0.0.1:{server.bound_port}{HEARTBEAT_PATH}", identity, sink, registry, server
    )
    await server.stop()


async def post(
    world: World,
    body: Any = None,
    *,
    token: str | None = None,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(trust_env=False) as client:
        if content is not None:
            sent.setdefault("Content-Type", "application/json")
            return await client.post(world.url, content=content, headers=sent)
        return await client.post(world.url, json=body if body is not None else {}, headers=sent)


async def test_own_heartbeat_is_accepted(world: World) -> None:
    token = world.mint("plugin-a").token
    reply = await post(
        world,
        {"plugin_id": "plugin-a", "status": "degraded", "metrics": {"queue": 7, "bad": [1]}},
        token=token,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"plugin_id": "plugin-a", "health": "degraded"}
    ((key, beat),) = world.sink.beats
    assert key == (NS, "plugin-a")
    assert beat.health is Health.DEGRADED
    assert dict(beat.metrics or {}) == {"queue": 7}


async def test_plugin_id_may_be_omitted(world: World) -> None:
    reply = await post(world, {}, token=world.mint("plugin-b").token)
    assert reply.status_code == 200
    assert world.sink.beats[0][0] == (NS, "plugin-b")


async def test_reporting_for_another_plugin_is_forbidden(world: World) -> None:
    reply = await post(world, {"plugin_id": "plugin-b"}, token=world.mint("plugin-a").token)
    assert reply.status_code == 403
    assert world.sink.beats == []


@pytest.mark.parametrize(
    "case",
    ["missing", "basic", "empty", "garbage", "expired", "audience", "issuer", "foreign", "revoked"],
)
async def test_bad_tokens_are_401(world: World, case: str) -> None:
    headers: dict[str, str] = {}
    token: str | None = None
    if case == "basic":
        headers["Authorization"] = "Basic dXNlcjpwYXNz"
    elif case == "empty":
        headers["Authorization"] = "Bearer"
    elif case == "garbage":
        token = "x.y.z"
    elif case == "expired":
        token = world.mint("plugin-a", now=utc_now() - timedelta(hours=1), ttl_seconds=60).token
    elif case == "audience":
        token = world.mint("plugin-a", audience="elsewhere").token
    elif case == "issuer":
        token = world.mint("plugin-a", issuer="mallory").token
    elif case == "foreign":
        other = tokens.KeyRing(active=tokens.generate_signing_key(utc_now()))
        token = tokens.mint_plugin_token(
            other,
            manifest("plugin-a"),
            issuer=SETTINGS.token_issuer,
            audience=SETTINGS.token_audience,
            ttl_seconds=600,
            now=utc_now(),
        ).token
    elif case == "revoked":
        minted = world.mint("plugin-a")
        world.identity.revocations = tokens.revoke(
            world.identity.revocations, minted.jti, minted.expires_at
        )
        token = minted.token
    reply = await post(world, {}, token=token, headers=headers)
    assert reply.status_code == 401, reply.text
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert world.sink.beats == []


async def test_rotated_keyring_is_picked_up(world: World) -> None:
    old = world.mint("plugin-a").token
    world.identity.keyring = tokens.rotate(
        world.identity.keyring, tokens.generate_signing_key(utc_now()), utc_now(), 600
    )
    assert (await post(world, {}, token=old)).status_code == 200  # retired key still published
    assert (await post(world, {}, token=world.mint("plugin-a").token)).status_code == 200


async def test_unknown_or_unmonitored_plugin_is_404(world: World) -> None:
    assert (await post(world, {}, token=world.mint("stranger").token)).status_code == 404
    assert (await post(world, {}, token=world.mint("disabled").token)).status_code == 404


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b"not json", 400),
        (b"[]", 400),
        (b'{"status": "fine"}', 400),
        (b'{"status": "healthy", "status": "healthy"}', 400),
        (b'{"metrics": NaN}', 400),
        (b'{"metrics": [1]}', 400),
        (b"[" * 10_000 + b"]" * 5_000, 400),
        (b'{"message": "' + b"x" * MAX_HEARTBEAT_BYTES + b'"}', 413),
    ],
)
async def test_bad_bodies(world: World, content: bytes, status: int) -> None:
    reply = await post(world, token=world.mint("plugin-a").token, content=content)
    assert reply.status_code == status, reply.text
    assert world.sink.beats == []


async def test_json_only(world: World) -> None:
    reply = await post(
        world,
        token=world.mint("plugin-a").token,
        content=b"status=healthy",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert reply.status_code == 415


async def test_chunked_oversize_body_is_413(world: World) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"message": "'
        for _ in range(40):
            yield b"x" * 1024
        yield b'"}'

    async with httpx.AsyncClient(trust_env=False) as client:
        reply = await client.post(
            world.url,
            content=chunks(),
            headers={
                "Authorization": f"Bearer {world.mint('plugin-a').token}",
                "Content-Type": "application/json",
            },
        )
    assert reply.status_code == 413


async def test_only_post_on_the_one_path(world: World) -> None:
    async with httpx.AsyncClient(trust_env=False) as client:
        assert (await client.get(world.url)).status_code == 405
        base = world.url.removesuffix(HEARTBEAT_PATH)
        assert (await client.post(base + "/plugins/register", json={})).status_code == 404


async def test_port_zero_in_settings_means_not_served() -> None:
    server = HeartbeatServer(
        RecordingSink(),
        PluginRegistry(),
        FakeIdentity(tokens.KeyRing(active=tokens.generate_signing_key(utc_now()))),
        OperatorSettings(heartbeat_port=0),
        utc_now,
    )
    await server.start()
    assert server.bound_port is None
    await server.stop()


async def test_heartbeat_reaches_the_status_through_the_monitor() -> None:
    """End to end in-process: token → server → HealthMonitor → status patch."""
    identity = FakeIdentity(tokens.KeyRing(active=tokens.generate_signing_key(utc_now())))
    registry = PluginRegistry()
    registry.upsert((NS, "plugin-a"), resource("plugin-a"))
    kube = FakeKube()
    monitor = HealthMonitor(
        kube,  # type: ignore[arg-type]
        EventRecorder(kube, utc_now),  # type: ignore[arg-type]
        SETTINGS,
        utc_now,
        resolver=ProbeAddressResolver(SETTINGS),
        prober=ScriptedProber(),
    )
    monitor.track(
        (NS, "plugin-a"),
        ProbeTarget(
            plugin_id="plugin-a",
            kind=ProbeKind.HEARTBEAT,
            port=8000,
            path="",
            interval_seconds=30,
            timeout_seconds=5,
            failure_threshold=3,
            source="health_check",
        ),
        resource("plugin-a"),
    )
    await monitor.start()
    server = HeartbeatServer(monitor, registry, identity, SETTINGS, utc_now, port=0)
    await server.start()
    try:
        token = tokens.mint_plugin_token(
            identity.keyring,
            manifest("plugin-a"),
            issuer=SETTINGS.token_issuer,
            audience=SETTINGS.token_audience,
            ttl_seconds=600,
            now=utc_now(),
        ).token
        async with httpx.AsyncClient(trust_env=False) as client:
            reply = await client.post(
                f"http://127.0.0.1:{server.bound_port}{HEARTBEAT_PATH}",
                headers={"Authorization": f"Bearer {token}"},
                json={"status": "active", "health": {"uptime": 12, "memory_usage": 2048}},
            )
        assert reply.json() == {"plugin_id": "plugin-a", "health": "healthy"}
        for _ in range(100):
            if kube.patches:
                break
            await asyncio.sleep(0.01)
        (patch,) = kube.patches_for("plugin-a")
        assert patch["health"] == "healthy"
        assert patch["metrics"] == {"memory_usage": 2048, "uptime": 12}
        assert patch["lastHeartbeatTime"].endswith("Z")
        (event,) = kube.events("plugin-a")
        assert event["message"] == "Plugin plugin-a is healthy"
        assert token not in json.dumps(kube.requests) + json.dumps(kube.patches)
    finally:
        await server.stop()
        await monitor.stop()


async def test_a_busy_port_is_an_error_not_a_crash(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    second = HeartbeatServer(
        RecordingSink(),
        PluginRegistry(),
        world.identity,
        SETTINGS,
        utc_now,
        port=world.server.bound_port,
    )
    with caplog.at_level("ERROR"):
        await second.start()
    assert second.bound_port is None
    assert "heartbeat API not served" in caplog.text
    await second.stop()
    assert (await post(world, {}, token=world.mint("plugin-a").token)).status_code == 200


# --------------------------------------------------------------------------------------------
# GET /plugins/revocations and GET /plugins/jwks: public, read-only, no token
# --------------------------------------------------------------------------------------------


def base_url(world: World) -> str:
    return world.url.removesuffix(HEARTBEAT_PATH)


async def test_revocations_are_served_exactly_as_stored(world: World) -> None:
    async with httpx.AsyncClient(trust_env=False) as client:
        empty = await client.get(base_url(world) + REVOCATIONS_PATH)
        assert empty.status_code == 200
        assert empty.headers["Content-Type"].startswith("application/json")
        assert empty.headers["Cache-Control"] == "no-store"
        assert empty.json() == {"revoked": {}, "version": 1}
        minted = world.mint("plugin-a")
        world.identity.revocations = tokens.revoke(
            world.identity.revocations, minted.jti, minted.expires_at
        )
        reply = await client.get(base_url(world) + REVOCATIONS_PATH)
    stored = tokens.revocations_to_configmap_data(world.identity.revocations)
    assert reply.text == stored[tokens.REVOCATIONS_CONFIGMAP_KEY]
    assert minted.token not in reply.text
    assert tokens.revocations_from_configmap_data(stored).jtis == {minted.jti}


async def test_jwks_is_served_without_a_token(world: World) -> None:
    now = utc_now()
    old = tokens.generate_signing_key(now - timedelta(days=2))
    ring = tokens.rotate(
        tokens.KeyRing(active=old), tokens.generate_signing_key(now), now, ttl_seconds=600
    )
    world.identity.keyring = ring
    async with httpx.AsyncClient(trust_env=False) as client:
        reply = await client.get(base_url(world) + JWKS_PATH)
        assert reply.status_code == 200
        assert reply.headers["Content-Type"].startswith("application/json")
        assert reply.json() == tokens.jwks(ring, utc_now())
        assert old.kid in {k["kid"] for k in reply.json()["keys"]}
        assert all("d" not in k for k in reply.json()["keys"])  # public halves only
        # Once the retired key's verification window is over it is no longer published.
        world.server._clock = lambda: now + timedelta(days=1)
        later = (await client.get(base_url(world) + JWKS_PATH)).json()
    assert later == tokens.jwks(ring, now + timedelta(days=1))
    assert old.kid not in {k["kid"] for k in later["keys"]}


async def test_jwks_is_503_until_the_keyring_is_loaded() -> None:
    class Unloaded:
        @property
        def keyring(self) -> tokens.KeyRing:
            raise RuntimeError("identity not loaded")

        @property
        def revocations(self) -> tokens.RevocationList:
            return tokens.RevocationList()

    server = HeartbeatServer(
        RecordingSink(), PluginRegistry(), Unloaded(), SETTINGS, utc_now, port=0
    )
    await server.start()
    try:
        async with httpx.AsyncClient(trust_env=False) as client:
            base = f"http://127.0.0.1:{server.bound_port}"
            reply = await client.get(base + JWKS_PATH)
            assert reply.status_code == 503
            assert reply.headers["Retry-After"] == "5"
            assert (await client.get(base + REVOCATIONS_PATH)).status_code == 200
    finally:
        await server.stop()


async def test_public_documents_are_read_only(world: World) -> None:
    async with httpx.AsyncClient(trust_env=False) as client:
        for path in (REVOCATIONS_PATH, JWKS_PATH):
            for method in ("POST", "PUT", "DELETE"):
                reply = await client.request(method, base_url(world) + path, json={})
                assert reply.status_code == 405, (method, path)
