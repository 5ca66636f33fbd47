"""``/readyz`` waits for the event lane's JetStream connection (issue 13).

A core replica that starts (after a kill, in a rollout) listed its watches and loaded its keys
within a second, but connects to JetStream in the background: until then it answers every
publish 503 ``engine_unavailable``. Ready before that, the Service sends it publishes that a
connected replica would have stored, so clients saw errors no fault explains (invariant 10).
Ready now also waits for the lane's first connection, for at most
``VIVIFIED_EVENTS_READY_GRACE_SECONDS``: a NATS that is down for everyone must not take the
operator and proxy lanes down with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from events_support import World, manifest, record, user_created
from nats_support import NatsServer
from vivified.dataplane import events
from vivified.dataplane.app import build_app
from vivified.dataplane.events import EventLaneSettings

PUBLISHER = "user-management"


async def until(check: Callable[[], Any], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def lane_client(
    nats: NatsServer, grace: float
) -> AsyncIterator[tuple[TestClient[Any, Any], World]]:
    world = World()
    world.directory.put(record(manifest(PUBLISHER, publishes=["UserCreated"])))
    settings = EventLaneSettings(nats_url=nats.url, ready_grace_seconds=grace)
    app = build_app(world.ctx, [events.lane(settings)])
    async with TestClient(TestServer(app)) as client:
        yield client, world


async def publish(client: TestClient[Any, Any], world: World, n: int) -> int:
    response = await client.post(
        "/v1/events",
        data=json.dumps(user_created(n)),
        headers={
            "Authorization": f"Bearer {world.token_for(PUBLISHER)}",
            "Content-Type": "application/cloudevents+json",
        },
    )
    return response.status


async def test_not_ready_until_jetstream_is_connected(nats_server: NatsServer) -> None:
    await asyncio.to_thread(nats_server.stop)
    async with lane_client(nats_server, grace=60.0) as (client, world):
        await asyncio.sleep(1.5)  # the lane's first attempts fail: NATS is not up yet
        assert (await client.get("/readyz")).status == 503
        assert await publish(client, world, 1) == 503  # what a ready replica must not answer
        await asyncio.to_thread(nats_server.start)

        async def ready() -> bool:
            return (await client.get("/readyz")).status == 200

        await until(ready)
        assert await publish(client, world, 2) in (201, 202)


async def test_ready_anyway_after_the_grace_when_nats_stays_down(
    nats_server: NatsServer,
) -> None:
    """NATS down for every replica: after the grace the other lanes serve (publishes 503)."""
    await asyncio.to_thread(nats_server.stop)
    async with lane_client(nats_server, grace=1.0) as (client, world):
        assert (await client.get("/readyz")).status == 503
        await asyncio.sleep(1.2)
        assert (await client.get("/readyz")).status == 200
        assert await publish(client, world, 1) == 503


@pytest.mark.parametrize("grace", ["30", "0"])
def test_the_grace_comes_from_the_environment(grace: str) -> None:
    settings = EventLaneSettings.from_env({"VIVIFIED_EVENTS_READY_GRACE_SECONDS": grace})
    assert settings.ready_grace_seconds == float(grace)
