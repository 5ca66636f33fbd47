"""The event lane: canonical CloudEvents through the core, stored in NATS JetStream.

Plugins never talk to NATS (JetStream reads ignore subscribe permissions); only the core does.
The core mounts it from ``vivified.dataplane.lanes.core_lanes`` (one :data:`Setup`)::

    build_app(ctx, lanes=[events.lane(EventLaneSettings.from_env())])

which registers ``POST /v1/events``, ``GET /v1/events/status`` (every subscriber's counts, for
the operator's token only: :func:`vivified.dataplane.auth.operator_route`) and
``GET /v1/events/status/{plugin}`` (a plugin's own counts, its own token), connects to
JetStream on app start-up (in the background, retrying) and starts the delivery supervisor;
app cleanup stops the workers and drains the connection. Metrics go to ``ctx.metrics`` (the
core's ``/metrics``). Settings: :class:`EventLaneSettings`
(``VIVIFIED_NATS_URL``, ``VIVIFIED_EVENTS_*``). Behaviour and decisions: docs/events.md.
"""

from __future__ import annotations

from aiohttp import web

from vivified.dataplane.app import Setup
from vivified.dataplane.auth import AuthFailure, operator_route
from vivified.dataplane.context import CoreContext
from vivified.dataplane.events.lane import EventLane, ResolveUrl, core_resolver
from vivified.dataplane.events.publish import handle_publish
from vivified.dataplane.events.settings import EventLaneSettings
from vivified.dataplane.problem import problem
from vivified.event_types import EventTypeRegistry
from vivified_sdk import contract

__all__ = [
    "LANE_KEY",
    "REPORT_PATH",
    "STATUS_PATH",
    "EventLane",
    "EventLaneSettings",
    "core_resolver",
    "lane",
    "off",
]

LANE_KEY: web.AppKey[EventLane] = web.AppKey("vivified_events_lane", EventLane)
#: ``GET`` every subscriber's counts (the operator's token).
REPORT_PATH = contract.CORE_EVENTS_STATUS_PATH
#: ``GET`` a plugin's own event-lane counts (its plugin token).
STATUS_PATH = contract.CORE_EVENTS_STATUS_PATH + "/{plugin}"


def lane(
    settings: EventLaneSettings | None = None,
    *,
    registry: EventTypeRegistry | None = None,
    resolve_url: ResolveUrl | None = None,
) -> Setup:
    """The lane's mount function (``settings`` default: from the environment)."""

    def setup(app: web.Application, ctx: CoreContext) -> None:
        running = EventLane(ctx, settings, registry=registry, resolve_url=resolve_url)
        app[LANE_KEY] = running
        ctx.ready_checks.append(running.ready_for_traffic)

        async def publish(request: web.Request) -> web.Response:
            return await handle_publish(running, request)

        async def status(request: web.Request) -> web.Response:
            try:
                caller = ctx.authenticator.authenticate(request.headers)
            except AuthFailure as failure:
                return problem(failure.status, failure.reason, failure.detail)
            if caller.plugin_id != request.match_info["plugin"]:
                return problem(403, "not_your_status", "a plugin may read only its own counts")
            if not running.ready:
                return problem(503, "engine_unavailable", "the event store is not connected")
            return web.json_response(await running.subscriber_status(caller.plugin_id))

        async def report(_: web.Request) -> web.StreamResponse:
            if not running.ready:
                return problem(503, "engine_unavailable", "the event store is not connected")
            return web.json_response(await running.status_report())

        async def on_startup(_: web.Application) -> None:
            await running.start()

        async def on_cleanup(_: web.Application) -> None:
            await running.stop()

        app.router.add_post(contract.CORE_EVENTS_PATH, publish)
        app.router.add_get(REPORT_PATH, operator_route(ctx.authenticator, report, ctx.metrics))
        app.router.add_get(STATUS_PATH, status)
        app.on_startup.append(on_startup)
        app.on_cleanup.append(on_cleanup)

    return setup


def off(app: web.Application, ctx: CoreContext) -> None:
    """No JetStream configured: publishes (and the operator's count reads) are refused, saying
    so (not a bare 404)."""

    async def refuse(_: web.Request) -> web.StreamResponse:
        return problem(503, "event_lane_off", "this installation runs no event lane (no NATS)")

    app.router.add_post(contract.CORE_EVENTS_PATH, refuse)
    app.router.add_get(REPORT_PATH, operator_route(ctx.authenticator, refuse, ctx.metrics))
