"""The core's app through aiohttp's test client: probes, plugin services, hostile requests."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from tests.unit.core_fakes import NOW, World, manifest

from vivified import tokens
from vivified.dataplane import logsafe
from vivified.dataplane.app import build_app
from vivified.dataplane.context import CoreContext
from vivified.dataplane.directory import StaticDirectory
from vivified.dataplane.settings import CoreSettings
from vivified.dataplane.trust import CoreKey, TrustState

A = manifest("a", dependencies=["b"])


@pytest.fixture
def world() -> World:
    w = World()
    w.add(A)
    return w


@pytest.fixture
async def client(world: World) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(build_app(world.ctx))) as c:
        yield c


async def test_probes_and_metrics(client: TestClient[web.Request, web.Application]) -> None:
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    text = await (await client.get("/metrics")).text()
    assert "vivified_core_requests_total" in text


async def test_not_ready_until_trust_documents_load() -> None:
    ctx = CoreContext(
        settings=CoreSettings(),
        directory=StaticDirectory(),
        trust=TrustState(CoreKey(tokens.generate_signing_key(NOW))),
    )
    async with TestClient(TestServer(build_app(ctx))) as c:
        ready = await c.get("/readyz")
        assert ready.status == 503
        assert (await ready.json())["reason"] == "core_not_ready"
        beat = await c.post("/v1/heartbeat", json={}, headers={"Authorization": "Bearer a.b.c"})
        assert beat.status == 503
        assert (await c.get("/v1/jwks")).status == 503


async def test_heartbeat_is_accepted_for_oneself(
    world: World, client: TestClient[web.Request, web.Application]
) -> None:
    response = await client.post(
        "/v1/heartbeat", json={"status": "degraded", "plugin_id": "a"}, headers=world.bearer(A)
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["plugin_id"] == "a"
    assert world.heartbeats.beats[0][0] == "a"
    other = await client.post("/v1/heartbeat", json={"plugin_id": "b"}, headers=world.bearer(A))
    assert other.status == 403
    assert (await other.json())["reason"] == "plugin_id_mismatch"
    assert len(world.heartbeats.beats) == 1


@pytest.mark.parametrize(
    ("body", "content_type", "status", "reason"),
    [
        (b"not json", "application/json", 400, "invalid_heartbeat"),
        (b'{"status": "bogus"}', "application/json", 400, "invalid_heartbeat"),
        (b"{}", "text/plain", 415, "unsupported_media_type"),
        (b"{" + b" " * 20000 + b"}", "application/json", 413, "body_too_large"),
    ],
)
async def test_heartbeat_bad_bodies(  # noqa: PLR0917 - parametrised
    world: World,
    client: TestClient[web.Request, web.Application],
    body: bytes,
    content_type: str,
    status: int,
    reason: str,
) -> None:
    headers = {**world.bearer(A), "Content-Type": content_type}
    response = await client.post("/v1/heartbeat", data=body, headers=headers)
    assert response.status == status
    assert response.content_type == "application/problem+json"
    assert (await response.json())["reason"] == reason


async def test_jwks_publishes_operator_and_core_keys(
    world: World, client: TestClient[web.Request, web.Application]
) -> None:
    keys = (await (await client.get("/v1/jwks")).json())["keys"]
    kids = {k["kid"] for k in keys}
    assert kids == {world.keyring.active.kid, world.core_key.kid}
    assert all("d" not in k for k in keys)


async def test_revocations_are_served(
    world: World, client: TestClient[web.Request, web.Application]
) -> None:
    minted = world.token(A)
    world.revoke(minted)
    document = await (await client.get("/v1/revocations")).json()
    assert minted.jti in json.dumps(document)


async def test_plugin_list_needs_a_token_and_never_shows_one(
    world: World, client: TestClient[web.Request, web.Application]
) -> None:
    assert (await client.get("/v1/plugins")).status == 401
    response = await client.get("/v1/plugins", headers=world.bearer(A))
    listing = await response.json()
    assert [p["id"] for p in listing["plugins"]] == ["a"]
    assert "token" not in json.dumps(listing).lower().replace("authentication_required", "")


def _forge(header: dict[str, object], claims: dict[str, object], key: bytes | str) -> str:
    def part(obj: object) -> str:
        raw = json.dumps(obj).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    unsigned = f"{part(header)}.{part(claims)}"
    if header.get("alg") == "none":
        return unsigned + ".xx"
    return jwt.encode(claims, key, algorithm=str(header["alg"]), headers=header)


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "garbage",
        "no-bearer",
        "alg-none",
        "hs256-with-public-key",
        "expired",
        "wrong-signer",
        "revoked",
        "disabled",
        "unknown-plugin",
        "wrong-audience",
    ],
)
async def test_hostile_tokens_are_401(
    world: World, client: TestClient[web.Request, web.Application], case: str
) -> None:
    minted = world.token(A)
    claims = dict(jwt.decode(minted.token, options={"verify_signature": False}))
    public_pem = json.dumps(world.keyring.active.public_jwk())
    headers: dict[str, str]
    if case == "missing":
        headers = {}
    elif case == "garbage":
        headers = {"Authorization": "Bearer not-a-token"}
    elif case == "no-bearer":
        headers = {"Authorization": f"Basic {minted.token}"}
    elif case == "alg-none":
        headers = {
            "Authorization": "Bearer " + _forge({"alg": "none", "kid": minted.kid}, claims, "")
        }
    elif case == "hs256-with-public-key":
        token = _forge({"alg": "HS256", "kid": minted.kid}, claims, public_pem.encode() * 2)
        headers = {"Authorization": f"Bearer {token}"}
    elif case == "expired":
        world.now = NOW.replace(year=2027)
        headers = {"Authorization": f"Bearer {minted.token}"}
    elif case == "wrong-signer":
        other = tokens.KeyRing(active=tokens.generate_signing_key(NOW))
        forged = tokens.mint_plugin_token(
            other,
            A,
            issuer="vivified-operator",
            audience="vivified-platform",
            ttl_seconds=60,
            now=NOW,
        )
        headers = {"Authorization": f"Bearer {forged.token}"}
    elif case == "revoked":
        world.revoke(minted)
        headers = {"Authorization": f"Bearer {minted.token}"}
    elif case == "disabled":
        world.add(A, phase="Disabled", enabled=False)
        headers = {"Authorization": f"Bearer {minted.token}"}
    elif case == "unknown-plugin":
        headers = world.bearer(manifest("zzz"))
    else:
        wrong = tokens.mint_plugin_token(
            world.keyring,
            A,
            issuer="vivified-operator",
            audience="elsewhere",
            ttl_seconds=60,
            now=NOW,
        )
        headers = {"Authorization": f"Bearer {wrong.token}"}
    response = await client.post("/v1/heartbeat", json={}, headers=headers)
    assert response.status == 401, await response.text()
    body = await response.json()
    assert body["reason"] in {
        "missing_credentials",
        "malformed_credentials",
        "invalid_token",
        "token_revoked",
        "plugin_inactive",
        "unknown_plugin",
    }
    assert minted.token not in await response.text()
    assert not world.heartbeats.beats


async def test_cached_token_is_refused_once_revoked(
    world: World, client: TestClient[web.Request, web.Application]
) -> None:
    minted = world.token(A)
    headers = {"Authorization": f"Bearer {minted.token}"}
    assert (await client.post("/v1/heartbeat", json={}, headers=headers)).status == 200
    world.revoke(minted)
    refused = await client.post("/v1/heartbeat", json={}, headers=headers)
    assert refused.status == 401
    assert (await refused.json())["reason"] == "token_revoked"


async def _raw(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    return data


async def test_two_authorization_lines_are_400(
    world: World, client: TestClient[web.Request, web.Application]
) -> None:
    good = world.token(A).token
    assert client.port is not None
    answer = await _raw(
        client.port,
        b"POST /v1/heartbeat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + good.encode() + b"\r\n"
        b"Authorization: Bearer garbage\r\nContent-Length: 2\r\n\r\n{}",
    )
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"repeated_header" in answer
    assert not world.heartbeats.beats


@pytest.mark.parametrize(
    "value",
    [b"Bearer \xff\xfe.abc.def", b"Bearer eyJ\xc3(.x.y", b"\xff", b"Bearer " + b"a" * 9000],
)
async def test_non_utf8_or_huge_authorization_is_never_a_500(
    client: TestClient[web.Request, web.Application], value: bytes
) -> None:
    assert client.port is not None
    answer = await _raw(
        client.port,
        b"GET /v1/plugins HTTP/1.1\r\nHost: x\r\nAuthorization: " + value + b"\r\n\r\n",
    )
    status = int(answer.split(b" ", 2)[1])
    assert status in (400, 401), answer[:200]


async def test_control_byte_in_authorization_never_reaches_a_log_line(
    world: World, client: TestClient[web.Request, web.Application], caplog: pytest.LogCaptureFixture
) -> None:
    logsafe.install()
    caplog.set_level(logging.DEBUG)
    token = world.token(A).token
    assert client.port is not None
    answer = await _raw(
        client.port,
        b"GET /v1/plugins HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + token.encode()
        + b"\x01\r\n\r\n",
    )
    assert answer.split(b" ", 2)[1] == b"400"
    await asyncio.sleep(0.05)
    for rec in caplog.records:
        text = rec.getMessage() + (rec.exc_text or "")
        assert token not in text
        assert token[:40] not in text
        assert rec.exc_info is None or rec.name != "aiohttp.server"


def test_redact_hides_credentials() -> None:
    token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
    assert token not in logsafe.redact(f"Authorization: Bearer {token}")
    assert token not in logsafe.redact(f"value {token} end")
    assert "plain words" in logsafe.redact("plain words")
