"""Wires the operator's parts together and owns their lifetimes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vivified.dataplane.audit import operator as operator_audit
from vivified.health import ProbeAddressResolver
from vivified.policy import PolicyConfig
from vivified.registry import PluginKey, PluginRegistry
from vivified.settings import OperatorSettings
from vivified.shell.allowlists import AllowlistReports
from vivified.shell.corepoll import OperatorToken
from vivified.shell.event_counts import EventCountReports
from vivified.shell.events import EventRecorder
from vivified.shell.identity import Identity
from vivified.shell.informer import Informer
from vivified.shell.kube import Kube, counting_writes
from vivified.shell.leases import LeaseWatcher
from vivified.shell.monitor import HealthMonitor
from vivified.shell.namespaces import TerminatingNamespaces
from vivified.shell.reconciler import Reconciler, workload_facts
from vivified.workqueue import WorkQueue

logger = logging.getLogger(__name__)

CHILD_KINDS = ("ServiceAccount", "Secret", "Deployment", "Service", "NetworkPolicy")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    """Everything a running operator holds: clients, caches, the queue and the reconciler."""

    settings: OperatorSettings
    namespaces: Sequence[str] = ()
    kubeconfig: str | None = None
    workers: int = 4
    clock: Callable[[], datetime] = utc_now
    policy: PolicyConfig | None = None
    registry: PluginRegistry = field(default_factory=PluginRegistry)
    identity_refresh_seconds: float = 3600.0
    user_agent: str = "vivified-operator"
    #: Whether this replica leads its peering (``shell/leadership.py``); a standalone
    #: operator always does. A standby's periodic identity refresh writes nothing.
    leading: Callable[[], bool] = lambda: True

    def __post_init__(self) -> None:
        self.kube = Kube.from_environment(self.kubeconfig, user_agent=self.user_agent)
        self.queue: WorkQueue[PluginKey] = WorkQueue(self._reconcile, workers=self.workers)
        self.informer = Informer(
            self.kube,
            CHILD_KINDS,
            list(self.namespaces) or [None],
            on_change=lambda namespace, plugin: self.queue.add((namespace, plugin)),
        )
        self.events = EventRecorder(self.kube, self.clock)
        self.identity = Identity(self.kube, self.settings, self.clock, self.events)
        self.monitor = HealthMonitor(
            self.kube,
            self.events,
            self.settings,
            self.clock,
            resolver=ProbeAddressResolver(self.settings),
            workloads=lambda key: workload_facts(self.informer.get("Deployment", *key)),
        )
        # Heartbeats go to the core (any replica), which renews a Lease per plugin; this watch
        # feeds them to the health monitor. The operator itself accepts no plugin traffic.
        self.leases = LeaseWatcher(
            self.kube, self.monitor, list(self.namespaces) or [None], self.clock
        )
        # The core's operator-only documents, read with the operator's own token
        # (shell/corepoll.py): what the proxy enforces, for EgressEnforced (issue 9), and the
        # event lane's counts, for status.events (issue 10). Off unless their period is set.
        self.operator_token = OperatorToken(
            lambda: self.identity.keyring, issuer=self.settings.token_issuer, clock=self.clock
        )
        self.allowlists = AllowlistReports(
            self.settings.core_url,
            self.enqueue_all,
            auth=self.operator_token.headers,
            interval=float(self.settings.egress_report_seconds or 1),
        )
        self.event_counts = EventCountReports(
            self.settings.core_url,
            self.enqueue_all,
            auth=self.operator_token.headers,
            interval=float(self.settings.events_status_seconds or 1),
        )
        self.reconciler = Reconciler(
            kube=self.kube,
            informer=self.informer,
            registry=self.registry,
            identity=self.identity,
            events=self.events,
            settings=self.settings,
            clock=self.clock,
            policy=self.policy,
            health=self.monitor,
            on_affected=self.enqueue_all,
            egress_reports=self.allowlists.get,
            event_counts=self.event_counts.get,
            on_terminating=self.namespace_terminating,
        )
        # kopf stops watching a listed namespace early in its deletion (shell/namespaces.py).
        self.terminating = TerminatingNamespaces(self.kube, self.observe)

    def observe(self, event_type: str, body: Mapping[str, Any]) -> None:
        """A VivifiedPlugin watch event (kopf's, or a followed namespace's): index and queue."""
        metadata = body.get("metadata") or {}
        key = (metadata.get("namespace") or "", metadata.get("name") or "")
        if event_type == "DELETED":
            self.monitor.untrack(key)
            self.enqueue_all(self.registry.remove(key))
            return
        self.enqueue_all(self.registry.upsert(key, body))
        self.queue.add(key)

    def namespace_terminating(self, namespace: str) -> None:
        """A watched namespace is being deleted: follow its plugins (not needed cluster-wide)."""
        if self.namespaces:
            self.terminating.follow(namespace)

    async def _reconcile(self, key: PluginKey) -> float | None:
        with counting_writes() as scope:
            requeue = await self.reconciler.reconcile(key)
        writes = sum(scope.values())
        logger.log(
            logging.INFO if writes else logging.DEBUG,
            "reconciled %s/%s: %d write(s)",
            *key,
            writes,
        )
        return requeue

    def enqueue_all(self, keys: set[PluginKey]) -> None:
        for key in keys:
            self.queue.add(key)

    async def start(self) -> None:
        """Load the identity, fill the caches, then start reconciling."""
        await self.identity.start(leading=self.leading())
        self.informer.start()
        await self.informer.wait_synced()
        await self.monitor.start()
        self.leases.start()
        if self.settings.egress_report_seconds:
            self.allowlists.start()
        if self.settings.events_status_seconds:
            self.event_counts.start()
        self.queue.start()
        self._refresher = asyncio.create_task(self._refresh_identity())
        self._resyncer = (
            asyncio.create_task(self._resync(float(self.settings.resync_seconds)))
            if self.settings.resync_seconds
            else None
        )
        logger.info("operator caches synced; reconciling")

    async def lead(self) -> None:
        """This replica now leads: re-read the key ring and revocations that the previous
        leader may have changed while this one stood by (it mints and revokes from them)."""
        try:
            await self.identity.load()
        except Exception:
            logger.exception("re-reading the identity on taking the lead failed")

    async def _refresh_identity(self) -> None:
        """Rotate the signing key when due and drop expired public keys from the JWKS (the
        leader); keep a standby's view of the key ring and revocations current."""
        while True:
            await asyncio.sleep(self.identity_refresh_seconds)
            try:
                await self.identity.refresh(leading=self.leading())
            except Exception:
                logger.exception("identity refresh failed; keeping the current key ring")

    async def _resync(self, period: float) -> None:
        """The safety net behind the watches: look at every plugin again now and then.

        Level-based reconcile makes this cheap: a plugin whose state matches costs no write.
        """
        while True:
            await asyncio.sleep(period)
            keys = self.registry.keys()
            logger.info("resync: %d plugin(s) queued", len(keys))
            self.enqueue_all(set(keys))

    async def stop(self) -> None:
        await self.allowlists.stop()
        await self.event_counts.stop()
        await self.terminating.stop()
        await self.leases.stop()
        await self.monitor.stop()
        for name in ("_refresher", "_resyncer"):
            task = getattr(self, name, None)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.queue.stop()
        await self.informer.stop()
        # Nothing posts lifecycle Events any more: write what is held, the final checkpoint.
        await operator_audit.close()
        await self.kube.close()
        logger.info("write requests: %s", json.dumps(dict(self.kube.writes), sort_keys=True))
