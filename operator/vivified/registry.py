"""An in-memory index of every watched VivifiedPlugin, fed by the watch stream.

It answers the questions reconcile needs about *other* plugins without an API call: who owns a
manifest id, which ids are Active, who depends on whom, and whose verdict may have changed when
one plugin changes. Bodies are read defensively: the index sees objects before validation.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from vivified.objects import is_older, slim

PluginKey = tuple[str, str]
"""(namespace, name) of a VivifiedPlugin."""


@dataclass(frozen=True)
class PluginEntry:
    """What the index keeps of one plugin."""

    key: PluginKey
    plugin_id: str | None
    dependencies: tuple[str, ...]
    phase: str | None
    created: str
    body: Mapping[str, Any]
    deleting: bool = False
    """Marked for deletion: it holds no id and counts as no one's dependency any more."""
    permission_facts: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
    """(traits, data classification) as written: what other plugins' permissions depend on."""


def _entry(key: PluginKey, body: Mapping[str, Any]) -> PluginEntry:
    spec = body.get("spec") if isinstance(body.get("spec"), Mapping) else {}
    manifest = spec.get("manifest") if isinstance(spec, Mapping) else None
    manifest = manifest if isinstance(manifest, Mapping) else {}
    raw_id = manifest.get("id")
    raw_deps = manifest.get("dependencies")
    deps = tuple(d for d in raw_deps if isinstance(d, str)) if isinstance(raw_deps, list) else ()
    status = body.get("status") if isinstance(body.get("status"), Mapping) else {}
    phase = status.get("phase") if isinstance(status, Mapping) else None
    metadata = body.get("metadata") if isinstance(body.get("metadata"), Mapping) else {}
    created = metadata.get("creationTimestamp", "") if isinstance(metadata, Mapping) else ""
    security = manifest.get("security") if isinstance(manifest.get("security"), Mapping) else {}
    raw_classes = security.get("data_classification") if isinstance(security, Mapping) else None
    return PluginEntry(
        key=key,
        plugin_id=raw_id if isinstance(raw_id, str) else None,
        dependencies=deps,
        phase=phase if isinstance(phase, str) else None,
        created=str(created or ""),
        body=body,
        deleting=isinstance(metadata, Mapping) and bool(metadata.get("deletionTimestamp")),
        permission_facts=(_strings(manifest.get("traits")), _strings(raw_classes)),
    )


def _strings(value: object) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


