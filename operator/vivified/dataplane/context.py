"""What every part of the core shares: one :class:`CoreContext` per process.

Lanes get it through ``setup(app, ctx)`` (see the package docstring) and read plugins only
through ``ctx.directory``, decide with the pure policy modules, and report every decision
with ``await ctx.auditor.record(...)`` and ``ctx.metrics``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from aiohttp import web

from vivified.audit.hook import Auditor, NullAuditor
from vivified.dataplane.auth import Authenticator
from vivified.dataplane.directory import PluginDirectory, PluginRecord
from vivified.dataplane.metrics import Registry
from vivified.dataplane.settings import CoreSettings
from vivified.dataplane.trust import TrustState
from vivified.health import Heartbeat

__all__ = ["CONTEXT", "CoreContext", "HeartbeatSink", "NullHeartbeats", "utc_now"]


def utc_now() -> datetime:
    return datetime.now(UTC)


class HeartbeatSink(Protocol):
    """Where verified heartbeats go (in cluster: a Lease per plugin, ``heartbeats.py``)."""

    async def record(self, plugin: PluginRecord, beat: Heartbeat, now: datetime) -> None: ...


class NullHeartbeats:
    """Accepts heartbeats and forgets them (tests, out-of-cluster runs)."""

    def __init__(self) -> None:
        self.beats: list[tuple[str, Heartbeat]] = []

    async def record(self, plugin: PluginRecord, beat: Heartbeat, now: datetime) -> None:
        self.beats.append((plugin.plugin_id, beat))


@dataclass
class CoreContext:
    settings: CoreSettings
    directory: PluginDirectory
    trust: TrustState
    auditor: Auditor = field(default_factory=NullAuditor)
    metrics: Registry = field(default_factory=Registry)
    clock: Callable[[], datetime] = utc_now
    heartbeats: HeartbeatSink = field(default_factory=NullHeartbeats)
    #: Readiness beyond the trust documents (the watches have listed once).
    synced: Callable[[], bool] = lambda: True
    #: Lanes' own readiness (the event lane: connected to JetStream, or its grace is over).
    ready_checks: list[Callable[[], bool]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.authenticator = Authenticator(self.trust, self.directory, self.settings, self.clock)

    @property
    def ready(self) -> bool:
        return self.trust.ready and self.synced() and all(check() for check in self.ready_checks)


CONTEXT: web.AppKey[CoreContext] = web.AppKey("vivified_core_context", CoreContext)
