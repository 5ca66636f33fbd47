"""``vivified operator``: run the kopf operator in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

import kopf

from vivified.settings import OperatorSettings
from vivified.shell.handlers import build_registry
from vivified.shell.runtime import Runtime

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
    settings.peering.standalone = True
    return settings


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
    await kopf.operator(
        registry=build_registry(runtime),
        settings=kopf_settings(),
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=liveness_endpoint,
        standalone=True,
    )


def run_operator(args: argparse.Namespace) -> int:
    """Entry point used by the CLI."""
    logging.basicConfig(
        level=getattr(logging, str(getattr(args, "log_level", "INFO")).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Request lines would drown the operator's own messages (and they add nothing secret).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    namespaces = list(getattr(args, "namespace", None) or [])
    liveness = getattr(args, "liveness", None)
    asyncio.run(operate(namespaces, liveness_endpoint=liveness))
    return 0
