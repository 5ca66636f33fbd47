"""The parts the ``vivified core`` process mounts beyond its own routes.

:data:`~vivified.dataplane.app.CORE_SETUPS` (probes, the plugin API, the operator lane) are
always served. This module decides the rest from the environment, so that ``server.py`` stays
a thin shell and a lane of another issue adds itself in exactly one place: :func:`core_lanes`.

* the Admin UI at ``/ui`` (``VIVIFIED_UI=off`` turns it off): it talks to the API server as
  the signed-in user, never with the core's ServiceAccount; ``VIVIFIED_UI_SESSION_KEY`` (base64,
  32 bytes, the chart's Secret) seals its cookie so every replica reads every session.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from aiohttp import web

from vivified.dataplane.app import Setup
from vivified.dataplane.context import CoreContext
from vivified.dataplane.ui.audit_seam import AuditReader

__all__ = ["UI_PREFIX", "core_lanes", "ui_setup"]

logger = logging.getLogger(__name__)

UI_PREFIX = "/ui"
_OFF = {"0", "false", "no", "off"}


def _audit_reader(env: Mapping[str, str]) -> AuditReader | None:
    """What the UI's detail page reads recent records from (a file trail only, for now: the
    JetStream reader needs its own connection, see docs/audit.md)."""
    sink = env.get("VIVIFIED_AUDIT_SINK", "").strip()
    if sink.startswith("file:"):
        from vivified.dataplane.audit.reader import FileTrailReader  # noqa: PLC0415

        return FileTrailReader(Path(sink.removeprefix("file://").removeprefix("file:")))
    return None


def ui_setup(env: Mapping[str, str], kubeconfig: str | None = None) -> Setup | None:
    """The Admin UI's mount, or None when it is off or there is no API server to point it at
    (out of cluster without a kubeconfig)."""
    if env.get("VIVIFIED_UI", "on").strip().lower() in _OFF:
        return None
    from vivified.dataplane.ui import Options, create_ui_app  # noqa: PLC0415
    from vivified.dataplane.ui.config import from_kubeconfig, in_cluster  # noqa: PLC0415

    options = Options(default_namespace=env.get("VIVIFIED_UI_NAMESPACE", ""))
    if env.get("KUBERNETES_SERVICE_HOST"):
        config = in_cluster(options)
    elif kubeconfig:
        config = from_kubeconfig(Path(kubeconfig), options)
    else:
        logger.info("Admin UI off: no cluster to point it at (no kubeconfig, not in a pod)")
        return None
    if not env.get("VIVIFIED_UI_SESSION_KEY"):
        logger.warning(
            "VIVIFIED_UI_SESSION_KEY unset: UI sessions are sealed with a key made in memory "
            "(fine for one replica; several replicas need the chart's shared Secret)"
        )
    reader = _audit_reader(env)

    def setup(app: web.Application, ctx: CoreContext) -> None:
        app.add_subapp(UI_PREFIX, create_ui_app(config, ctx.auditor, reader))

    return setup


def core_lanes(env: Mapping[str, str], kubeconfig: str | None = None) -> list[Setup]:
    """Everything the core mounts besides its own routes, in order."""
    lanes: list[Setup] = []
    if (ui := ui_setup(env, kubeconfig)) is not None:
        lanes.append(ui)
    return lanes
