"""Follow the kopf peering this replica joined; step down by exiting when it stops leading.

kopf pauses only its own handlers when a peer outranks this replica. The runtime's informer,
work queue, health monitor, lease watch and timers run beside kopf and would go on writing
next to the new leader. So a replica that led and then stops leading ends its process with
``EXIT_DEMOTED`` (after stopping those parts); its Deployment restarts it, and as the newest
replica it comes back as a standby (``vivified.peering``: oldest wins).

The same watch logs how long a takeover took: the line ``leading peering ...`` names the peer
it replaced and how long ago that peer was last seen alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, NoReturn

from vivified import peering
from vivified.shell.kube import KINDS, KubeApi, ResourceKind

logger = logging.getLogger(__name__)

#: The exit code of a replica that stopped leading (docs/operator.md, "High availability").
EXIT_DEMOTED = 3

KINDS.setdefault("KopfPeering", ResourceKind("kopf.dev/v1", "KopfPeering", "kopfpeerings"))
KINDS.setdefault(
    "ClusterKopfPeering",
    ResourceKind("kopf.dev/v1", "ClusterKopfPeering", "clusterkopfpeerings", namespaced=False),
)


class Leadership:
    """This replica's standing in one peering (one object per watched namespace, or one
    cluster-wide), as kopf decides it; calls ``on_lead`` once it leads, ``on_demoted`` when
    a replica that led stops leading."""

    def __init__(
        self,
        kube: KubeApi,
        *,
        name: str,
        me: str,
        priority: int,
        namespaces: Sequence[str | None],
        clock: Callable[[], datetime],
        on_lead: Callable[[], Awaitable[None]],
        on_demoted: Callable[[str], Awaitable[None]],
    ) -> None:
        self._kube = kube
        self._name, self._me, self._priority = name, me, priority
        self._scopes: tuple[str | None, ...] = tuple(namespaces) or (None,)
        self._clock = clock
        self._on_lead, self._on_demoted = on_lead, on_demoted
        self._peers: dict[str | None, list[peering.Peer]] = {}
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._since = clock()
        self.leading = False
        self.led = False
        self.demoted = False

    def start(self) -> None:
        for scope in self._scopes:
            self._tasks.append(asyncio.create_task(self._follow(scope)))
        self._tasks.append(asyncio.create_task(self._decide()))

    async def stop(self) -> None:
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    def observe(self, scope: str | None, obj: Mapping[str, Any]) -> None:
        """A peering object as listed or watched: keep its peers, re-decide."""
        if (obj.get("metadata") or {}).get("name") != self._name:
            return
        self._peers[scope] = peering.peers_from_status(obj.get("status"))
        self._changed.set()

    async def decide(self) -> float:
        """Act on the current standing; returns seconds until it must be looked at again."""
        if any(scope not in self._peers for scope in self._scopes):
            return float("inf")  # kopf too stays paused until it has seen every object
        now = self._clock()
        standings = [
            peering.standing(peers, self._me, self._priority, now) for peers in self._peers.values()
        ]
        overall: peering.Standing = (
            "outranked"
            if "outranked" in standings
            else "tied"
            if "tied" in standings
            else "leading"
        )
        action = peering.after(self.led, overall)
        if action == "exit" and not self.demoted:
            self.leading, self.demoted = False, True
            await self._on_demoted(f"peering {self._name}: {overall} after leading")
        elif action == "lead" and not self.leading:
            self.leading = self.led = True
            logger.info("leading peering %s (priority %d)%s", self._name, self._priority,
                        self._replaced(now))  # fmt: skip
            await self._on_lead()
        elif action == "stand-by" and overall == "tied":
            logger.warning("peering %s: a live peer has this replica's priority %d; kopf pauses "
                           "both", self._name, self._priority)  # fmt: skip
        return min(
            peering.seconds_to_recheck(peers, self._me, self._priority, now)
            for peers in self._peers.values()
        )

    def _replaced(self, now: datetime) -> str:
        """The takeover's length as this replica saw it: since the outranking peer was last
        alive (its lifetime is the bound), and how long this replica stood by."""
        stood = (now - self._since).total_seconds()
        gone = [
            p
            for peers in self._peers.values()
            for p in peers
            if p.identity != self._me and not p.alive(now) and p.priority > self._priority
        ]
        if not gone:
            return f" after {stood:.1f}s; no previous leader in sight"
        previous = max(gone, key=lambda p: p.lastseen)
        ago = (now - previous.lastseen).total_seconds()
        return (
            f"; took over from {previous.identity}, last seen {ago:.1f}s ago "
            f"(lifetime {previous.lifetime_seconds:.0f}s), after standing by {stood:.1f}s"
        )

    async def _decide(self) -> None:
        wait = float("inf")
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), None if wait == float("inf") else wait)
            self._changed.clear()
            try:
                wait = await self.decide()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("peering %s: deciding the standing failed", self._name)
                wait = 1.0

    async def _follow(self, scope: str | None) -> None:
        kind = "KopfPeering" if scope is not None else "ClusterKopfPeering"
        backoff = 0.5
        while True:
            try:
                listing = await self._kube.list(kind, scope)
                for item in listing.get("items", []):
                    self.observe(scope, item)
                version = str((listing.get("metadata") or {}).get("resourceVersion", ""))
                backoff = 0.5
                while True:
                    async for event in self._kube.watch(
                        kind, namespace=scope, resource_version=version, timeout_seconds=300
                    ):
                        obj = event.get("object") or {}
                        if event.get("type") == "ERROR":
                            raise RuntimeError(f"peering watch error {obj.get('code')}")
                        version = (obj.get("metadata") or {}).get("resourceVersion", version)
                        if event.get("type") in ("ADDED", "MODIFIED"):
                            self.observe(scope, obj)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the watch must survive an API server restart
                logger.warning("peering watch failed (%s); retrying in %.1fs", error, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)


async def step_down(
    reason: str,
    stop: Callable[[], Awaitable[None]],
    *,
    grace_seconds: float = 10.0,
    exit_process: Callable[[int], NoReturn] = os._exit,
) -> NoReturn:
    """Stop the writers (``stop``, bounded), then end the process with ``EXIT_DEMOTED``.

    ``os._exit``, not a graceful kopf shutdown: that would run handlers and keep-alives for
    seconds more, next to the new leader. The audit trail is flushed by ``stop``.
    """
    logger.error("%s: stopping and exiting with code %d, to come back as a standby",
                 reason, EXIT_DEMOTED)  # fmt: skip
    try:
        await asyncio.wait_for(stop(), grace_seconds)
    except Exception:
        logger.exception("stopping before the exit failed; exiting anyway")
    for handler in logging.getLogger().handlers:
        handler.flush()  # os._exit skips it; the reason must reach the pod's log
    exit_process(EXIT_DEMOTED)
