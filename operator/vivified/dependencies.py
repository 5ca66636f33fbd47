"""Dependency analysis between plugins: what is missing, what is not yet Active, and cycles.

Plugins name dependencies by manifest id. The graph spans the whole watched scope (ids are unique
cluster-wide), and a broken or missing dependency only ever affects its dependents.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass


@dataclass(frozen=True)
class DependencyVerdict:
    """The state of one plugin's dependencies."""

    missing: tuple[str, ...] = ()
    not_active: tuple[str, ...] = ()
    cycle: tuple[str, ...] = ()

    @property
    def ready(self) -> bool:
        return not (self.missing or self.not_active or self.cycle)

    @property
    def reason(self) -> str:
        if self.cycle:
            return "DependencyCycle"
        if self.missing:
            return "DependenciesMissing"
        if self.not_active:
            return "DependenciesNotActive"
        return "DependenciesActive"

    @property
    def message(self) -> str:
        parts: list[str] = []
        if self.cycle:
            parts.append("dependency cycle: " + " -> ".join(self.cycle))
        if self.missing:
            parts.append("missing: " + ", ".join(self.missing))
        if self.not_active:
            parts.append("not active yet: " + ", ".join(self.not_active))
        return "; ".join(parts) if parts else "all dependencies are Active"


def find_cycle(start: str, graph: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    """The shortest dependency path from ``start`` back to itself, or ``()`` if there is none.

    Breadth-first, so every member of a cycle reports the same loop seen from itself.
    """
    parents: dict[str, str] = {}
    frontier = [start]
    seen = {start}
    while frontier:
        next_frontier: list[str] = []
        for node in frontier:
            for dep in graph.get(node, ()):
                if dep == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return (start, *reversed(path[:-1]), start) if node != start else (start, start)
                if dep not in seen:
                    seen.add(dep)
                    parents[dep] = node
                    next_frontier.append(dep)
        frontier = next_frontier
    return ()


def analyze(
    plugin_id: str,
    graph: Mapping[str, Sequence[str]],
    active: Set[str],
) -> DependencyVerdict:
    """Judge ``plugin_id``'s dependencies against the known plugins.

    ``graph`` maps every known plugin id to the ids it depends on; ``active`` holds the ids whose
    plugins are Active.
    """
    deps = tuple(dict.fromkeys(graph.get(plugin_id, ())))
    missing = tuple(d for d in deps if d not in graph)
    not_active = tuple(d for d in deps if d in graph and d not in active)
    return DependencyVerdict(
        missing=missing,
        not_active=not_active,
        cycle=find_cycle(plugin_id, graph),
    )
