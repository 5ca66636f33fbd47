"""The core's aiohttp application: one factory, every lane mounted through ``setup``.

See the package docstring for the convention lanes follow.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from vivified.dataplane import gateway, plugin_api, probes
from vivified.dataplane.context import CONTEXT, CoreContext
from vivified.dataplane.problem import problem

__all__ = ["CORE_SETUPS", "Setup", "build_app"]

logger = logging.getLogger(__name__)

Setup = Callable[[web.Application, CoreContext], None]
"""A lane's mount function: add routes (or ``app.add_subapp``), startup/cleanup hooks."""

#: What every core serves; lanes of other issues are passed to :func:`build_app`.
CORE_SETUPS: tuple[Setup, ...] = (probes.setup, plugin_api.setup, gateway.setup)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _contain_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A bug answers 500 problem+json; the log names the exception type and route only
    (exception text can quote request data, so it is not logged)."""
    try:
        return await handler(request)
    except web.HTTPException as http:
        if http.status >= 400 and not http.content_type.startswith("application/problem"):
            reason = "not_found" if http.status == 404 else "http_error"
            return problem(http.status, reason, http.reason)
        raise
    except Exception as error:
        route = request.match_info.route.resource
        logger.error(
            "internal error on %s %s: %s",
            request.method,
            route.canonical if route is not None else "?",
            type(error).__name__,
        )
        return problem(500, "internal_error", "the core failed; nothing was forwarded")


def build_app(ctx: CoreContext, lanes: Sequence[Setup] = ()) -> web.Application:
    """The application for ``ctx``: probes, plugin services, the operator lane, then
    ``lanes`` in order. ``client_max_size`` bounds bodies aiohttp buffers itself."""
    app = web.Application(
        client_max_size=ctx.settings.max_request_bytes, middlewares=[_contain_errors]
    )
    app[CONTEXT] = ctx
    for setup in (*CORE_SETUPS, *lanes):
        setup(app, ctx)
    return app
