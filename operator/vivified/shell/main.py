"""``vivified operator``: run the kopf operator in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets

import kopf

from vivified.dataplane import logsafe
from vivified.settings import OperatorSettings
from vivified.shell.handlers import build_registry
from vivified.shell.runtime import Runtime
from vivified.shell.webhook import WebhookSettings, configure_admission

PREFIX = "vivified.dev"


def kopf_settings() -> kopf.OperatorSettings:
    """kopf's bookkeeping lives under our own prefix, and only warnings become Events."""
    settings = kopf.OperatorSettings()
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    return settings


def peering_from_env(environ: dict[str, str] | os._Environ[str]) -> tuple[str | None, int]:
    """kopf peering for HA: a peering name turns it on; each replica needs its own priority.

    Equal priorities make every replica pause (each sees an equal peer), so without an explicit
    ``VIVIFIED_PEERING_PRIORITY`` a random one is drawn.
    """
    name = environ.get("VIVIFIED_PEERING_NAME") or None
    raw = environ.get("VIVIFIED_PEERING_PRIORITY")
    priority = int(raw) if raw else secrets.randbelow(2**31 - 2) + 1
    return name, priority


async def operate(
    namespaces: list[str],
    *,
    liveness_endpoint: str | None = None,
    settings: OperatorSettings | None = None,
) -> None:
    """Run until cancelled."""
    runtime = Runtime(
        settings=settings or OperatorSettings.from_env(os.environ),
        namespaces=namespaces,
    )
    registry = build_registry(runtime)
    settings_ = kopf_settings()
    # Admission webhook (issue 5, shell/webhook.py): served when VIVIFIED_WEBHOOK_PORT is set.
    configure_admission(settings_, registry, runtime, WebhookSettings.from_env(os.environ))
    peering_name, priority = peering_from_env(os.environ)
    await kopf.operator(
        registry=registry,
        settings=settings_,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=liveness_endpoint,
        standalone=peering_name is None,
        peering_name=peering_name,
        priority=priority,
    )


def run_operator(args: argparse.Namespace) -> int:
    """Entry point used by the CLI."""
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
    asyncio.run(operate(namespaces, liveness_endpoint=liveness))
    return 0
