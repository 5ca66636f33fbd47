"""``GET /healthz`` (alive), ``GET /readyz`` (serving), ``GET /metrics`` (Prometheus).

Ready means the watches have listed once and the JWKS and revocation list are loaded: before
that every token would be refused, so the Service should not route here yet.
"""

from __future__ import annotations

from aiohttp import web

from vivified.dataplane.audit.metrics import AuditMetrics
from vivified.dataplane.context import CONTEXT, CoreContext
from vivified.dataplane.problem import problem

__all__ = ["setup"]


async def healthz(request: web.Request) -> web.Response:
    del request
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    if request.app[CONTEXT].ready:
        return web.json_response({"status": "ready"})
    return problem(503, "core_not_ready", "watches or key set not loaded yet")


async def metrics(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    text = ctx.metrics.render()
    # The audit trail's counters (outages, held, refused records; docs/audit.md).
    audit = getattr(ctx.auditor, "metrics", None)
    if isinstance(audit, AuditMetrics):
        text += audit.prometheus()
    return web.Response(
        text=text,
        content_type="text/plain",
        headers={"Cache-Control": "no-store"},
    )


def setup(app: web.Application, ctx: CoreContext) -> None:
    del ctx
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
