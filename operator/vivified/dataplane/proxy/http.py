"""The proxy lane's one HTTP route on the core's app: its published allowlist state.

``GET /v1/proxy/allowlists`` → :func:`allowlist_report` (plugin ids, generations, domains,
mode; never a token). The operator reads it for ``EgressEnforced``. The core's app factory
mounts it with ``app.add_routes(routes(directory, settings.mode))``.
"""

from __future__ import annotations

from aiohttp import web

from vivified.dataplane.directory import PluginDirectory
from vivified.policy.egress import Mode
from vivified_sdk import contract

from .report import allowlist_report

__all__ = ["ALLOWLISTS_PATH", "routes"]

ALLOWLISTS_PATH = contract.CORE_PROXY_ALLOWLISTS_PATH


def routes(directory: PluginDirectory, mode: Mode = "enforce") -> list[web.RouteDef]:
    async def allowlists(request: web.Request) -> web.Response:
        del request
        return web.json_response(allowlist_report(directory, mode))

    return [web.get(ALLOWLISTS_PATH, allowlists)]
