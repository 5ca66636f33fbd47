"""A plugin as a lane's pure decision sees it: one protocol for every lane.

``vivified.dataplane.directory.PluginRecord`` satisfies it; unit tests pass small frozen
dataclasses. The operator lane also reads the plugin's ``health`` and the event lane its
``phase``, so each adds that one property on top.
"""

from __future__ import annotations

from typing import Protocol

from vivified.manifest import PluginManifest


class Party(Protocol):
    """The identity, manifest and activity of a plugin (no I/O behind any property)."""

    @property
    def plugin_id(self) -> str: ...

    @property
    def manifest(self) -> PluginManifest: ...

    @property
    def active(self) -> bool: ...
