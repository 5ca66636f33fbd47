"""``vivified operator``: run the kopf operator in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TextIO

import kopf
from kopf._core.engines.peering import Identity as KopfIdentity

from vivified import peering as ha
from vivified.dataplane import logsafe
from vivified.resource import FINALIZER
from vivified.settings import OperatorSettings, SettingsError, settings_by_section
from vivified.shell.handlers import build_registry
from vivified.shell.leadership import Leadership, step_down
from vivified.shell.runtime import Runtime
from vivified.shell.startup import StartupError, check_namespace, in_cluster, probe_settings
from vivified.shell.webhook import WebhookSettings, configure_admission

PREFIX = "vivified.dev"


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf keeps no "last handled configuration" of a plugin.

    kopf stores one (an annotation write per plugin, per spec change) only to compute the
    ``old``/``new``/``diff`` of its change handlers. The operator has none: every watch event
    feeds the level-based queue (``on.event``), and the only change handler left is
    ``on.delete``, which reads nothing but the body. So nothing is stored and nothing fetched;
    kopf then sees each event as a creation with no creation handlers, and writes nothing.
    """

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def kopf_settings() -> kopf.OperatorSettings:
    """kopf's bookkeeping lives under our own prefix, and only warnings become Events."""
    settings = kopf.OperatorSettings()
    settings.persistence.finalizer = FINALIZER
    # Progress is stored only while the on.delete handler runs (a deletion in progress).
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    return settings


def peering(settings: OperatorSettings, started_at: datetime) -> tuple[str | None, int]:
    """kopf peering for HA: a peering name turns it on; unset priority means oldest wins.

    Equal priorities make kopf pause every replica, and random ones let a restarted replica
    take the lead back from the one that took over; a start-time priority does neither.
    """
    name = settings.peering_name or None
    priority = settings.peering_priority or ha.priority_for(started_at)
    return name, priority


def replica_identity(environ: Mapping[str, str], started_at: datetime) -> str:
    """This replica's name in the peering (kopf's ``POD_ID``, else host, pid, start)."""
    if environ.get("POD_ID"):
        return environ["POD_ID"]
    return f"{socket.gethostname()}/{os.getpid()}/{started_at:%Y%m%dT%H%M%S}"


async def operate(
    namespaces: list[str],
    *,
    liveness_endpoint: str | None = None,
    settings: OperatorSettings | None = None,
) -> None:
    """Run until cancelled; ``StartupError`` when the cluster is not set up for it."""
    settings = probe_settings(
        settings or OperatorSettings.from_env(os.environ),
        os.environ,
        inside=in_cluster(os.environ),
    )
    started_at = datetime.now(UTC)
    peering_name, priority = peering(settings, started_at)
    me = replica_identity(os.environ, started_at)
    # Its own user agent per replica: the audit log then tells the replicas' writes apart.
    agent = f"vivified-operator/{me}" if peering_name else "vivified-operator"
    runtime = Runtime(settings=settings, namespaces=namespaces, user_agent=agent)
    try:
        await check_namespace(runtime.kube, settings)
    except BaseException:
        await runtime.kube.close()
        raise
    registry = build_registry(runtime)
    settings_ = kopf_settings()
    settings_.peering.lifetime = settings.peering_lifetime_seconds
    # Admission webhook (issue 5, shell/webhook.py): served when VIVIFIED_WEBHOOK_PORT is set.
    configure_admission(settings_, registry, runtime, WebhookSettings.from_settings(settings))
    leadership = None
    if peering_name is not None:

        async def demoted(reason: str) -> None:
            await step_down(reason, runtime.stop)

        leadership = Leadership(
            runtime.kube,
            name=peering_name,
            me=me,
            priority=priority,
            namespaces=list(namespaces) or [None],
            clock=lambda: datetime.now(UTC),
            on_lead=runtime.lead,
            on_demoted=demoted,
        )
        runtime.leading = lambda: leadership is not None and leadership.leading
        leadership.start()
    try:
        await kopf.operator(
            registry=registry,
            settings=settings_,
            clusterwide=not namespaces,
            namespaces=namespaces,
            liveness_endpoint=liveness_endpoint,
            standalone=peering_name is None,
            peering_name=peering_name,
            priority=priority,
            identity=KopfIdentity(me),
        )
    finally:
        if leadership is not None:
            await leadership.stop()


def print_settings(environ: Mapping[str, str], out: TextIO) -> None:
    """The effective settings by section (what ``vivified operator`` would run with)."""
    settings = probe_settings(
        OperatorSettings.from_env(environ), environ, inside=in_cluster(environ)
    )
    sections = settings_by_section(settings)
    # What the zero values mean, next to them.
    if not settings.peering_name:
        sections["peering"]["VIVIFIED_PEERING_NAME"] = "(standalone)"
    if not settings.peering_priority:
        sections["peering"]["VIVIFIED_PEERING_PRIORITY"] = "(from the start time: oldest wins)"
    if not settings.webhook_port:
        sections["webhook"]["VIVIFIED_WEBHOOK_PORT"] = "0 (off)"
    for section, values in sections.items():
        out.write(f"{section}:\n")
        for key, value in values.items():
            out.write(f"  {key}={value}\n")


def run_operator(args: argparse.Namespace) -> int:
    """Entry point used by the CLI."""
    if getattr(args, "print_settings", False):
        try:
            print_settings(os.environ, sys.stdout)
        except (StartupError, SettingsError) as error:
            print(f"vivified operator: {error}", file=sys.stderr)
            return 2
        return 0
    logging.basicConfig(
        level=getattr(logging, str(getattr(args, "log_level", "INFO")).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Request lines would drown the operator's own messages (and they add nothing secret).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # The webhook server is aiohttp too: no malformed request may log a credential (issue 16).
    logsafe.install()
    namespaces = list(getattr(args, "namespace", None) or [])
    liveness = getattr(args, "liveness", None)
    try:
        asyncio.run(operate(namespaces, liveness_endpoint=liveness))
    except (StartupError, SettingsError) as error:
        print(f"vivified operator: {error}", file=sys.stderr)
        return 2
    return 0
