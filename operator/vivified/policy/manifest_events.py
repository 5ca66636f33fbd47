"""Manifest rules for Vivified's event-lane extension: ``events.publishes``/``subscribes``.

Pure and tolerant of any input shape (like :mod:`vivified.policy.rules`): returns
``(path, message)`` pairs that the caller records, every problem at once, with did-you-mean.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from vivified import manifest as m
from vivified.event_types import EventTypeRegistry
from vivified.policy.structure import did_you_mean, join_path, show

_TYPE_RE = re.compile(m.EVENT_TYPE_PATTERN)

#: The trait a plugin needs to publish or receive an event of this classification.
CLASSIFICATION_TRAIT = {"pii": "handles_pii", "phi": "handles_phi"}


def event_rules(
    raw: Mapping[str, object], traits: set[str], registry: EventTypeRegistry
) -> list[tuple[str, str]]:
    """Every problem of ``raw['events']`` given the plugin's (canonical) traits."""
    events = raw.get("events")
    if not isinstance(events, Mapping):
        return []
    out: list[tuple[str, str]] = []
    for key in ("publishes", "subscribes"):
        items = events.get(key)
        if not isinstance(items, list):
            continue
        verb = "publish" if key == "publishes" else "subscribe to"
        first: dict[str, int] = {}
        for i, value in enumerate(items[: m.MAX_EVENT_TYPES]):
            if not isinstance(value, str):
                continue
            path = join_path("events", key, i)
            if value in first:
                out.append(
                    (
                        path,
                        f"{show(value)} is listed more than once (first at "
                        f"{join_path('events', key, first[value])})",
                    )
                )
                continue
            first[value] = i
            problem = _type_problem(value, registry)
            if problem:
                out.append((path, problem))
                continue
            event_type = registry.get(value)
            assert event_type is not None  # noqa: S101 - _type_problem checked it
            needed = CLASSIFICATION_TRAIT.get(event_type.classification)
            if needed and needed not in traits:
                out.append(
                    (
                        path,
                        f"event type {value!r} is classified {event_type.classification!r}: "
                        f"a plugin needs the {needed!r} trait to {verb} it; add {needed!r} to "
                        "traits or remove the type",
                    )
                )
    subscribes = events.get("subscribes")
    endpoints = raw.get("endpoints")
    if isinstance(subscribes, list) and subscribes:
        has_path = isinstance(endpoints, Mapping) and m.EVENTS_ENDPOINT in endpoints
        if not has_path:
            out.append(
                (
                    join_path("endpoints", m.EVENTS_ENDPOINT),
                    "a plugin that subscribes to events needs endpoints.events: the path the core "
                    "POSTs deliveries to (e.g. '/events')",
                )
            )
    return out


def _type_problem(value: str, registry: EventTypeRegistry) -> str | None:
    if registry.get(value) is not None:
        return None
    if not _TYPE_RE.match(value) or len(value) > m.EVENT_TYPE_MAX_LENGTH:
        return (
            f"event type {show(value)} is not a valid name; use letters and digits with optional "
            "dotted prefixes, e.g. 'UserCreated' or 'acme.InvoicePaid'"
        )
    hint = did_you_mean(value, registry.names())
    return (
        f"unknown event type {show(value)}: it is not in the installation's event-type "
        f"registry (`vivified events list`){hint}"
    )
