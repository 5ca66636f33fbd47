"""The operator's shell wired to the fake cluster: registry, informer, identity, events, queue.

The wiring mirrors ``shell.runtime.Runtime`` and ``shell.handlers`` (the kopf watch of plugins
feeds the index and the queue; the label-selected informer feeds the child cache), without kopf,
HTTP or a cluster. Watch events are delivered synchronously by the fake cluster.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fake_cluster import FakeCluster

from vivified.registry import PluginKey, PluginRegistry
from vivified.settings import OperatorSettings
from vivified.shell.events import EventRecorder
from vivified.shell.identity import Identity
from vivified.shell.informer import MANAGED_SELECTOR, Informer
from vivified.shell.namespaces import TerminatingNamespaces
from vivified.shell.reconciler import Reconciler
from vivified.shell.runtime import CHILD_KINDS
from vivified.status import EventCounts
from vivified.workqueue import WorkQueue

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NAMESPACE = "team-a"


def plugin_body(
    plugin_id: str,
    *,
    namespace: str = NAMESPACE,
    enabled: bool = True,
    dependencies: list[str] | None = None,
    traits: list[str] | None = None,
    manifest: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A valid VivifiedPlugin (``manifest`` overrides fields of the manifest)."""
    base: dict[str, Any] = {
        "id": plugin_id,
        "name": f"Plugin {plugin_id}",
        "version": "1.0.0",
        "contracts": ["StoragePlugin"],
        "traits": traits if traits is not None else ["audit_required"],
        "dependencies": dependencies or [],
        "security": {"authentication_required": True, "data_classification": ["internal"]},
        "compliance": {"hipaa_controls": [], "audit_level": "basic"},
        "health_check": {"type": "http", "port": 8000, "path": "/health"},
        "resources": {"memory_limit": 128, "cpu_limit": 0.25},
    }
    base.update(manifest or {})
    return {
        "apiVersion": "vivified.dev/v1alpha1",
        "kind": "VivifiedPlugin",
        "metadata": {"name": plugin_id, "namespace": namespace, "generation": 1},
        "spec": {"image": "registry.example.com/p:1.0.0", "enabled": enabled, "manifest": base},
    }


@dataclass
class Clock:
    """A clock the test moves by hand."""

    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class FakeOperator:
    """One operator over one fake cluster."""

    cluster: FakeCluster = field(default_factory=FakeCluster)
    settings: OperatorSettings = field(default_factory=OperatorSettings)
    clock: Clock = field(default_factory=Clock)
    reconciles: list[PluginKey] = field(default_factory=list)
    #: kopf's watch of VivifiedPlugins; False plays kopf stopping a namespace's stream early.
    plugin_stream: bool = True
    #: What the core reports for each subscriber (``GET /v1/events/status``), as the poll has it.
    event_counts: dict[PluginKey, EventCounts] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.registry = PluginRegistry()
        self.queue: WorkQueue[PluginKey] = WorkQueue(self._reconcile, workers=2)
        self.informer = Informer(
            self.cluster,
            CHILD_KINDS,
            [None],
            on_change=lambda namespace, plugin: self.queue.add((namespace, plugin)),
        )
        self.events = EventRecorder(self.cluster, self.clock)
        self.identity = Identity(self.cluster, self.settings, self.clock, self.events)
        self.terminating = TerminatingNamespaces(self.cluster, self.observe, retry_seconds=0)
        self.reconciler = Reconciler(
            kube=self.cluster,
            informer=self.informer,
            registry=self.registry,
            identity=self.identity,
            events=self.events,
            settings=self.settings,
            clock=self.clock,
            on_affected=self._enqueue_all,
            event_counts=self.event_counts.get,
            on_terminating=self.terminating.follow,
        )
        self.cluster.watchers.append(self._watch)

    async def _reconcile(self, key: PluginKey) -> float | None:
        self.reconciles.append(key)
        return await self.reconciler.reconcile(key)

    def _enqueue_all(self, keys: set[PluginKey]) -> None:
        for key in keys:
            self.queue.add(key)

    def observe(self, event_type: str, obj: Mapping[str, Any]) -> None:
        """What ``Runtime.observe`` does with a VivifiedPlugin event."""
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        if event_type == "DELETED":
            self._enqueue_all(self.registry.remove(key))
            return
        self._enqueue_all(self.registry.upsert(key, obj))
        self.queue.add(key)

    def _watch(self, kind: str, event: dict[str, Any]) -> None:
        obj = event["object"]
        meta = obj["metadata"]
        if kind == "VivifiedPlugin":
            if self.plugin_stream:
                self.observe(event["type"], obj)
        elif kind in CHILD_KINDS:
            label, value = MANAGED_SELECTOR.split("=")
            if meta.get("labels", {}).get(label) == value:
                self.informer.apply_event(kind, event)

    async def start(self) -> None:
        await self.identity.load()
        self.queue.start()

    async def stop(self) -> None:
        await self.terminating.stop()
        await self.queue.stop()

    async def settle(self) -> None:
        """Wait until the queue has nothing left to do (delayed keys do not count).

        Streaming watches (the namespace follower's) hand events over a task switch later, so
        the queue must stay empty across a few switches.
        """
        while True:
            await self.queue.join()
            for _ in range(3):
                await asyncio.sleep(0)
            if self.queue.depth == 0:
                return

    def create(self, body: dict[str, Any]) -> None:
        self.cluster.put("VivifiedPlugin", copy.deepcopy(body))

    def status(self, plugin_id: str, namespace: str = NAMESPACE) -> dict[str, Any]:
        stored = self.cluster.stored("VivifiedPlugin", namespace, plugin_id)
        assert stored is not None
        status: dict[str, Any] = stored.get("status") or {}
        return status

    def on_write(self, kind: str, action: Callable[[FakeCluster, dict[str, Any]], None]) -> None:
        """Run ``action`` after each write of ``kind``, before the write's response returns."""

        def hook(cluster: FakeCluster, written_kind: str, obj: dict[str, Any]) -> None:
            if written_kind == kind:
                action(cluster, obj)

        self.cluster.after_write.append(hook)
