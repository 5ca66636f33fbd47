"""Watch the core's heartbeat Leases and feed each new renewal to the health monitor.

Replaces the operator's heartbeat server: plugins send heartbeats to the core (any replica),
the core renews a Lease, and this watch hands the beat to ``HealthMonitor.record_heartbeat``.
The operator accepts no plugin traffic.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol

from vivified.health import Health, Heartbeat
from vivified.health.lease import LEASE_SELECTOR, heartbeat_from_lease
from vivified.shell.kube import KINDS, Kube, ResourceKind

logger = logging.getLogger(__name__)

KINDS.setdefault("Lease", ResourceKind("coordination.k8s.io/v1", "Lease", "leases"))


class HeartbeatSink(Protocol):
    def record_heartbeat(self, key: tuple[str, str], beat: Heartbeat) -> Health | None: ...


class LeaseWatcher:
    """One list+watch of heartbeat Leases per watched namespace (None = all)."""

    def __init__(
        self,
        kube: Kube,
        sink: HeartbeatSink,
        namespaces: Iterable[str | None],
        clock: Callable[[], datetime],
    ) -> None:
        self._kube = kube
        self._sink = sink
        self._namespaces = tuple(namespaces) or (None,)
        self._clock = clock
        self._seen: dict[tuple[str, str], datetime] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def observe(self, lease: dict[str, Any]) -> None:
        found = heartbeat_from_lease(lease, self._clock())
        if found is None:
            return
        namespace, plugin_id, renewed, beat = found
        key = (namespace, plugin_id)
        if self._seen.get(key) == renewed:
            return  # the same renewal again (relist, or a write that changed nothing)
        self._seen[key] = renewed
        self._sink.record_heartbeat(key, beat)

    def start(self) -> None:
        for namespace in self._namespaces:
            self._tasks.append(asyncio.create_task(self._run(namespace)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _run(self, namespace: str | None) -> None:
        backoff = 0.5
        while True:
            try:
                listing = await self._kube.list("Lease", namespace, label_selector=LEASE_SELECTOR)
                for item in listing.get("items", []):
                    self.observe(item)
                version = str(listing.get("metadata", {}).get("resourceVersion", ""))
                backoff = 0.5
                while True:
                    async for event in self._kube.watch(
                        "Lease",
                        namespace=namespace,
                        label_selector=LEASE_SELECTOR,
                        resource_version=version,
                    ):
                        obj = event.get("object") or {}
                        if event.get("type") == "ERROR":
                            raise RuntimeError(f"lease watch error {obj.get('code')}")
                        version = (obj.get("metadata") or {}).get("resourceVersion", version)
                        if event.get("type") in ("ADDED", "MODIFIED"):
                            self.observe(obj)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a watch must survive any hiccup
                logger.warning(
                    "heartbeat lease watch failed (%s); retrying in %.1fs", error, backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
