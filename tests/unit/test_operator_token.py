"""The operator's own token: minted with the plugin key ring, verified apart from plugin tokens,
and the core's routes that take it (and only it).

The core trusts it through the JWKS it already reads; what keeps the two principals apart is
``type``, ``sub``, ``aud`` and the lifetime cap (``vivified.tokens.operator_token``).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from tests.unit.core_fakes import ISSUER, NOW, World, manifest

from vivified import tokens
from vivified.dataplane import events
from vivified.dataplane.app import build_app
from vivified.dataplane.context import CoreContext
from vivified.dataplane.proxy.auth import Authenticator as ProxyAuthenticator
from vivified.dataplane.proxy.auth import AuthFailure as ProxyAuthFailure
from vivified.dataplane.proxy.http import routes as proxy_routes
from vivified.manifest import PLUGIN_ID_PATTERN
from vivified_sdk import TokenInvalid, verify_plugin_token
from vivified_sdk import contract as c

KEYRING = tokens.KeyRing(active=tokens.generate_signing_key(NOW))
OTHER_KEY = tokens.generate_signing_key(NOW)
JWKS = tokens.jwks(KEYRING)


def claims(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "sub": c.OPERATOR_SUBJECT,
        "aud": c.OPERATOR_AUDIENCE,
        "iat": int(NOW.timestamp()),
        "nbf": int(NOW.timestamp()),
        "exp": int(NOW.timestamp()) + 300,
        "jti": "j1",
        "type": c.OPERATOR_TOKEN_TYPE,
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def signed(payload: dict[str, Any], key: tokens.SigningKey = KEYRING.active, **header: Any) -> str:
    return jwt.encode(
        payload, key.private_key(), algorithm="ES256", headers={"kid": key.kid, **header}
    )


def verify(token: object, *, revoked: tuple[str, ...] = (), now_offset: int = 0) -> Any:
    return tokens.verify_operator_token(
        token,
        JWKS,
        issuer=ISSUER,
        revoked_jtis=revoked,
        now=NOW + timedelta(seconds=now_offset),
    )


def test_a_minted_token_verifies_and_says_nothing_of_a_plugin() -> None:
    minted = tokens.mint_operator_token(KEYRING, issuer=ISSUER, now=NOW)
    identity = verify(minted.token)
    assert (identity.jti, identity.kid) == (minted.jti, KEYRING.active.kid)
    assert identity.expires_at - identity.issued_at == timedelta(seconds=300)
    payload = jwt.decode(minted.token, options={"verify_signature": False})
    assert c.CLAIM_PLUGIN_ID not in payload
    assert c.CLAIM_TRAITS not in payload
    assert minted.token not in repr(minted)


@pytest.mark.parametrize(
    ("token", "reason", "why"),
    [
        (
            tokens.mint_plugin_token(
                KEYRING,
                manifest("billing"),
                issuer=ISSUER,
                audience=c.DEFAULT_AUDIENCE,
                ttl_seconds=3600,
                now=NOW,
            ).token,
            "not an operator token",
            "a genuine plugin token, same key: the type tells them apart",
        ),
        (
            signed(claims(sub="plugin:billing")),
            "not the operator's subject",
            "a plugin's subject with the operator's type",
        ),
        (
            signed(claims(plugin_id="billing")),
            "not the operator's subject",
            "a plugin_id claim has no place in it",
        ),
        (signed(claims(aud=c.DEFAULT_AUDIENCE)), "wrong audience", "the plugins' audience"),
        (signed(claims(aud=[c.OPERATOR_AUDIENCE, "x"])), "wrong audience", "exactly one audience"),
        (signed(claims(iss="someone-else")), "wrong issuer", "another issuer"),
        (
            signed(claims(exp=int(NOW.timestamp()) + c.OPERATOR_TOKEN_MAX_TTL_SECONDS + 1)),
            f"lifetime over {c.OPERATOR_TOKEN_MAX_TTL_SECONDS} s",
            "a long-lived token is refused whatever signed it",
        ),
        (signed(claims(exp=int(NOW.timestamp()) - 60)), "token expired", "past exp + leeway"),
        (
            signed(claims(nbf=int(NOW.timestamp()) + 120)),
            "token not yet valid",
            "nbf beyond the leeway",
        ),
        (signed(claims(iat="yesterday")), "claim iat must be an integer timestamp", "iat shape"),
        (signed(claims(jti="")), "claim jti must be a non-empty string", "empty jti"),
        (signed(claims(), OTHER_KEY), "unknown key id", "a key the JWKS does not publish"),
        (
            signed(claims(), KEYRING.active, kid=OTHER_KEY.kid),
            "unknown key id",
            "a kid the JWKS does not hold",
        ),
        (
            jwt.encode(claims(), "s" * 32, algorithm="HS256", headers={"kid": KEYRING.active.kid}),
            "algorithm not allowed (only ES256)",
            "HMAC with the public key as secret (algorithm confusion)",
        ),
        (signed(claims())[:-4] + "AAAA", "bad signature", "a tampered signature"),
        ("a.b.c", "unverifiable token", "well shaped garbage"),
        ("not a token", "malformed token", "no JWS shape"),
        ("x" * 9000, "malformed token", "too long"),
        (None, "malformed token", "not a string"),
    ],
)
def test_refusals_say_why(token: object, reason: str, why: str) -> None:
    with pytest.raises(TokenInvalid) as refused:
        verify(token)
    assert refused.value.reason == reason, why


def test_revoked_and_too_early_are_refused_too() -> None:
    minted = tokens.mint_operator_token(KEYRING, issuer=ISSUER, now=NOW)
    with pytest.raises(TokenInvalid, match="token revoked"):
        verify(minted.token, revoked=(minted.jti,))
    with pytest.raises(TokenInvalid, match="token issued in the future"):
        verify(signed(claims(nbf=int(NOW.timestamp()) - 7200)), now_offset=-3600)


def test_the_plugin_verifier_refuses_an_operator_token() -> None:
    minted = tokens.mint_operator_token(KEYRING, issuer=ISSUER, now=NOW)
    with pytest.raises(TokenInvalid):
        verify_plugin_token(
            minted.token,
            JWKS,
            audience=c.DEFAULT_AUDIENCE,
            issuer=ISSUER,
            revoked_jtis=(),
            now=NOW,
        )


@pytest.mark.parametrize("ttl", [0, -1, c.OPERATOR_TOKEN_MAX_TTL_SECONDS + 1])
def test_the_operator_cannot_mint_a_long_or_empty_lifetime(ttl: int) -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        tokens.mint_operator_token(KEYRING, issuer=ISSUER, ttl_seconds=ttl, now=NOW)


def test_subject_and_audience_can_never_be_a_plugins() -> None:
    for value in (c.OPERATOR_SUBJECT, c.OPERATOR_AUDIENCE):
        assert re.fullmatch(PLUGIN_ID_PATTERN, value) is None, value
        assert re.fullmatch(PLUGIN_ID_PATTERN, value.removeprefix(c.SUBJECT_PREFIX)) is None
    assert not c.OPERATOR_SUBJECT.startswith(c.SUBJECT_PREFIX)


# -- the core's routes ---------------------------------------------------------------------------

A = manifest("a", dependencies=["b"], endpoints={"health": "/health", "ping": "/ping"})


def _proxy_routes(app: web.Application, ctx: CoreContext) -> None:
    app.add_routes(proxy_routes(ctx.directory, "enforce", ctx.authenticator, ctx.metrics))


@pytest.fixture
def world() -> World:
    w = World()
    w.add(A)
    w.add(manifest("b", endpoints={"health": "/health", "ping": "/ping"}))
    return w


@pytest.fixture
async def client(world: World) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = build_app(world.ctx, lanes=[_proxy_routes, events.off])
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def _credential(world: World, who: str) -> dict[str, str]:
    now = int(world.now.timestamp())
    expired = claims(iat=now - 600, nbf=now - 600, exp=now - 60)
    return {
        "operator": world.operator_bearer(),
        "plugin": world.bearer(A),
        "none": {},
        "expired operator": {"Authorization": "Bearer " + signed(expired, world.keyring.active)},
        "forged operator": {"Authorization": "Bearer " + signed(claims(), OTHER_KEY)},
        "call token": {
            "Authorization": "Bearer "
            + tokens.mint_call_token(
                world.core_key.private_key,
                world.core_key.kid,
                caller="a",
                caller_traits=(),
                target=c.OPERATOR_AUDIENCE,
                operation="x",
                issuer=ISSUER,
                ttl_seconds=60,
                now=world.now,
            )
        },
    }[who]


@pytest.mark.parametrize(
    ("method", "path", "who", "status", "reason", "why"),
    [
        ("GET", c.CORE_PROXY_ALLOWLISTS_PATH, "operator", 200, None, "the operator reads it"),
        (
            "GET",
            c.CORE_EVENTS_STATUS_PATH,
            "operator",
            503,
            "event_lane_off",
            "past the token check: the lane itself says it is off",
        ),
        (
            "GET",
            c.CORE_PROXY_ALLOWLISTS_PATH,
            "plugin",
            403,
            "operator_only",
            "a plugin must not read every plugin's domains",
        ),
        ("GET", c.CORE_EVENTS_STATUS_PATH, "plugin", 403, "operator_only", "nor their counts"),
        ("GET", c.CORE_PROXY_ALLOWLISTS_PATH, "none", 401, "missing_credentials", "anonymous"),
        ("GET", c.CORE_EVENTS_STATUS_PATH, "none", 401, "missing_credentials", "anonymous"),
        (
            "GET",
            c.CORE_EVENTS_STATUS_PATH,
            "expired operator",
            401,
            "invalid_token",
            "a genuine operator token past its exp",
        ),
        (
            "GET",
            c.CORE_PROXY_ALLOWLISTS_PATH,
            "forged operator",
            401,
            "invalid_token",
            "signed by a key the core does not trust",
        ),
        (
            "GET",
            c.CORE_PROXY_ALLOWLISTS_PATH,
            "call token",
            401,
            "invalid_token",
            "the core's own call key is not an operator key",
        ),
        (
            "GET",
            c.CORE_PLUGINS_PATH,
            "operator",
            403,
            "operator_token_refused",
            "the plugin list is for plugins",
        ),
        (
            "POST",
            c.CORE_HEARTBEAT_PATH,
            "operator",
            403,
            "operator_token_refused",
            "the operator sends no heartbeats",
        ),
        (
            "GET",
            c.CORE_INVOKE_PATH + "/b/ping",
            "operator",
            403,
            "operator_token_refused",
            "the operator lane is not the operator's",
        ),
    ],
)
async def test_each_route_takes_only_its_principal(  # noqa: PLR0917 - a table row
    world: World,
    client: TestClient[web.Request, web.Application],
    method: str,
    path: str,
    who: str,
    status: int,
    reason: str | None,
    why: str,
) -> None:
    response = await client.request(method, path, headers=_credential(world, who), json={})
    assert response.status == status, why
    if reason is not None:
        body = await response.json()
        assert response.content_type == "application/problem+json"
        assert (body["reason"], body["status"]) == (reason, status), why
        assert "Bearer" not in body["detail"]


def test_the_proxy_refuses_an_operator_token_with_its_reason(world: World) -> None:
    proxy = ProxyAuthenticator(world.ctx.authenticator)
    refused = proxy.identify(world.operator_bearer()["Authorization"])
    assert isinstance(refused, ProxyAuthFailure)
    assert (refused.status, refused.reason) == (403, "operator_token_refused")


async def test_refusals_on_the_operator_routes_are_counted(
    world: World, client: TestClient[web.Request, web.Application]
) -> None:
    await client.get(c.CORE_PROXY_ALLOWLISTS_PATH, headers=world.bearer(A))
    await client.get(c.CORE_PROXY_ALLOWLISTS_PATH, headers=world.operator_bearer())
    text = await (await client.get("/metrics")).text()
    lane = 'lane="operator-api"'
    assert (
        f'vivified_core_requests_total{{{lane},outcome="refused",reason="operator_only"}} 1' in text
    )
    assert f'vivified_core_requests_total{{{lane},outcome="allowed",reason=""}} 1' in text
