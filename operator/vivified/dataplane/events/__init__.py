"""The event lane: canonical CloudEvents through the core, stored in NATS JetStream.

Plugins never talk to NATS (JetStream reads ignore subscribe permissions); only the core does.

The core's app factory calls::

    lane = vivified.dataplane.events.setup(app, EventLaneDeps(
        directory=..., authenticator=TokenVerifier, minter=<call-token minter>, auditor=...))

which registers ``POST /v1/events`` and ``GET /v1/events/status/{plugin}``, connects to NATS
and starts the delivery supervisor on app start-up, and stops it on cleanup. The core's
``/metrics`` appends ``lane.metrics.lines()``; ``serve_metrics=True`` (standalone use)
registers ``GET /metrics`` here instead. Settings: :class:`EventLaneSettings`
(``VIVIFIED_NATS_URL``, ``VIVIFIED_EVENTS_*``). Behaviour and decisions: docs/events.md.
"""

from __future__ import annotations

from aiohttp import web

from vivified.dataplane.events.lane import EventLane, EventLaneDeps, service_url
from vivified.dataplane.events.problem import problem
from vivified.dataplane.events.publish import bearer, handle_publish
from vivified.dataplane.events.settings import EventLaneSettings
from vivified.dataplane.events.tokens import TokenInvalid

__all__ = ["EventLane", "EventLaneDeps", "EventLaneSettings", "service_url", "setup"]

LANE_KEY: web.AppKey[EventLane] = web.AppKey("vivified.events", EventLane)


def setup(app: web.Application, deps: EventLaneDeps, *, serve_metrics: bool = False) -> EventLane:
    lane = EventLane(deps)
    app[LANE_KEY] = lane

    async def publish(request: web.Request) -> web.Response:
        return await handle_publish(lane, request)

    async def status(request: web.Request) -> web.Response:
        token = bearer(request)
        if token is None:
            return problem(401, "unauthenticated", "send 'Authorization: Bearer <plugin token>'")
        try:
            caller = deps.authenticator.verify(token).plugin_id
        except TokenInvalid as exc:
            return problem(401, "token_invalid", f"the plugin token was refused: {exc}")
        plugin = request.match_info["plugin"]
        if caller != plugin:
            return problem(403, "not_your_status", "a plugin may read only its own event status")
        return web.json_response(await lane.subscriber_status(plugin))

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text="\n".join(lane.metrics.lines()) + "\n")

    async def on_startup(_: web.Application) -> None:
        await lane.start()

    async def on_cleanup(_: web.Application) -> None:
        await lane.stop()

    app.router.add_post("/v1/events", publish)
    app.router.add_get("/v1/events/status/{plugin}", status)
    if serve_metrics:
        app.router.add_get("/metrics", metrics)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return lane
