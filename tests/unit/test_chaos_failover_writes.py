"""`count_writes`: how the failover scenarios (processes and real pods) judge the audit log."""

from __future__ import annotations

from typing import Any

import pytest
from tests.chaos.failover import count_writes

KILLED_AT = 1_700_000_100.0
OLD, NEW = "/old/", "/new/"


def event(verb: str, agent: str, second: float, code: int = 200, ns: str = "p") -> dict[str, Any]:
    stamp = f"2023-11-14T22:{int(second) // 60:02d}:{int(second) % 60:02d}.000000Z"
    return {
        "verb": verb,
        "userAgent": agent,
        "objectRef": {"namespace": ns, "resource": "vivifiedplugins", "name": "x"},
        "responseStatus": {"code": code},
        "requestReceivedTimestamp": stamp,
    }


# 1_700_000_100 is 2023-11-14T22:15:00Z: second 900 of the hour is the kill.
BEFORE, AFTER = 899.0, 901.0


def by_old(verb: str, second: float, code: int = 200, ns: str = "p") -> dict[str, Any]:
    return event(verb, f"vivified-operator{OLD}", second, code, ns)


def by_new(verb: str, second: float, code: int = 200) -> dict[str, Any]:
    return event(verb, f"vivified-operator{NEW}", second, code)


@pytest.mark.parametrize(
    ("reason", "events", "conflicts", "idle", "first"),
    [
        ("old leader before the kill: its job", [by_old("patch", BEFORE)], 0, 0, None),
        ("old leader after the kill: not leading", [by_old("patch", AFTER)], 0, 1, None),
        ("new leader before the kill: not leading", [by_new("patch", BEFORE)], 0, 1, None),
        ("new leader after the kill: its first", [by_new("patch", AFTER)], 0, 0, AFTER),
        ("a refused write is no first write", [by_new("patch", AFTER, 403)], 0, 0, None),
        ("a 409 to an operator is a conflict", [by_new("update", AFTER, 409)], 1, 0, None),
        ("a 409 to a person is not", [event("update", "kubectl", AFTER, 409)], 0, 0, None),
        ("reads do not count", [by_old("get", AFTER)], 0, 0, None),
        ("other namespaces: not counted", [by_old("patch", AFTER, ns="elsewhere")], 0, 0, None),
    ],
)  # fmt: skip
def test_writes_are_sorted_by_who_and_when(
    reason: str, events: list[dict[str, Any]], conflicts: int, idle: int, first: float | None
) -> None:
    writes = count_writes(events, ("p",), KILLED_AT, old_leader=OLD, new_leader=NEW)
    assert len(writes.conflicts) == conflicts, reason
    assert len(writes.while_standing_by) == idle, reason
    expected = None if first is None else KILLED_AT - 900 + first
    assert writes.first_write == expected, reason


def test_the_first_write_is_the_earliest() -> None:
    events = [event("patch", f"k{NEW}", 905.0), event("create", f"k{NEW}", 902.0)]
    writes = count_writes(events, ("p",), KILLED_AT, old_leader=OLD, new_leader=NEW)
    assert writes.first_write == KILLED_AT + 2
