"""The plugin services moved from the operator: heartbeat, JWKS, revocations, plugin list.

Every core replica serves all four from its own watch-fed view, so it does not matter which
replica a plugin reaches (the operator's HA standby used to answer heartbeats with 404).

=============================  =====  ======================================================
``POST /v1/heartbeat``         token  a plugin reports its own health; written to its Lease
``GET /v1/jwks``               none   operator keys (plugin tokens) + core key (call tokens)
``GET /v1/revocations``        none   revoked jtis, the operator's ``revoked.json`` document
``GET /v1/plugins``            token  the seed's plugin list: manifest, phase, health,
                                      last heartbeat; never a token
=============================  =====  ======================================================

JWKS and revocations are public data (key ids, public keys, token ids), like the operator's
ConfigMaps they come from.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from vivified.dataplane.auth import AuthFailure, Caller
from vivified.dataplane.context import CONTEXT, CoreContext
from vivified.dataplane.problem import problem
from vivified.health import HeartbeatError, load_json, parse_heartbeat
from vivified_sdk import contract

__all__ = [
    "HEARTBEAT_PATH",
    "JWKS_PATH",
    "MAX_HEARTBEAT_BYTES",
    "PLUGINS_PATH",
    "REVOCATIONS_PATH",
    "setup",
]

logger = logging.getLogger(__name__)

HEARTBEAT_PATH = contract.CORE_HEARTBEAT_PATH
JWKS_PATH = contract.CORE_JWKS_PATH
REVOCATIONS_PATH = contract.CORE_REVOCATIONS_PATH
PLUGINS_PATH = contract.CORE_PLUGINS_PATH
MAX_HEARTBEAT_BYTES = 16 * 1024


def _refusal(error: AuthFailure) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if error.status == 401 else {}
    return problem(error.status, error.reason, error.detail, headers=headers)


def authenticated(request: web.Request) -> Caller | web.Response:
    """The verified caller, or the problem response that refuses it."""
    try:
        return request.app[CONTEXT].authenticator.authenticate(request.headers)
    except AuthFailure as error:
        return _refusal(error)


async def _read_limited(request: web.Request, limit: int) -> bytes | None:
    """The body, or None once it passes ``limit`` bytes (the rest is never read)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    raw = b""
    while len(raw) <= limit:
        chunk = await request.content.read(limit + 1 - len(raw))
        if not chunk:
            return raw
        raw += chunk
    return None


async def heartbeat(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    caller = authenticated(request)
    if isinstance(caller, web.Response):
        ctx.metrics.requests.inc("heartbeat", "refused", "unauthenticated")
        return caller
    if request.content_type != "application/json":
        return problem(415, "unsupported_media_type", "Content-Type must be application/json")
    raw = await _read_limited(request, MAX_HEARTBEAT_BYTES)
    if raw is None:
        return problem(413, "body_too_large", f"body larger than {MAX_HEARTBEAT_BYTES} bytes")
    try:
        beat = parse_heartbeat(load_json(raw))
    except HeartbeatError as error:
        return problem(400, "invalid_heartbeat", str(error))
    except ValueError as error:
        return problem(400, "invalid_heartbeat", f"body is not valid JSON: {error}")
    if beat.plugin_id is not None and beat.plugin_id != caller.plugin_id:
        logger.warning("plugin %s sent a heartbeat for another plugin", caller.plugin_id)
        ctx.metrics.requests.inc("heartbeat", "refused", "plugin_id_mismatch")
        return problem(403, "plugin_id_mismatch", "a plugin may only report its own health")
    await ctx.heartbeats.record(caller.record, beat, ctx.clock())
    ctx.metrics.requests.inc("heartbeat", "allowed", "")
    return web.json_response(
        {"plugin_id": caller.plugin_id, "accepted": True, "health": beat.health.value}
    )


async def jwks(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    if not ctx.trust.ready:
        return problem(
            503, "core_not_ready", "key set not loaded yet", headers={"Retry-After": "5"}
        )
    return web.Response(
        body=ctx.trust.published_jwks(),
        content_type="application/json",
        headers={"Cache-Control": "max-age=60"},
    )


async def revocations(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    if not ctx.trust.ready:
        return problem(
            503, "core_not_ready", "revocation list not loaded yet", headers={"Retry-After": "5"}
        )
    return web.Response(
        text=ctx.trust.revocations_document(),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _listing(status: dict[str, Any]) -> dict[str, Any]:
    """The parts of a status worth listing; the token block is never copied."""
    return {
        "phase": status.get("phase"),
        "health": status.get("health", "unknown"),
        "last_heartbeat": status.get("lastHeartbeatTime"),
        "ready": status.get("ready"),
    }


async def plugins(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    caller = authenticated(request)
    if isinstance(caller, web.Response):
        return caller
    items = []
    for record in ctx.directory.all():
        items.append(
            {
                "id": record.plugin_id,
                "namespace": record.namespace,
                "enabled": record.enabled,
                "manifest": record.manifest.model_dump(mode="json", exclude_none=True),
                **_listing(dict(record.status)),
            }
        )
    return web.json_response({"plugins": items}, headers={"Cache-Control": "no-store"})


def setup(app: web.Application, ctx: CoreContext) -> None:
    del ctx
    app.router.add_post(HEARTBEAT_PATH, heartbeat)
    app.router.add_get(JWKS_PATH, jwks)
    app.router.add_get(REVOCATIONS_PATH, revocations)
    app.router.add_get(PLUGINS_PATH, plugins)
