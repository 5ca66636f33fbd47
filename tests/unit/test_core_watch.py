"""The watch-fed directory and trust state, and two core replicas fed by the same cluster."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from tests.unit.core_fakes import NOW, manifest

from vivified import tokens
from vivified.dataplane.app import build_app
from vivified.dataplane.context import CoreContext, NullHeartbeats
from vivified.dataplane.settings import CoreSettings
from vivified.dataplane.trust import CoreKey, TrustState
from vivified.dataplane.watch import ClusterFeed, WatchDirectory

A = manifest("a", dependencies=["b"])
RING = tokens.KeyRing(active=tokens.generate_signing_key(NOW))


def plugin(m: Any, phase: str = "Active", namespace: str = "team-a") -> dict[str, Any]:
    return {
        "metadata": {"name": m.id, "namespace": namespace, "generation": 1},
        "spec": {"manifest": m.model_dump(mode="json", exclude_none=True), "image": "x:1"},
        "status": {"phase": phase, "health": "healthy", "token": {"secretName": "s"}},
    }


def configmaps(revoked: tokens.RevocationList) -> list[dict[str, Any]]:
    return [
        {
            "metadata": {"name": "vivified-jwks"},
            "data": tokens.jwks_to_configmap_data(tokens.jwks(RING)),
        },
        {
            "metadata": {"name": "vivified-revoked-tokens"},
            "data": tokens.revocations_to_configmap_data(revoked),
        },
    ]


class FakeCluster:
    """list() answers from ``objects``; watch() streams what tests push into its queues."""

    def __init__(self) -> None:
        self.objects: dict[str, list[dict[str, Any]]] = {"VivifiedPlugin": [], "ConfigMap": []}
        self.queues: list[tuple[str, asyncio.Queue[dict[str, Any]]]] = []

    async def list(
        self, kind: str, namespace: str | None = None, *, label_selector: str | None = None
    ) -> dict[str, Any]:
        return {
            "items": [dict(o) for o in self.objects[kind]],
            "metadata": {"resourceVersion": "1"},
        }

    async def watch(self, kind: str, **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.queues.append((kind, queue))
        while True:
            yield await queue.get()

    def push(self, kind: str, event: str, obj: dict[str, Any]) -> None:
        for k, queue in self.queues:
            if k == kind:
                queue.put_nowait({"type": event, "object": obj})


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def replica(cluster: FakeCluster) -> tuple[ClusterFeed, CoreContext]:
    directory = WatchDirectory()
    trust = TrustState(CoreKey(tokens.generate_signing_key(NOW)))
    feed = ClusterFeed(cluster, CoreSettings(), directory, trust)
    ctx = CoreContext(
        settings=CoreSettings(),
        directory=directory,
        trust=trust,
        heartbeats=NullHeartbeats(),
        synced=lambda: feed.synced,
        clock=lambda: NOW,
    )
    return feed, ctx


async def test_two_replicas_serve_heartbeat_jwks_and_revocations_alike() -> None:
    cluster = FakeCluster()
    cluster.objects["VivifiedPlugin"] = [plugin(A)]
    cluster.objects["ConfigMap"] = configmaps(tokens.RevocationList())
    minted = tokens.mint_plugin_token(
        RING, A, issuer="vivified-operator", audience="vivified-platform", ttl_seconds=600, now=NOW
    )
    auth = {"Authorization": f"Bearer {minted.token}"}
    feeds = [replica(cluster), replica(cluster)]
    for feed, _ in feeds:
        feed.start()
        await feed.wait_synced(5)
    clients = [TestClient(TestServer(build_app(ctx))) for _, ctx in feeds]
    try:
        for c in clients:
            await c.start_server()
            assert (await c.get("/readyz")).status == 200
            assert (await c.post("/v1/heartbeat", json={}, headers=auth)).status == 200
            kids = {k["kid"] for k in (await (await c.get("/v1/jwks")).json())["keys"]}
            assert RING.active.kid in kids
        # The operator revokes the token: both replicas refuse it once the watch delivers.
        revoked = tokens.revoke(tokens.RevocationList(), minted.jti, minted.expires_at)
        cluster.push("ConfigMap", "MODIFIED", configmaps(revoked)[1])
        await settle()
        for c in clients:
            document = await (await c.get("/v1/revocations")).json()
            assert minted.jti in json.dumps(document)
            refused = await c.post("/v1/heartbeat", json={}, headers=auth)
            assert (await refused.json())["reason"] == "token_revoked"
    finally:
        for c in clients:
            await c.close()
        for feed, _ in feeds:
            await feed.stop()


async def test_disabling_a_plugin_refuses_its_token_at_once() -> None:
    cluster = FakeCluster()
    cluster.objects["VivifiedPlugin"] = [plugin(A)]
    cluster.objects["ConfigMap"] = configmaps(tokens.RevocationList())
    feed, ctx = replica(cluster)
    feed.start()
    await feed.wait_synced(5)
    try:
        assert ctx.directory.get("a") is not None
        cluster.push("VivifiedPlugin", "MODIFIED", plugin(A, phase="Disabled"))
        await settle()
        record = ctx.directory.get("a")
        assert record is not None
        assert not record.active
        cluster.push("VivifiedPlugin", "DELETED", plugin(A))
        await settle()
        assert ctx.directory.get("a") is None
    finally:
        await feed.stop()


def test_directory_skips_invalid_and_duplicate_plugins() -> None:
    directory = WatchDirectory()
    broken = plugin(A)
    broken["spec"]["manifest"]["id"] = "not-the-name"
    directory.reset(None, [broken, plugin(manifest("b")), plugin(manifest("b"), namespace="x")])
    assert [r.plugin_id for r in directory.all()] == []
    directory.reset("x", [])
    assert [r.plugin_id for r in directory.all()] == ["b"]
    record = directory.get("b")
    assert record is not None
    assert "token" in record.status  # raw status kept, but never listed (plugin_api)


def test_not_ready_without_the_trust_documents() -> None:
    cluster = FakeCluster()
    feed, ctx = replica(cluster)
    assert not ctx.ready
    assert not feed.synced


async def test_no_revocation_configmap_yet_means_nothing_revoked() -> None:
    cluster = FakeCluster()
    cluster.objects["ConfigMap"] = configmaps(tokens.RevocationList())[:1]  # JWKS only
    feed, ctx = replica(cluster)
    feed.start()
    await feed.wait_synced(5)
    try:
        assert ctx.ready
        assert len(ctx.trust.revoked) == 0
    finally:
        await feed.stop()
