"""The Admin UI as an aiohttp sub-application (see the package docstring)."""

from __future__ import annotations

from aiohttp import web

from vivified.audit.hook import Auditor, NullAuditor
from vivified.dataplane.ui import handlers as h
from vivified.dataplane.ui.audit_seam import AuditReader
from vivified.dataplane.ui.config import UIConfig
from vivified.dataplane.ui.kubeapi import KubeAPI
from vivified.dataplane.ui.pages import STATIC
from vivified.dataplane.ui.security import security_headers


def create_ui_app(
    config: UIConfig,
    auditor: Auditor | None = None,
    audit_reader: AuditReader | None = None,
) -> web.Application:
    """The UI's routes, to be mounted with ``app.add_subapp("/ui", create_ui_app(...))``."""
    app = web.Application(middlewares=[security_headers], client_max_size=64 * 1024)
    app[h.STATE] = h.UIState(
        config=config,
        kube=KubeAPI(config.api_server, config.ca_pem),
        auditor=auditor or NullAuditor(),
        audit_reader=audit_reader,
    )

    async def close(app: web.Application) -> None:
        await app[h.STATE].kube.close()

    app.on_cleanup.append(close)
    app.router.add_get("/", h.plugin_list)
    app.router.add_get("/login", h.login_form)
    app.router.add_post("/login", h.login)
    app.router.add_post("/logout", h.logout)
    app.router.add_get("/api/status", h.status_poll)
    app.router.add_get("/plugins/{namespace}/{name}", h.plugin_detail)
    app.router.add_get("/plugins/{namespace}/{name}/confirm", h.confirm)
    app.router.add_post("/plugins/{namespace}/{name}/enabled", h.set_enabled)
    app.router.add_static("/static", STATIC, append_version=False)
    return app
