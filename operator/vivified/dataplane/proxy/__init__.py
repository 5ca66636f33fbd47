"""The proxy lane: plugins reach the outside only through the core, only to allowed domains.

In ``vivified core`` it is one lane of ``vivified.dataplane.lanes.core_lanes``:
:func:`vivified.dataplane.proxy.lane.setup` starts the listener (port 3128,
``contract.CORE_PROXY_PORT``; ``VIVIFIED_PROXY_*`` settings, see settings.py) on app start-up
and closes it on clean-up, with the core's context: ``ctx.directory`` (live plugins),
``ctx.authenticator`` (the token checks every lane makes), ``ctx.auditor`` (one record per
decision and per close) and ``ctx.metrics``. Its one route on the core's app,
``GET /v1/proxy/allowlists`` (:func:`allowlist_report`), is read by the operator for the
``EgressEnforced`` condition (see docs/proxy.md).

Standalone (tests, the bench)::

    proxy = await start(settings, directory, verifier, auditor, resolver=None)
    ...
    await proxy.close()

Decisions are :mod:`vivified.policy.egress` (pure); this package only parses, resolves, dials,
relays, limits, counts and audits.
"""

from __future__ import annotations

import asyncio

from vivified.audit.hook import Auditor
from vivified.dataplane.directory import PluginDirectory

from .metrics import ProxyMetrics
from .report import allowlist_report
from .resolver import ResolveError, Resolver, StaticResolver, SystemResolver
from .server import ProxyServer
from .settings import ProxySettings, ProxySettingsError
from .verifier import Verifier

__all__ = [
    "ProxyMetrics",
    "ProxyServer",
    "ProxySettings",
    "ProxySettingsError",
    "ResolveError",
    "Resolver",
    "StaticResolver",
    "SystemResolver",
    "allowlist_report",
    "serve",
    "start",
]


async def start(
    settings: ProxySettings,
    directory: PluginDirectory,
    verifier: Verifier,
    auditor: Auditor,
    resolver: Resolver | None = None,
    *,
    metrics: ProxyMetrics | None = None,
) -> ProxyServer:
    """Start listening and return the server (``.port``, ``await .close()``)."""
    server = ProxyServer(settings, directory, verifier, auditor, resolver, metrics=metrics)
    await server.start()
    return server


async def serve(
    settings: ProxySettings,
    directory: PluginDirectory,
    verifier: Verifier,
    auditor: Auditor,
    resolver: Resolver | None = None,
    *,
    metrics: ProxyMetrics | None = None,
) -> None:
    """Run the proxy until cancelled, then close it (open tunnels included)."""
    server = await start(settings, directory, verifier, auditor, resolver, metrics=metrics)
    try:
        await asyncio.Event().wait()
    finally:
        await server.close()
