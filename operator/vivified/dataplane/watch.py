"""The core's view of the cluster, kept by list+watch (read-only): plugins and trust documents.

:class:`WatchDirectory` implements :class:`~vivified.dataplane.directory.PluginDirectory` from
VivifiedPlugin events; :class:`ClusterFeed` runs the watches (plugins in the served
namespaces, the operator's JWKS and revocation ConfigMaps) and reports when all have listed
once, which is what readiness means. A watch that fails relists with backoff and keeps the
last view meanwhile: a short API-server outage does not empty the directory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from vivified.dataplane.directory import PluginRecord
from vivified.dataplane.records import record_from_resource
from vivified.dataplane.settings import CoreSettings
from vivified.dataplane.trust import TrustState

__all__ = ["ClusterFeed", "KubeReader", "WatchDirectory"]

logger = logging.getLogger(__name__)

IDENTITY_SELECTOR = "app.kubernetes.io/managed-by=vivified-operator-identity"


class KubeReader(Protocol):
    """The two reads the feed needs (``vivified.shell.kube.Kube`` has them)."""

    async def list(
        self, kind: str, namespace: str | None = None, *, label_selector: str | None = None
    ) -> dict[str, Any]: ...

    def watch(
        self,
        kind: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        resource_version: str,
        timeout_seconds: int = 300,
    ) -> Any: ...


class WatchDirectory:
    """Plugins by id, replaced wholesale on relist and per object on watch events."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], PluginRecord] = {}
        self._by_id: dict[str, PluginRecord] = {}

    def get(self, plugin_id: str) -> PluginRecord | None:
        return self._by_id.get(plugin_id)

    def all(self) -> Iterator[PluginRecord]:
        return iter(sorted(self._by_id.values(), key=lambda r: r.plugin_id))

    def reset(self, namespace: str | None, objects: list[dict[str, Any]]) -> None:
        for key in [k for k in self._by_key if namespace is None or k[0] == namespace]:
            del self._by_key[key]
        for obj in objects:
            self.apply("ADDED", obj)
        self._reindex()

    def apply(self, event: str, obj: Mapping[str, Any]) -> None:
        metadata = obj.get("metadata") or {}
        key = (str(metadata.get("namespace", "")), str(metadata.get("name", "")))
        record = None if event == "DELETED" else record_from_resource(obj)
        if record is None:
            self._by_key.pop(key, None)
        else:
            self._by_key[key] = record
        self._reindex()

    def _reindex(self) -> None:
        # Plugin ids are unique cluster-wide (the operator refuses duplicates); if two
        # namespaces claim one anyway, neither is served rather than guessing.
        counts: dict[str, int] = {}
        for record in self._by_key.values():
            counts[record.plugin_id] = counts.get(record.plugin_id, 0) + 1
        self._by_id = {r.plugin_id: r for r in self._by_key.values() if counts[r.plugin_id] == 1}


Handler = Callable[[str, dict[str, Any]], None]
Reset = Callable[[list[dict[str, Any]]], None]


class ClusterFeed:
    """Runs every watch the core needs and owns their tasks."""

    def __init__(
        self, kube: KubeReader, settings: CoreSettings, directory: WatchDirectory, trust: TrustState
    ) -> None:
        self._kube = kube
        self._settings = settings
        self.directory = directory
        self.trust = trust
        self._tasks: list[asyncio.Task[None]] = []
        self._synced: list[asyncio.Event] = []

    @property
    def synced(self) -> bool:
        return all(e.is_set() for e in self._synced) and self.trust.ready

    def start(self) -> None:
        namespaces: tuple[str | None, ...] = self._settings.namespaces or (None,)
        for namespace in namespaces:
            self._spawn(
                "VivifiedPlugin",
                namespace,
                None,
                self._plugin_reset(namespace),
                self.directory.apply,
            )
        self._spawn(
            "ConfigMap",
            self._settings.identity_namespace,
            IDENTITY_SELECTOR,
            self._reset_identity,
            self._identity_event,
        )

    async def wait_synced(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in self._synced)), timeout)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def _plugin_reset(self, namespace: str | None) -> Reset:
        def reset(objects: list[dict[str, Any]]) -> None:
            self.directory.reset(namespace, objects)

        return reset

    # -- identity ConfigMaps -------------------------------------------------------------------
    def _identity_event(self, event: str, obj: Mapping[str, Any]) -> None:
        if event == "DELETED":
            return  # keep the last good documents; the operator recreates them
        name = (obj.get("metadata") or {}).get("name")
        if name == self._settings.jwks_configmap:
            self.trust.set_jwks(obj.get("data"))
        elif name == self._settings.revocations_configmap:
            self.trust.set_revocations(obj.get("data"))

    def _reset_identity(self, objects: list[dict[str, Any]]) -> None:
        for obj in objects:
            self._identity_event("ADDED", obj)
        names = {(o.get("metadata") or {}).get("name") for o in objects}
        if self._settings.revocations_configmap not in names and not self.trust.ready_revocations:
            # The operator creates the list on its first revocation; a successful list without
            # it means nothing was ever revoked (its own reading, too). A list that disappears
            # later keeps the last one seen (DELETED events are ignored).
            self.trust.set_revocations(None)

    # -- the loop ------------------------------------------------------------------------------
    def _spawn(
        self,
        kind: str,
        namespace: str | None,
        selector: str | None,
        reset: Reset,
        handle: Handler,
    ) -> None:
        synced = asyncio.Event()
        self._synced.append(synced)
        self._tasks.append(
            asyncio.create_task(self._run(kind, namespace, selector, reset, handle, synced=synced))
        )

    async def _run(
        self,
        kind: str,
        namespace: str | None,
        selector: str | None,
        reset: Reset,
        handle: Handler,
        *,
        synced: asyncio.Event,
    ) -> None:
        backoff = 0.5
        while True:
            try:
                listing = await self._kube.list(kind, namespace, label_selector=selector)
                reset(list(listing.get("items", [])))
                synced.set()
                backoff = 0.5
                version = str(listing.get("metadata", {}).get("resourceVersion", ""))
                while True:
                    version = await self._watch_once(kind, namespace, selector, version, handle)
            except asyncio.CancelledError:
                raise
            except _WatchExpiredError:
                continue
            except Exception as error:  # a watch must survive any hiccup
                logger.warning("watch of %s failed (%s); relisting in %.1fs", kind, error, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    async def _watch_once(
        self, kind: str, namespace: str | None, selector: str | None, version: str, handle: Handler
    ) -> str:
        stream: Callable[..., Any] = self._kube.watch
        events = stream(
            kind, namespace=namespace, label_selector=selector, resource_version=version
        )
        async for event in events:
            kind_of_event = event.get("type")
            obj = event.get("object") or {}
            if kind_of_event == "ERROR":
                if obj.get("code") == 410:
                    raise _WatchExpiredError
                raise RuntimeError(f"watch error {obj.get('code')}: {obj.get('reason')}")
            version = (obj.get("metadata") or {}).get("resourceVersion", version)
            if kind_of_event in ("ADDED", "MODIFIED", "DELETED"):
                handle(str(kind_of_event), obj)
        return version


class _WatchExpiredError(Exception):
    """The watch's resourceVersion is too old: relist."""
