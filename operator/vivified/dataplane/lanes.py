"""The parts the ``vivified core`` process mounts beyond its own routes.

:data:`~vivified.dataplane.app.CORE_SETUPS` (probes, the plugin API, the operator lane) are
always served. This module decides the rest from the environment, so that ``server.py`` stays
a thin shell and a lane of another issue adds itself in exactly one place: :func:`core_lanes`.

* the proxy lane (``VIVIFIED_PROXY=off`` turns it off): its own listener on the core's
  ``proxy`` port (``VIVIFIED_PROXY_PORT``, default ``contract.CORE_PROXY_PORT``) started and
  stopped with the app, sharing the core's context; settings ``VIVIFIED_PROXY_*``
  (``dataplane/proxy/settings.py``), parsed here so a bad one stops the core at start;
* the Admin UI at ``/ui`` (``VIVIFIED_UI=off`` turns it off): it talks to the API server as
  the signed-in user, never with the core's ServiceAccount; ``VIVIFIED_UI_SESSION_KEY`` (base64,
  32 bytes, the chart's Secret) seals its cookie so every replica reads every session.
* the event lane (``POST /v1/events``, deliveries) when ``VIVIFIED_NATS_URL`` names the
  JetStream to use (docs/events.md); without it publishes answer 503 ``event_lane_off``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from aiohttp import web

from vivified.dataplane.app import Setup
from vivified.dataplane.audit.reader import trail_reader
from vivified.dataplane.context import CoreContext

__all__ = ["UI_PREFIX", "core_lanes", "events_setup", "proxy_setup", "ui_setup"]

logger = logging.getLogger(__name__)

UI_PREFIX = "/ui"
_OFF = {"0", "false", "no", "off"}


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

    def setup(app: web.Application, ctx: CoreContext) -> None:
        reader = trail_reader(ctx.auditor)  # the detail page reads where the core writes
        app.add_subapp(UI_PREFIX, create_ui_app(config, ctx.auditor, reader))

    return setup


def proxy_setup(env: Mapping[str, str]) -> Setup | None:
    """The proxy lane's mount, or None when it is off."""
    if env.get("VIVIFIED_PROXY", "on").strip().lower() in _OFF:
        return None
    from vivified.dataplane.proxy import ProxySettings, lane  # noqa: PLC0415

    settings = ProxySettings.from_env(env)

    def setup(app: web.Application, ctx: CoreContext) -> None:
        lane.setup(app, ctx, settings)

    return setup


def events_setup(env: Mapping[str, str]) -> Setup:
    """The event lane on the JetStream at ``VIVIFIED_NATS_URL`` (``VIVIFIED_EVENTS_*``
    settings), or its refusal when none is configured."""
    from vivified.dataplane import events  # noqa: PLC0415 - nats-py only when it is used

    if not env.get("VIVIFIED_NATS_URL", "").strip():
        logger.info("event lane off: VIVIFIED_NATS_URL unset")
        return events.off
    return events.lane(events.EventLaneSettings.from_env(env))


def core_lanes(env: Mapping[str, str], kubeconfig: str | None = None) -> list[Setup]:
    """Everything the core mounts besides its own routes, in order."""
    lanes: list[Setup] = [events_setup(env)]
    if (proxy := proxy_setup(env)) is not None:
        lanes.append(proxy)
    if (ui := ui_setup(env, kubeconfig)) is not None:
        lanes.append(ui)
    return lanes
