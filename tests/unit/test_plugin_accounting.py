"""The accounting example subscriber: receives UserCreated through the SDK receiver, once."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx

from vivified import tokens
from vivified.dataplane.trust import CoreKey
from vivified.policy import validate_manifest
from vivified_sdk import CallVerifier, StaticJwks, contract

PLUGIN = Path(__file__).resolve().parents[2] / "plugins" / "accounting"


def test_manifest_is_valid() -> None:
    report = validate_manifest(json.loads((PLUGIN / "manifest.json").read_text()))
    assert report.valid, report.errors


async def test_user_created_sets_up_payroll_once() -> None:
    sys.path.insert(0, str(PLUGIN))
    try:
        from accounting.app import create_app  # noqa: PLC0415
    finally:
        sys.path.remove(str(PLUGIN))
    now = datetime.now(UTC)
    key = CoreKey(tokens.generate_signing_key(now))
    call_token = tokens.mint_call_token(
        key.private_key,
        key.kid,
        caller="user-management",
        caller_traits=(),
        target="accounting",
        operation=contract.EVENT_DELIVERY_OPERATION,
        issuer=contract.DEFAULT_CORE_ISSUER,
        ttl_seconds=60,
        now=now,
    )
    app = create_app(CallVerifier(StaticJwks({"keys": [key.public_jwk]}), plugin_id="accounting"))
    event = {
        "specversion": "1.0",
        "id": "e1",
        "type": "UserCreated",
        "source": "vivified://plugins/user-management",
        "data": {"user_id": "u1"},
    }
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://a") as client:
        for _ in range(2):  # a redelivery
            reply = await client.post(
                "/events",
                content=json.dumps(event),
                headers={"Authorization": f"Bearer {call_token}"},
            )
            assert reply.status_code == 204
        refused = await client.post("/events", content=json.dumps(event))
        assert refused.status_code == 401
        health = (await client.get("/health")).json()
    assert health["payroll_records"] == 1