class PluginRegistry:
    """The latest known body of every plugin, with id and dependency lookups."""

    def __init__(self) -> None:
        self._entries: dict[PluginKey, PluginEntry] = {}
        self._by_id: dict[str, set[PluginKey]] = {}
        #: dependency id -> the keys of the plugins that list it (reverse edges).
        self._by_dependency: dict[str, set[PluginKey]] = {}

    def _index(self, entry: PluginEntry | None, *, add: bool) -> None:
        if entry is None:
            return
        names = [(self._by_dependency, dep) for dep in set(entry.dependencies)]
        if entry.plugin_id:
            names.append((self._by_id, entry.plugin_id))
        for index, name in names:
            keys = index.setdefault(name, set())
            if add:
                keys.add(entry.key)
            else:
                keys.discard(entry.key)
                if not keys:
                    del index[name]

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: PluginKey) -> PluginEntry | None:
        return self._entries.get(key)

    def keys(self) -> list[PluginKey]:
        return list(self._entries)

    def upsert(self, key: PluginKey, body: Mapping[str, Any]) -> set[PluginKey]:
        """Record ``body``; return the *other* plugins whose verdict this may change.

        An older copy than the one held (a late write response, a lagging watch) is ignored:
        reconcile must never read a state that the index has already seen replaced.
        """
        before = self._entries.get(key)
        if before is not None and is_older(body, before.body):
            return set()
        after = _entry(key, slim(dict(body)))
        self._index(before, add=False)
        self._entries[key] = after
        self._index(after, add=True)
        if before is not None and (
            before.plugin_id == after.plugin_id
            and before.phase == after.phase
            and before.dependencies == after.dependencies
            and before.deleting == after.deleting
            and before.permission_facts == after.permission_facts
        ):
            return set()
        return self._affected_by(before, after)

    def release(self, key: PluginKey) -> set[PluginKey]:
        """A plugin being deleted gives up its id now; return the plugins this may change."""
        entry = self._entries.get(key)
        if entry is None:
            return set()
        if not entry.deleting:
            self._entries[key] = PluginEntry(**{**entry.__dict__, "deleting": True})
        return self._affected_by(entry)

    def remove(self, key: PluginKey) -> set[PluginKey]:
        """Forget ``key``; return the plugins whose verdict this may change."""
        before = self._entries.pop(key, None)
        self._index(before, add=False)
        return self._affected_by(before, None)

    def _affected_by(self, *entries: PluginEntry | None) -> set[PluginKey]:
        """Other claimants of the ids, their dependents, and the plugins they depend on (whose
        ``callableBy`` may change). Found through the indexes: O(neighbours), not O(plugins)."""
        ids = {e.plugin_id for e in entries if e is not None and e.plugin_id}
        targets = {d for e in entries if e is not None for d in e.dependencies}
        changed_keys = {e.key for e in entries if e is not None}
        affected: set[PluginKey] = set()
        for plugin_id in ids:
            affected |= self._by_id.get(plugin_id, set())
            affected |= self._by_dependency.get(plugin_id, set())
        for target in targets:
            affected |= self._by_id.get(target, set())
        return affected - changed_keys

    def dependents_of(self, plugin_id: str) -> list[PluginEntry]:
        """The id owners (not duplicates, not being deleted) that list ``plugin_id``."""
        found = (self._entries[k] for k in self._by_dependency.get(plugin_id, ()))
        return sorted(
            (e for e in found if e.plugin_id and self.owner_of(e.plugin_id) == e.key),
            key=lambda e: e.key,
        )

    def owner_of(self, plugin_id: str) -> PluginKey | None:
        """The plugin that holds ``plugin_id``: the oldest claimant, ties broken by key."""
        claimants = [
            self._entries[k]
            for k in self._by_id.get(plugin_id, ())
            if not self._entries[k].deleting
        ]
        if not claimants:
            return None
        return min(claimants, key=lambda e: (e.created or "~", e.key)).key

    def graph_view(self) -> Mapping[str, tuple[str, ...]]:
        """``graph()`` without building it: each lookup is O(claimants of that id).

        Reconcile asks about one plugin's dependencies (and their dependencies, for cycles);
        materialising the whole graph for that made each reconcile O(plugins).
        """
        return _GraphView(self)

    def active_view(self) -> AbstractSet[str]:
        """``active_ids()`` without building it: membership is O(claimants of that id)."""
        return _ActiveView(self)

    def graph(self) -> dict[str, tuple[str, ...]]:
        """Dependency graph over the ids' owners (duplicates do not count)."""
        result: dict[str, tuple[str, ...]] = {}
        for entry in self._entries.values():
            if entry.plugin_id and self.owner_of(entry.plugin_id) == entry.key:
                result[entry.plugin_id] = entry.dependencies
        return result

    def active_ids(self) -> set[str]:
        return {
            e.plugin_id
            for e in self._entries.values()
            if e.plugin_id and e.phase == "Active" and self.owner_of(e.plugin_id) == e.key
        }


class _GraphView(Mapping[str, tuple[str, ...]]):
    def __init__(self, registry: PluginRegistry) -> None:
        self._registry = registry

    def __getitem__(self, plugin_id: str) -> tuple[str, ...]:
        owner = self._registry.owner_of(plugin_id)
        if owner is None:
            raise KeyError(plugin_id)
        return self._registry._entries[owner].dependencies

    def __iter__(self) -> Iterator[str]:
        return (i for i in list(self._registry._by_id) if self._registry.owner_of(i) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class _ActiveView(AbstractSet[str]):
    def __init__(self, registry: PluginRegistry) -> None:
        self._registry = registry

    def __contains__(self, plugin_id: object) -> bool:
        if not isinstance(plugin_id, str):
            return False
        owner = self._registry.owner_of(plugin_id)
        return owner is not None and self._registry._entries[owner].phase == "Active"

    def __iter__(self) -> Iterator[str]:
        return (i for i in list(self._registry._by_id) if i in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)
