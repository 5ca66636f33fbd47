"""Plugging the trail into the core's aiohttp application (issue 16's app factory calls this).

``setup(app)`` opens the auditor from the environment when the app starts and closes it (with
a final checkpoint) when it stops; lanes read it as ``app[AUDITOR]``. ``metrics_text(app)``
is the audit part of ``/metrics``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping

from aiohttp import web

from vivified.audit.hook import Auditor
from vivified.dataplane.audit.auditor import ChainAuditor
from vivified.dataplane.audit.setup import AuditSettings, open_auditor

AUDITOR: web.AppKey[Auditor] = web.AppKey("vivified_auditor", Auditor)


def setup(app: web.Application, env: Mapping[str, str] | None = None) -> None:
    """Open the configured auditor for the app's lifetime (fails start-up on bad settings)."""
    settings = AuditSettings.from_env(os.environ if env is None else env, role="core")

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        auditor = await open_auditor(settings)
        app[AUDITOR] = auditor
        yield
        if isinstance(auditor, ChainAuditor):
            await auditor.close()

    app.cleanup_ctx.append(lifetime)


def metrics_text(app: web.Application) -> str:
    """The auditor's counters in the Prometheus text format ('' when auditing is off)."""
    auditor = app.get(AUDITOR)
    return auditor.metrics.prometheus() if isinstance(auditor, ChainAuditor) else ""
