"""The proxy lane's one HTTP route on the core's app: its published allowlist state.

``GET /v1/proxy/allowlists`` → :func:`allowlist_report` (plugin ids, generations, domains,
mode; never a token). The operator reads it for ``EgressEnforced``, with its own token: the
route is :func:`vivified.dataplane.auth.operator_route`, so a plugin (which could otherwise
learn every other plugin's allowed domains) gets 403 ``operator_only`` and nobody without a
token gets anything. The core's app factory mounts it with
``app.add_routes(routes(ctx.directory, settings.mode, ctx.authenticator, ctx.metrics))``.
"""

from __future__ import annotations

from aiohttp import web

from vivified.dataplane.auth import Authenticator, operator_route
from vivified.dataplane.directory import PluginDirectory
from vivified.dataplane.metrics import Registry
from vivified.policy.egress import Mode
from vivified_sdk import contract

from .report import allowlist_report

__all__ = ["ALLOWLISTS_PATH", "routes"]

ALLOWLISTS_PATH = contract.CORE_PROXY_ALLOWLISTS_PATH


def routes(
    directory: PluginDirectory,
    mode: Mode,
    authenticator: Authenticator,
    metrics: Registry | None = None,
) -> list[web.RouteDef]:
    async def allowlists(request: web.Request) -> web.StreamResponse:
        del request
        return web.json_response(allowlist_report(directory, mode))

    return [web.get(ALLOWLISTS_PATH, operator_route(authenticator, allowlists, metrics))]
