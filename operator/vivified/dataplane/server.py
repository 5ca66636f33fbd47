"""``vivified core``: wire the watches, the app and the listener, and run until stopped."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
from collections.abc import Sequence

from aiohttp import web

from vivified.dataplane import logsafe
from vivified.dataplane.app import Setup, build_app
from vivified.dataplane.audit.alert import EventAlert, kube_poster
from vivified.dataplane.audit.auditor import ChainAuditor
from vivified.dataplane.audit.setup import AuditSettings, open_auditor
from vivified.dataplane.context import CoreContext, HeartbeatSink, NullHeartbeats, utc_now
from vivified.dataplane.heartbeats import LeaseHeartbeats
from vivified.dataplane.lanes import core_lanes
from vivified.dataplane.settings import CoreSettings
from vivified.dataplane.trust import CoreKey, TrustState
from vivified.dataplane.watch import ClusterFeed, WatchDirectory
from vivified.shell import credentials
from vivified.shell.kube import Kube  # the shared REST client
from vivified_sdk import contract

__all__ = ["freeze_startup_heap", "run_core", "serve"]

logger = logging.getLogger(__name__)


def freeze_startup_heap() -> int:
    """Move what start-up left alive (modules, settings, keys, clients: it lives as long as
    the process) out of the collector's reach, so a full collection walks only what requests
    allocate. Those collections were the core's longest pauses, its p99 under load
    (bench/audit.py reports them). Returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


async def serve(
    settings: CoreSettings,
    *,
    kubeconfig: str | None = None,
    lanes: Sequence[Setup] = (),
    stop: asyncio.Event | None = None,
) -> None:
    """Run the core until ``stop`` is set (or the task is cancelled).

    The auditor opens first, so no decision is made before the trail exists: bad audit
    settings stop the start-up, and an unreachable NATS trail is an outage (required entries
    fail closed, basic ones are held; docs/audit.md)."""
    kube = Kube(credentials.load(kubeconfig), user_agent=contract.CORE_SERVICE_NAME)
    try:
        auditor = await open_auditor(
            AuditSettings.from_env(os.environ, role="core"), alert=_outage_alert(kube, settings)
        )
    except BaseException:
        await kube.close()
        raise
    directory = WatchDirectory()
    trust = TrustState(CoreKey.load(settings.signing_key_file, utc_now()))
    feed = ClusterFeed(kube, settings, directory, trust)
    heartbeats: HeartbeatSink = (
        LeaseHeartbeats(kube, settings) if settings.heartbeat_leases else NullHeartbeats()
    )
    ctx = CoreContext(
        settings=settings,
        directory=directory,
        trust=trust,
        heartbeats=heartbeats,
        synced=lambda: feed.synced,
        auditor=auditor,
    )
    if isinstance(auditor, ChainAuditor):
        ctx.ready_checks.append(auditor.ready_for_traffic)
    runner = web.AppRunner(build_app(ctx, lanes), access_log=None, handle_signals=False)
    feed.start()
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
        frozen = freeze_startup_heap()
        logger.info(
            "core listening on %s:%s (call-token key %s; %d start-up objects frozen)",
            settings.host,
            settings.port,
            trust.core_key.kid,
            frozen,
        )
        await (stop or asyncio.Event()).wait()
    finally:
        await runner.cleanup()
        await feed.stop()
        await kube.close()
        if isinstance(auditor, ChainAuditor):
            await auditor.close()  # flushes and writes the final checkpoint


def _outage_alert(kube: Kube, settings: CoreSettings) -> EventAlert:
    """Audit-sink outages as Events about this pod (``AuditSinkDown``/``AuditSinkRecovered``),
    posted with the core's own client: in a pod and outside a cluster alike."""
    namespace, _, pod = settings.pod_name.rpartition("/")
    return EventAlert(
        kube_poster(
            kube,
            namespace or settings.identity_namespace,
            pod or os.environ.get("HOSTNAME") or contract.CORE_SERVICE_NAME,
        )
    )


def run_core(args: argparse.Namespace) -> int:
    """Entry point used by the CLI."""
    logging.basicConfig(
        level=getattr(logging, str(getattr(args, "log_level", "INFO")).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logsafe.install()
    settings = CoreSettings.from_env(os.environ)
    if getattr(args, "port", None):
        settings = CoreSettings(**{**settings.__dict__, "port": args.port})

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        kubeconfig = getattr(args, "kubeconfig", None)
        lanes = core_lanes(os.environ, kubeconfig)
        await serve(settings, kubeconfig=kubeconfig, lanes=lanes, stop=stop)

    asyncio.run(main())
    return 0
