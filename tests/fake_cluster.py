"""An in-memory API server, good enough to unit-test the operator's shell without a cluster.

Like controller-runtime's fake client: objects are plain dicts keyed by (kind, namespace, name),
every change bumps a cluster-wide resourceVersion, server-side apply merges the applied fields
over the stored object, and the status subresource is merge-patched. Watchers are synchronous
callbacks, so a test decides exactly when the operator sees an event (and can make the watch
overtake a write's response, the race that lost plugin statuses at scale). Writes are counted
per (method, path) like the real client's, and every write is kept in ``log``.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vivified.shell.kube import KINDS, KubeError, record_write

ObjectKey = tuple[str, str, str]
Watcher = Callable[[str, dict[str, Any]], None]
"""Called with (kind, watch event) after every change."""
WriteHook = Callable[["FakeCluster", str, dict[str, Any]], None]
"""Called with (cluster, kind, stored object) after a write, before its response returns."""


def _merge(target: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7386 merge patch: ``None`` removes a field."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


@dataclass
class FakeCluster:
    """The objects of one pretend cluster, and who watches them."""

    objects: dict[ObjectKey, dict[str, Any]] = field(default_factory=dict)
    writes: Counter[str] = field(default_factory=Counter)
    log: list[tuple[str, str, str, str]] = field(default_factory=list)
    watchers: list[Watcher] = field(default_factory=list)
    after_write: list[WriteHook] = field(default_factory=list)
    #: Called before an apply is stored: a hook that raises fails the write with nothing stored.
    before_apply: list[WriteHook] = field(default_factory=list)
    #: Called before a write with a resourceVersion precondition is checked: a hook may change
    #: the stored object (another writer got there first) to make the precondition fail.
    before_update: list[WriteHook] = field(default_factory=list)
    #: 409s answered to a stale resourceVersion (writers that raced).
    conflicts: int = 0
    terminating: set[str] = field(default_factory=set)
    version: int = 100
    #: ``watch`` streams the events of its kind and namespace until cancelled (off: it ends at
    #: once, and the synchronous ``watchers`` are the only way events arrive).
    streaming_watches: bool = True

    # -- test helpers ----------------------------------------------------------------------
    def stored(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, namespace, name))

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for (k, _, _), obj in self.objects.items() if k == kind]

    def put(self, kind: str, obj: dict[str, Any], *, event: str | None = None) -> dict[str, Any]:
        """Store ``obj`` as a new version (what any writer, us or a controller, causes)."""
        meta = obj.setdefault("metadata", {})
        key = (kind, meta.get("namespace", ""), meta["name"])
        existed = key in self.objects
        self.version += 1
        meta["resourceVersion"] = str(self.version)
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("generation", 1)
        meta.setdefault("creationTimestamp", f"2026-01-01T00:00:{self.version % 60:02d}Z")
        obj.setdefault("kind", kind)
        obj.setdefault("apiVersion", KINDS[kind].api_version if kind in KINDS else "v1")
        self.objects[key] = obj
        self.notify(kind, event or ("MODIFIED" if existed else "ADDED"), obj)
        return copy.deepcopy(obj)

    def notify(self, kind: str, event: str, obj: Mapping[str, Any]) -> None:
        for watcher in list(self.watchers):
            watcher(kind, {"type": event, "object": copy.deepcopy(dict(obj))})

    def mark_deleted(self, kind: str, namespace: str, name: str) -> None:
        """What ``kubectl delete`` does to an object that holds finalizers."""
        obj = copy.deepcopy(self.objects[(kind, namespace, name)])
        obj["metadata"]["deletionTimestamp"] = "2026-03-01T12:00:00Z"
        self.put(kind, obj)

    def make_available(self, namespace: str, name: str) -> None:
        """Play the Deployment controller: all desired replicas ready and up to date."""
        deployment = copy.deepcopy(self.objects[("Deployment", namespace, name)])
        replicas = int(deployment.get("spec", {}).get("replicas", 1))
        deployment["status"] = {
            "observedGeneration": deployment["metadata"].get("generation", 1),
            "replicas": replicas,
            "readyReplicas": replicas,
            "updatedReplicas": replicas,
            "availableReplicas": replicas,
        }
        self.put("Deployment", deployment)

    def _write(self, method: str, kind: str, namespace: str, name: str) -> None:
        path = KINDS[kind].path(namespace, name) if kind in KINDS else f"{kind}/{name}"
        record_write(self.writes, method, path)
        self.log.append((method, kind, namespace, name))

    def _after(self, kind: str, obj: dict[str, Any]) -> None:
        for hook in list(self.after_write):
            hook(self, kind, obj)

    def _refuse_in_terminating(self, namespace: str, creating: bool) -> None:
        if creating and namespace in self.terminating:
            raise KubeError(
                403,
                "Forbidden",
                f"unable to create new content in namespace {namespace} because it is being "
                "terminated",
            )

    # -- the client surface (shell.kube.KubeApi) ---------------------------------------------
    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: object = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> dict[str, Any]:
        parts = path.strip("/").split("/")
        if method == "POST" and parts[-1] == "events" and isinstance(body, dict):
            namespace = parts[-2]
            self._refuse_in_terminating(namespace, creating=True)
            self._write(method, "Event", namespace, body["metadata"]["name"])
            self.put("Event", copy.deepcopy(body))
            return copy.deepcopy(body)
        kind = next((k for k, v in KINDS.items() if v.plural == parts[-2]), None)
        if kind is None or not isinstance(body, dict):
            raise KubeError(404, "NotFound", path)
        namespace, name = parts[-3] if KINDS[kind].namespaced else "", parts[-1]
        self._write(method, kind, namespace, name)
        live = self.objects.get((kind, namespace, name))
        expected = (body.get("metadata") or {}).get("resourceVersion")
        if live is not None and expected is not None:
            for hook in list(self.before_update):
                hook(self, kind, live)
            live = self.objects.get((kind, namespace, name))
        if live is not None and expected not in (None, live["metadata"]["resourceVersion"]):
            self.conflicts += 1
            raise KubeError(409, "Conflict", f"{path}: the object has been modified")
        if method == "PUT":
            return self.put(kind, copy.deepcopy(body))
        if live is None:
            raise KubeError(404, "NotFound", path)
        merged = _merge(copy.deepcopy(live), body)
        if merged["metadata"].get("deletionTimestamp") and not merged["metadata"].get("finalizers"):
            await self.delete(kind, namespace, name)
            return merged
        return self.put(kind, merged)

    async def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        obj = self.objects.get((kind, namespace or "", name))
        return copy.deepcopy(obj) if obj is not None else None

    async def list(
        self, kind: str, namespace: str | None = None, *, label_selector: str | None = None
    ) -> dict[str, Any]:
        wanted = dict(p.split("=", 1) for p in label_selector.split(",")) if label_selector else {}
        items = [
            copy.deepcopy(obj)
            for (k, ns, _), obj in self.objects.items()
            if k == kind
            and (namespace is None or ns == namespace)
            and all(obj["metadata"].get("labels", {}).get(a) == b for a, b in wanted.items())
        ]
        return {"items": items, "metadata": {"resourceVersion": str(self.version)}}

    async def apply(
        self, obj: Mapping[str, Any], *, field_manager: str, force: bool = True
    ) -> dict[str, Any]:
        kind, meta = obj["kind"], obj["metadata"]
        namespace, name = meta.get("namespace", ""), meta["name"]
        live = self.objects.get((kind, namespace, name))
        self._refuse_in_terminating(namespace, creating=live is None)
        for hook in list(self.before_apply):
            hook(self, kind, dict(obj))
        self._write("PATCH", kind, namespace, name)
        merged = _merge(copy.deepcopy(live) if live is not None else {}, obj)
        if live is not None and merged.get("spec") != live.get("spec"):
            merged["metadata"]["generation"] = int(live["metadata"].get("generation", 1)) + 1
        response = self.put(kind, merged)
        self._after(kind, self.objects[(kind, namespace, name)])
        return response

    async def patch_status(
        self, kind: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        live = self.objects.get((kind, namespace, name))
        if live is None:
            raise KubeError(404, "NotFound", f"{kind} {namespace}/{name}")
        self._write("PATCH", kind, namespace, name + "/status")
        updated = copy.deepcopy(live)
        updated["status"] = _merge(updated.get("status") or {}, status)
        return self.put(kind, updated)

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        kind, meta = obj["kind"], obj["metadata"]
        namespace = meta.get("namespace", "")
        if (kind, namespace, meta["name"]) in self.objects:
            raise KubeError(409, "AlreadyExists", meta["name"])
        self._refuse_in_terminating(namespace, creating=True)
        self._write("POST", kind, namespace, meta["name"])
        return self.put(kind, copy.deepcopy(dict(obj)))

    async def delete(
        self, kind: str, namespace: str | None, name: str, *, resource_version: str | None = None
    ) -> bool:
        obj = self.objects.pop((kind, namespace or "", name), None)
        self._write("DELETE", kind, namespace or "", name)
        if obj is None:
            return False
        self.version += 1
        self.notify(kind, "DELETED", obj)
        return True

    async def watch(
        self,
        kind: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        resource_version: str,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[dict[str, Any]]:
        """With ``streaming_watches``, the events of ``kind`` in ``namespace``; else nothing."""
        if not self.streaming_watches:
            return
        events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        def deliver(event_kind: str, event: dict[str, Any]) -> None:
            seen = event["object"]["metadata"].get("namespace")
            if event_kind == kind and (namespace is None or seen == namespace):
                events.put_nowait(event)

        self.watchers.append(deliver)
        try:
            while True:
                yield await events.get()
        finally:
            self.watchers.remove(deliver)

    async def close(self) -> None:
        return None

    @property
    def write_count(self) -> int:
        return sum(self.writes.values())
