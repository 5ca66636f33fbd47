"""The proxy lane: plugins reach the outside only through the core, only to allowed domains.

The core's main starts it next to the HTTP app (port 3128 by default)::

    from vivified.dataplane.proxy import ProxySettings, start

    proxy = await start(
        ProxySettings.from_env(),  # VIVIFIED_PROXY_*; see settings.py
        directory,                 # vivified.dataplane.directory.PluginDirectory (live view)
        verifier,                  # the SDK's TokenVerifier (anything with .verify(token))
        auditor,                   # vivified.audit.hook.Auditor
        resolver=None,             # None: the system resolver (or the TEST-ONLY static map)
    )
    ...
    await proxy.close()

or ``await serve(...)`` with the same arguments, which runs until cancelled. The lane's
metrics live in ``proxy.metrics`` (their own registry); the core appends
``proxy.metrics.render()`` to its ``/metrics``. ``http.routes(directory, mode)`` is the lane's
one route on the core's app (``GET /v1/proxy/allowlists``, :func:`allowlist_report`), read by
the operator for the ``EgressEnforced`` condition (see docs/proxy.md).

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
