"""What the core knows about the plugins it serves: the seam every lane reads through.

The core keeps a watch-fed, in-memory view of VivifiedPlugins (its implementation lives next to
the core's server); lanes and the Admin UI only see this protocol, so unit tests use
:class:`StaticDirectory`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from vivified.manifest import PluginManifest
from vivified.resource import Health, Phase


@dataclass(frozen=True)
class PluginRecord:
    """One plugin as the core sees it (from the CR's spec and status)."""

    plugin_id: str
    namespace: str
    manifest: PluginManifest
    phase: Phase
    health: Health = "unknown"
    enabled: bool = True
    port: int = 8000
    generation: int = 0
    status: Mapping[str, object] = field(default_factory=dict)
    """The CR's raw status, for views that show it (never holds a token)."""

    @property
    def active(self) -> bool:
        return self.phase == "Active" and self.enabled


class PluginDirectory(Protocol):
    """Read-only lookup of plugins by id."""

    def get(self, plugin_id: str) -> PluginRecord | None: ...

    def all(self) -> Iterable[PluginRecord]: ...


class StaticDirectory:
    """A fixed directory: the fake for unit tests and out-of-cluster tools."""

    def __init__(self, records: Iterable[PluginRecord] = ()) -> None:
        self._records: dict[str, PluginRecord] = {r.plugin_id: r for r in records}

    def get(self, plugin_id: str) -> PluginRecord | None:
        return self._records.get(plugin_id)

    def all(self) -> Iterator[PluginRecord]:
        return iter(list(self._records.values()))

    def put(self, record: PluginRecord) -> None:
        self._records[record.plugin_id] = record

    def remove(self, plugin_id: str) -> None:
        self._records.pop(plugin_id, None)
