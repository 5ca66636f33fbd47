"""Selecting records: by plugin (as actor or as target), time window, action and outcome."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Query:
    """What ``vivified audit query`` asks for; empty fields match everything."""

    plugin: str | None = None
    since: str | None = None
    until: str | None = None
    actions: tuple[str, ...] = ()
    outcome: str | None = None

    def matches(self, record: Mapping[str, object]) -> bool:
        time = str(record.get("time", ""))
        if self.since is not None and time < self.since:
            return False
        if self.until is not None and time >= self.until:
            return False
        if self.outcome is not None and record.get("outcome") != self.outcome:
            return False
        if self.actions and not any(_action_matches(a, record) for a in self.actions):
            return False
        return self.plugin is None or self.plugin in plugins_of(record)


def _action_matches(pattern: str, record: Mapping[str, object]) -> bool:
    action = str(record.get("action", ""))
    if pattern.endswith((".", "*")):
        return action.startswith(pattern.rstrip("*"))
    return action == pattern or action.startswith(pattern + ".")


def plugins_of(record: Mapping[str, object]) -> set[str]:
    """Plugin ids a record concerns: the acting plugin and any plugin it acted on."""
    found: set[str] = set()
    agent = record.get("agent")
    if isinstance(agent, Mapping) and agent.get("type") == "plugin":
        found.add(str(agent.get("id")))
    entity = record.get("entity")
    if isinstance(entity, Mapping):
        for name in ("plugin", "target", "subscriber"):
            if isinstance(entity.get(name), str):
                found.add(str(entity[name]))
    return found


def select(records: Iterable[Mapping[str, object]], query: Query) -> Iterator[Mapping[str, object]]:
    return (r for r in records if query.matches(r))
