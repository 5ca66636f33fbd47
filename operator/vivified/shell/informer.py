"""A label-selected list+watch cache of the operator's children.

kopf filters labels on the client side, so a kopf watch of Deployments would stream every
Deployment in the cluster through the operator. This informer asks the API server for only the
objects labelled ``app.kubernetes.io/managed-by=vivified-operator``, keeps the latest copy of each,
and tells reconcile which plugin to look at when one of them changes or disappears. Reconcile reads
children from here, so an unchanged plugin costs no API call at all.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from vivified.objects import is_older, slim
from vivified.shell.kube import KINDS, KubeApi, KubeError

logger = logging.getLogger(__name__)

ObjectKey = tuple[str, str, str]
"""(kind, namespace, name)."""
OwnerCallback = Callable[[str, str], None]
"""Called with (namespace, plugin id) when a child of that plugin changes."""

PLUGIN_LABEL = "vivified.dev/plugin"
MANAGED_SELECTOR = "app.kubernetes.io/managed-by=vivified-operator"


class Informer:
    """Caches every managed object of the given kinds in the given namespaces (None = all)."""

    def __init__(
        self,
        kube: KubeApi,
        kinds: Iterable[str],
        namespaces: Iterable[str | None],
        on_change: OwnerCallback,
        *,
        label_selector: str = MANAGED_SELECTOR,
    ) -> None:
        self._kube = kube
        self._kinds = tuple(kinds)
        self._namespaces = tuple(namespaces) or (None,)
        self._on_change = on_change
        self._selector = label_selector
        #: Each object as compact JSON, with what lookups need outside it: a Deployment
        #: without managedFields is ~15 KiB of dicts and strings but ~3 KiB as JSON, and at
        #: 1,000 plugins (5 children each) that is most of the operator's heap. ``get`` decodes
        #: a fresh copy (7 small decodes per reconcile), so no caller can alter the cache.
        self._objects: dict[ObjectKey, _Cached] = {}
        self._synced: dict[tuple[str, str | None], asyncio.Event] = {
            (kind, ns): asyncio.Event() for kind in self._kinds for ns in self._namespaces
        }
        self._tasks: list[asyncio.Task[None]] = []

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        cached = self._objects.get((kind, namespace, name))
        return None if cached is None else cached.decode()

    def owned_by(self, namespace: str, plugin_id: str) -> list[dict[str, Any]]:
        return [
            cached.decode()
            for (_, ns, _), cached in self._objects.items()
            if ns == namespace and cached.plugin == plugin_id
        ]

    def observe(self, kind: str, obj: dict[str, Any]) -> None:
        """Record an object we just wrote, so a quick re-reconcile does not write it again.

        A write's response can reach us after a watch event that is newer than it (another
        controller changed the object in between): the newer copy wins, or reconcile would read
        a state that is already gone and no further event would ever correct it.
        """
        obj.setdefault("kind", kind)
        self._store(kind, obj)

    def apply_event(self, kind: str, event: Mapping[str, Any]) -> None:
        """Fold one watch event (ADDED, MODIFIED, DELETED) into the cache and notify its owner."""
        obj = dict(event.get("object") or {})
        obj.setdefault("kind", kind)
        if event.get("type") == "DELETED":
            self._forget(kind, obj)
        else:
            self._store(kind, obj)
        self._notify(obj)

    def forget(self, kind: str, namespace: str, name: str) -> None:
        self._objects.pop((kind, namespace, name), None)

    def start(self) -> None:
        for kind in self._kinds:
            for namespace in self._namespaces:
                self._tasks.append(asyncio.create_task(self._run(kind, namespace)))

    async def wait_synced(self) -> None:
        await asyncio.gather(*(event.wait() for event in self._synced.values()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _notify(self, obj: Mapping[str, Any]) -> None:
        metadata = obj.get("metadata", {})
        plugin = metadata.get("labels", {}).get(PLUGIN_LABEL)
        namespace = metadata.get("namespace")
        if plugin and namespace:
            self._on_change(namespace, plugin)

    def _store(self, kind: str, obj: dict[str, Any]) -> None:
        metadata = obj["metadata"]
        key = (kind, metadata.get("namespace", ""), metadata["name"])
        current = self._objects.get(key)
        if current is None or not is_older(obj, current.header()):
            self._objects[key] = _Cached.of(slim(obj))

    def _forget(self, kind: str, obj: Mapping[str, Any]) -> None:
        metadata = obj["metadata"]
        self._objects.pop((kind, metadata.get("namespace", ""), metadata["name"]), None)

    async def _relist(self, kind: str, namespace: str | None) -> str:
        listing = await self._kube.list(kind, namespace, label_selector=self._selector)
        fresh = {obj["metadata"]["name"]: obj for obj in listing.get("items", [])}
        in_scope = [
            key
            for key in self._objects
            if key[0] == kind and (namespace is None or key[1] == namespace)
        ]
        for key in in_scope:
            if fresh.get(key[2]) is None or fresh[key[2]]["metadata"].get("namespace") != key[1]:
                self._notify(self._objects.pop(key).decode())
        for obj in listing.get("items", []):
            # List items carry neither kind nor apiVersion; watch events and apply responses do.
            obj.setdefault("kind", kind)
            obj.setdefault("apiVersion", KINDS[kind].api_version)
            previous = self.get(kind, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
            self._store(kind, obj)
            if previous is None or previous["metadata"].get("resourceVersion") != obj[
                "metadata"
            ].get("resourceVersion"):
                self._notify(obj)
        return str(listing.get("metadata", {}).get("resourceVersion", ""))

    async def _run(self, kind: str, namespace: str | None) -> None:
        backoff = 0.5
        while True:
            try:
                version = await self._relist(kind, namespace)
                self._synced[(kind, namespace)].set()
                backoff = 0.5
                while True:
                    version = await self._watch_once(kind, namespace, version)
            except asyncio.CancelledError:
                raise
            except _WatchExpiredError:
                continue
            except Exception as error:  # a watch must survive any hiccup
                logger.warning("watch of %s failed (%s); retrying in %.1fs", kind, error, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    async def _watch_once(self, kind: str, namespace: str | None, version: str) -> str:
        try:
            async for event in self._kube.watch(
                kind, namespace=namespace, label_selector=self._selector, resource_version=version
            ):
                kind_of_event = event.get("type")
                obj = event.get("object", {})
                if kind_of_event == "ERROR":
                    if obj.get("code") == 410:
                        raise _WatchExpiredError
                    raise KubeError(int(obj.get("code", 0)), obj.get("reason", ""), str(obj))
                version = obj.get("metadata", {}).get("resourceVersion", version)
                if kind_of_event == "BOOKMARK":
                    continue
                self.apply_event(kind, event)
        except KubeError as error:
            if error.status == 410:
                raise _WatchExpiredError from error
            raise
        return version


class _WatchExpiredError(Exception):
    """The watch's resourceVersion is too old: relist."""


@dataclass(frozen=True, slots=True)
class _Cached:
    """One cached object: its JSON, and the few fields lookups read without decoding it."""

    plugin: str | None
    uid: str | None
    resource_version: str | None
    blob: bytes

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> _Cached:
        metadata = obj.get("metadata") or {}
        return cls(
            plugin=(metadata.get("labels") or {}).get(PLUGIN_LABEL),
            uid=metadata.get("uid"),
            resource_version=metadata.get("resourceVersion"),
            blob=json.dumps(obj, separators=(",", ":")).encode(),
        )

    def decode(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.blob)
        return found

    def header(self) -> dict[str, Any]:
        """Enough of the object for ``is_older``."""
        return {"metadata": {"uid": self.uid, "resourceVersion": self.resource_version}}
