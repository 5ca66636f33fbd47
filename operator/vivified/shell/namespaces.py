"""Follow the plugins of a namespace being deleted, where kopf has stopped looking.

kopf, watching a list of namespaces, stops a namespace's watch-stream as soon as the namespace
looks deleted to it: marked, with status conditions, none of them True. The namespace controller
publishes exactly that on its first pass ("ContentRemoved", all False) before it has reached the
VivifiedPlugins, and only a later pass marks them for deletion and turns ``SomeFinalizersRemain``
True. kopf then logs "termination pending" but never restarts the stream, so nobody sees the
plugins' deletionTimestamp, ``vivified.dev/finalizer`` stays, and the namespace hangs in
Terminating (seen in the e2e suite; kopf 1.45.2, ``observation.revise_namespaces``).

So the operator follows such a namespace itself: a list+watch of its VivifiedPlugins, fed into the
same place as kopf's events (the index and the queue), until no plugin is left in it. Reconcile
sends a plugin with a deletionTimestamp straight to clean-up. Cluster-wide operators do not need
this (kopf's cluster-wide stream is never stopped).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from vivified.shell.kube import KINDS, KubeApi, KubeError

logger = logging.getLogger(__name__)

PluginEvent = Callable[[str, Mapping[str, Any]], None]
"""Called with (event type, VivifiedPlugin body): what kopf's ``observe`` handler gets."""

KIND = "VivifiedPlugin"


def is_terminating(namespace: Mapping[str, Any]) -> bool:
    """Whether a Namespace object is marked for deletion."""
    return bool((namespace.get("metadata") or {}).get("deletionTimestamp"))


def watched(name: str, patterns: Iterable[str]) -> bool:
    """Whether ``name`` is one of the operator's namespaces (names or kopf-style globs)."""
    return any(not p.startswith("!") and fnmatch.fnmatchcase(name, p) for p in patterns)


class TerminatingNamespaces:
    """One follow task per namespace being deleted; idempotent ``follow``."""

    def __init__(self, kube: KubeApi, on_event: PluginEvent, *, retry_seconds: float = 1.0):
        self._kube = kube
        self._on_event = on_event
        self._retry = retry_seconds
        self._tasks: dict[str, asyncio.Task[None]] = {}
        #: Followed to the end (no plugin left): a terminating namespace gets no new ones.
        self._finished: set[str] = set()

    @property
    def following(self) -> frozenset[str]:
        return frozenset(ns for ns, task in self._tasks.items() if not task.done())

    def follow(self, namespace: str) -> None:
        """Start following ``namespace`` (no-op when already followed)."""
        task = self._tasks.get(namespace)
        if namespace in self._finished or (task is not None and not task.done()):
            return
        logger.info("namespace %s is being deleted: following its plugins", namespace)
        self._tasks[namespace] = asyncio.create_task(self._run(namespace))

    def drop(self, namespace: str) -> None:
        """The namespace is gone: stop following it."""
        self._finished.discard(namespace)
        task = self._tasks.pop(namespace, None)
        if task is not None:
            task.cancel()

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, namespace: str) -> None:
        while True:
            try:
                if await self._follow_once(namespace):
                    logger.info("namespace %s: no plugin left to follow", namespace)
                    self._finished.add(namespace)
                    return
            except asyncio.CancelledError:
                raise
            except Exception as error:  # keep following through any hiccup
                logger.warning("following namespace %s failed (%s); retrying", namespace, error)
                await asyncio.sleep(self._retry)

    async def _follow_once(self, namespace: str) -> bool:
        """List, then watch; True once the namespace holds no plugin any more."""
        listing = await self._kube.list(KIND, namespace)
        present: set[str] = set()
        for item in listing.get("items", []):
            item.setdefault("kind", KIND)
            item.setdefault("apiVersion", KINDS[KIND].api_version)
            present.add(item["metadata"]["name"])
            self._on_event("MODIFIED", item)
        if not present:
            return True
        version = str((listing.get("metadata") or {}).get("resourceVersion", ""))
        try:
            async for event in self._kube.watch(
                KIND, namespace=namespace, resource_version=version, timeout_seconds=60
            ):
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    return False  # expired or refused: list again
                if kind == "BOOKMARK":
                    continue
                name = str((obj.get("metadata") or {}).get("name", ""))
                if kind == "DELETED":
                    present.discard(name)
                else:
                    present.add(name)
                self._on_event(str(kind), obj)
                if not present:
                    return True
        except KubeError as error:
            if error.status not in (404, 410):
                raise
        return False
