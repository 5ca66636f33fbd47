"""User Management behind the core: only call tokens the core minted for it are accepted."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from vivified import tokens
from vivified_sdk import CallVerifier, JwksFile, RevocationFile, TokenVerifier

REPO = Path(__file__).resolve().parents[2]
PLUGIN_DIR = REPO / "plugins" / "user-management"


def _now() -> datetime:
    """The real clock: the plugin checks tokens against it, so a module-level instant would
    expire while a long suite runs."""
    return datetime.now(UTC)


@pytest.fixture(scope="module", autouse=True)
def _plugin_on_path() -> Iterator[None]:
    sys.path.insert(0, str(PLUGIN_DIR))
    try:
        yield
    finally:
        sys.path.remove(str(PLUGIN_DIR))


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Any]:
    operator = tokens.KeyRing(active=tokens.generate_signing_key(_now()))
    core = tokens.generate_signing_key(_now())
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [*tokens.jwks(operator)["keys"], core.public_jwk()]}))
    revoked = tmp_path / "revoked.json"
    revoked.write_text(json.dumps({"revoked": {}, "version": 1}))
    from user_management.app import Config, create_app  # noqa: PLC0415

    config = Config(
        verifier=TokenVerifier(
            JwksFile(jwks),
            audience="vivified-platform",
            issuer="vivified-operator",
            revocations=RevocationFile(revoked),
        ),
        db_path=str(tmp_path / "users.db"),
        calls=CallVerifier(JwksFile(jwks), plugin_id="user-management"),
    )
    return {"client": TestClient(create_app(config)), "core": core, "operator": operator}


def call_token(core: tokens.SigningKey, **overrides: Any) -> str:
    options: dict[str, Any] = {
        "caller": "onboarding",
        "caller_traits": ("handles_pii",),
        "target": "user-management",
        "operation": "user_info",
        "issuer": "vivified-core",
        "ttl_seconds": 60,
        "now": _now(),
    }
    options.update(overrides)
    return tokens.mint_call_token(core.private_key(), core.kid, **options)


def test_a_call_token_from_the_core_is_accepted_and_names_the_caller(
    world: dict[str, Any],
) -> None:
    client = world["client"]
    auth = {"Authorization": f"Bearer {call_token(world['core'])}"}
    put = client.put("/api/users/alice", json={"plan": "gold"}, headers=auth)
    assert put.status_code == 201, put.text
    got = client.get("/api/users/alice", headers=auth)
    assert got.status_code == 200
    assert got.headers["X-Vivified-Caller-Seen"] == "onboarding"


@pytest.mark.parametrize(
    "case", ["plugin-token", "other-audience", "not-the-core", "expired", "wrong-key", "two"]
)
def test_anything_but_a_fresh_call_token_for_us_is_refused(
    world: dict[str, Any], case: str
) -> None:
    core: tokens.SigningKey = world["core"]
    headers: Any
    if case == "plugin-token":
        manifest: Any = None
        from tests.unit.core_fakes import manifest as make  # noqa: PLC0415

        manifest = make("onboarding", traits=["handles_pii"])
        minted = tokens.mint_plugin_token(
            world["operator"],
            manifest,
            issuer="vivified-operator",
            audience="vivified-platform",
            ttl_seconds=60,
            now=_now(),
        )
        headers = {"Authorization": f"Bearer {minted.token}"}
    elif case == "other-audience":
        headers = {"Authorization": f"Bearer {call_token(core, target='billing')}"}
    elif case == "not-the-core":
        headers = {"Authorization": f"Bearer {call_token(core, issuer='someone')}"}
    elif case == "expired":
        old = _now() - timedelta(minutes=10)
        headers = {"Authorization": f"Bearer {call_token(core, now=old)}"}
    elif case == "wrong-key":
        other = tokens.generate_signing_key(_now())
        headers = {"Authorization": f"Bearer {call_token(other)}"}
    else:
        good = call_token(core)
        headers = [("Authorization", f"Bearer {good}"), ("Authorization", "Bearer x.y.z")]
    reply = world["client"].get("/api/users/alice", headers=headers)
    assert reply.status_code == (400 if case == "two" else 401), reply.text


async def test_sdk_invoke_builds_the_lane_path_and_encodes_each_segment(tmp_path: Path) -> None:
    import httpx  # noqa: PLC0415

    from vivified_sdk import CoreClient, TokenFile  # noqa: PLC0415

    token = tmp_path / "token"
    token.write_text("a.b.c")
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return httpx.Response(200, json={})

    async with CoreClient(
        "http://core.test", token_file=TokenFile(token), transport=httpx.MockTransport(handler)
    ) as core:
        await core.invoke("user-management", "user_info", "a/../b")
        await core.invoke("user-management", "health")
    assert seen == [
        "/v1/invoke/user-management/user_info/a%2F..%2Fb",
        "/v1/invoke/user-management/health",
    ]
