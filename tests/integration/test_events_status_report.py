"""The operator's read of the event lane's counts (``GET /v1/events/status``) on a real
nats-server: every subscriber in one document, pending and dead-lettered as JetStream has them,
for the operator's token only."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from test_events_lane import ACCOUNTING, PUBLISHER, EnvFactory, make_env

from events_support import manifest, set_phase, user_created
from vivified import tokens
from vivified_sdk import contract

__all__ = ["make_env"]  # the fixture, imported for pytest


async def test_one_document_holds_every_subscribers_counts_for_the_operator_only(
    make_env: EnvFactory,
) -> None:
    env = await make_env(
        accounting=(ACCOUNTING[1], "ok"),
        broken=(manifest("broken", subscribes=["UserCreated"]), "fail"),
    )
    set_phase(env.directory, "accounting", "Disabled")  # paused: its events stay pending
    deadline = time.monotonic() + 30
    while len(env.lane.workers) < 2:  # both consumers exist before anything is published
        assert time.monotonic() < deadline, "the lane never created the consumers"
        await asyncio.sleep(0.05)
    for n in range(3):
        assert (await env.publish(user_created(n))).status == 201
    operator = tokens.mint_operator_token(
        env.world.keyring, issuer=env.world.ctx.settings.token_issuer, now=datetime.now(UTC)
    )
    bearer = {"Authorization": f"Bearer {operator.token}"}
    expected = {
        "accounting": {"namespace": "t", "pending": 3, "deadLettered": 0},
        "broken": {"namespace": "t", "pending": 0, "deadLettered": 3},
    }
    document: Any = None
    while document != {"plugins": expected}:  # broken gives up after 3 attempts per event
        assert time.monotonic() < deadline + 30, f"counts never settled: {document}"
        reply = await env.client.get(contract.CORE_EVENTS_STATUS_PATH, headers=bearer)
        assert reply.status == 200
        document = await reply.json()
        await asyncio.sleep(0.1)
    # The same numbers as each plugin's own view; the publisher (nothing to count) is absent.
    assert (await env.lane.subscriber_status("broken"))["deadLettered"] == 3
    assert PUBLISHER not in document["plugins"]
    # A plugin's token does not open it; the operator's token opens nothing else.
    refused = await env.client.get(contract.CORE_EVENTS_STATUS_PATH, headers=env.bearer("broken"))
    assert (refused.status, (await refused.json())["reason"]) == (403, "operator_only")
    for method, path in (
        ("GET", contract.CORE_EVENTS_STATUS_PATH + "/broken"),
        ("POST", contract.CORE_EVENTS_PATH),
    ):
        reply = await env.client.request(method, path, headers=bearer, json={})
        assert (reply.status, (await reply.json())["reason"]) == (403, "operator_token_refused")
