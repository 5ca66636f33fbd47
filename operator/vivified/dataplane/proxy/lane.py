"""The proxy lane inside ``vivified core``: its listener and its one HTTP route, sharing ctx.

:func:`setup` is a :data:`vivified.dataplane.app.Setup` (bound to the lane's settings by
``vivified.dataplane.lanes.proxy_setup``). On app start-up it opens the proxy's own listener
(port ``contract.CORE_PROXY_PORT`` unless ``VIVIFIED_PROXY_PORT`` says otherwise) with the
core's context: plugins from ``ctx.directory`` (the live, watch-fed view: CR edits and
disables apply within the watch's delay), tokens checked by ``ctx.authenticator`` (the same
checks as every lane), every allow/refuse decision and every close recorded through
``ctx.auditor``, counters in ``ctx.metrics`` (so ``/metrics`` shows them). On clean-up it
closes the listener and every open tunnel. ``GET /v1/proxy/allowlists`` publishes what the
proxy enforces, for the operator's ``EgressEnforced`` condition (the operator's token only).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

from aiohttp import web

from vivified.dataplane.context import CoreContext

from .http import routes
from .metrics import ProxyMetrics
from .resolver import Resolver
from .server import ProxyServer
from .settings import ProxySettings

__all__ = ["PROXY", "setup"]

#: The running proxy of an app (tests read ``app[PROXY].port``).
PROXY: web.AppKey[ProxyServer] = web.AppKey("vivified_proxy", ProxyServer)


def setup(
    app: web.Application,
    ctx: CoreContext,
    settings: ProxySettings | None = None,
    *,
    resolver: Resolver | None = None,
) -> None:
    chosen = settings if settings is not None else ProxySettings()
    if not chosen.host:
        chosen = dataclasses.replace(chosen, host=ctx.settings.host)
    chosen.validate()
    app.add_routes(routes(ctx.directory, chosen.mode, ctx.authenticator, ctx.metrics))

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        server = ProxyServer(
            chosen,
            ctx.directory,
            ctx.authenticator,
            ctx.auditor,
            resolver,
            metrics=ProxyMetrics(ctx.metrics),
        )
        await server.start()
        app[PROXY] = server
        try:
            yield
        finally:
            await server.close()

    app.cleanup_ctx.append(lifetime)
