"""Invariants 8-10 (tests/chaos/lane_invariants.py): one healthy history, then one breakage per
row, each with the reason it must be caught (or, for the allowed rows, why it must not be)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import pytest
from tests.chaos.lane_invariants import (
    Fault,
    Request,
    check_errors,
    check_events,
    check_trail,
    in_flight,
)

KILL = Fault("core-0", at=10.0, until=10.0)
NATS = Fault("nats", at=20.0, until=23.0)


def ok(kind: str, key: str, t: float, replica: str = "core-1", agent: str = "caller") -> Request:
    return Request(kind, key, t, t + 0.1, True, replica, agent)


def failed(kind: str, key: str, t0: float, t1: float, replica: str = "core-0") -> Request:
    return Request(kind, key, t0, t1, False, replica, "caller", "ConnectError")


def record(action: str, agent: str = "caller", **entity: str) -> dict[str, object]:
    return {"writer": "core-0", "action": action, "agent": {"type": "plugin", "id": agent},
            "entity": entity, "outcome": "allowed"}  # fmt: skip


# --- invariant 10: errors only in flight at a fault, retries succeed -----------------------

RETRIED = [failed("invoke", "c1", 9.9, 10.05), ok("invoke", "c1", 10.2)]
ERRORS: list[tuple[str, list[Request], Sequence[Fault], list[str]]] = [
    ("no errors at all", [ok("invoke", "c1", 1.0)], [KILL], []),
    ("in flight on the killed replica, retried with success", RETRIED, [KILL], []),
    (
        "an error with no fault at all is the bug this invariant is for",
        [failed("invoke", "c1", 1.0, 1.1), ok("invoke", "c1", 1.2)],
        [],
        ["invoke c1 on core-0 (ConnectError): failed outside every fault"],
    ),
    (
        "started after the replica was out of the endpoints: it must not have been sent there",
        [failed("invoke", "c1", 10.5, 10.6), ok("invoke", "c1", 10.7)],
        [KILL],
        ["invoke c1 on core-0 (ConnectError): failed outside every fault"],
    ),
    (
        "ended before the kill: that error was not the fault's",
        [failed("invoke", "c1", 9.0, 9.5), ok("invoke", "c1", 11.0)],
        [KILL],
        ["invoke c1 on core-0 (ConnectError): failed outside every fault"],
    ),
    (
        "in flight at the time of the kill but on the other replica (which stayed up)",
        [failed("tunnel", "t1", 9.9, 10.1, replica="core-1"), ok("tunnel", "t1", 10.2)],
        [KILL],
        ["tunnel t1 on core-1 (ConnectError): failed outside every fault"],
    ),
    (
        "NATS down hits every replica for as long as it is down",
        [failed("publish", "e1", 21.0, 21.5, replica="core-1"), ok("publish", "e1", 23.5)],
        [NATS],
        [],
    ),
    (
        "a failed request that was never retried successfully",
        [failed("invoke", "c1", 9.9, 10.05), failed("invoke", "c1", 10.1, 10.2)],
        [KILL],
        [
            "invoke c1 on core-0 (ConnectError): failed outside every fault",
            "invoke c1 on core-0 (ConnectError): no later attempt succeeded",  # once per request
        ],
    ),
    (
        "a success before the failure is not its retry",
        [ok("invoke", "c1", 9.0), failed("invoke", "c1", 9.9, 10.05)],
        [KILL],
        ["invoke c1 on core-0 (ConnectError): no later attempt succeeded"],
    ),
]


@pytest.mark.parametrize(
    ("requests", "faults", "want"),
    [pytest.param(r, f, w, id=why) for why, r, f, w in ERRORS],
)
def test_invariant_10(requests: list[Request], faults: Sequence[Fault], want: list[str]) -> None:
    assert sorted(check_errors(requests, faults)) == sorted(want)


def test_in_flight_is_inclusive_at_both_ends() -> None:
    """A request that ends exactly at the kill (its answer lost) was in flight."""
    assert in_flight(failed("invoke", "c", 9.0, 10.0), KILL)
    assert in_flight(failed("invoke", "c", 10.0, 10.2), KILL)


# --- invariant 8: no acknowledged event lost ----------------------------------------------

ACKED = [ok("publish", "e1", 1.0), ok("publish", "e2", 2.0)]
EVENTS: list[tuple[str, list[Request], Mapping[str, Sequence[str]], tuple[str, ...], int]] = [
    ("all delivered once", ACKED, {"sub": ["e1", "e2"]}, (), 0),
    (
        "redelivered after a kill: duplicates counted, not a violation",
        ACKED,
        {"sub": ["e1", "e2", "e1", "e2", "e2"]},
        (),
        3,
    ),
    (
        "an acknowledged event that never arrived",
        ACKED,
        {"sub": ["e1"]},
        ("sub: 1 acknowledged event(s) lost: e2",),
        0,
    ),
    (
        "every subscriber counts on its own",
        ACKED,
        {"a": ["e1", "e2"], "b": ["e2"]},
        ("b: 1 acknowledged event(s) lost: e1",),
        0,
    ),
    (
        "a refused publish need not arrive",
        [*ACKED, failed("publish", "e3", 1.0, 1.1)],
        {"sub": ["e1", "e2"]},
        (),
        0,
    ),
    (
        "a failed attempt later acknowledged must arrive",
        [*ACKED, failed("publish", "e3", 1.0, 1.1), ok("publish", "e3", 2.0)],
        {"sub": ["e1", "e2"]},
        ("sub: 1 acknowledged event(s) lost: e3",),
        0,
    ),
    (
        "a wiped store loses many; the finding stays short",
        [ok("publish", f"e{i}", float(i)) for i in range(9)],
        {"sub": []},
        ("sub: 9 acknowledged event(s) lost: e0, e1, e2, e3, e4 ...",),
        0,
    ),
]


@pytest.mark.parametrize(
    ("requests", "received", "lost", "duplicates"),
    [pytest.param(r, got, lost, d, id=why) for why, r, got, lost, d in EVENTS],
)
def test_invariant_8(
    requests: list[Request],
    received: Mapping[str, Sequence[str]],
    lost: tuple[str, ...],
    duplicates: int,
) -> None:
    found = check_events(requests, received)
    assert found.lost == lost
    assert found.duplicates == duplicates


# --- invariant 9: the trail verifies and covers every answer ------------------------------

ANSWERED = [ok("publish", "e1", 1.0), ok("invoke", "c1", 1.0), ok("tunnel", "t1", 1.0)]
FULL = [
    record("event.publish", event_id="e1"),
    record("invoke", target="t", operation="o"),
    record("egress.decision", host="h", port="443"),
    {**record("heartbeat"), "writer": "core-1"},
]
TRAILS: list[tuple[str, list[dict[str, object]], list[str], list[Request], list[str]]] = [
    ("complete and intact", FULL, [], ANSWERED, []),
    (
        "a chain break found by verify_trail is a violation",
        FULL,
        ["record 3 (writer core-0, seq 3): prev does not match"],
        ANSWERED,
        ["trail: record 3 (writer core-0, seq 3): prev does not match"],
    ),
    (
        "a replica that wrote nothing (its chain lost)",
        FULL[:3],
        [],
        ANSWERED,
        ["trail: no chain of writer core-1"],
    ),
    (
        "an acknowledged event without its record",
        FULL[1:],
        [],
        ANSWERED,
        ["trail: no event.publish record of acknowledged event e1"],
    ),
    (
        "two answered calls, one record",
        FULL,
        [],
        [*ANSWERED, ok("invoke", "c2", 2.0)],
        ["trail: 2 answered invoke of caller, only 1 records"],
    ),
    (
        "an opened tunnel without its decision record",
        [FULL[0], FULL[1], FULL[3]],
        [],
        ANSWERED,
        ["trail: 1 answered egress.decision of caller, only 0 records"],
    ),
    (
        "a refused record does not count for an answered call",
        [FULL[0], {**FULL[1], "outcome": "refused"}, FULL[2], FULL[3]],
        [],
        ANSWERED,
        ["trail: 1 answered invoke of caller, only 0 records"],
    ),
    ("failed attempts need no record", FULL, [], [*ANSWERED, failed("invoke", "c9", 1, 2)], []),
]


@pytest.mark.parametrize(
    ("records", "verified", "requests", "want"),
    [pytest.param(r, v, q, w, id=why) for why, r, v, q, w in TRAILS],
)
def test_invariant_9(
    records: list[dict[str, object]], verified: list[str], requests: list[Request], want: list[str]
) -> None:
    assert check_trail(records, verified, requests, ["core-0", "core-1"]) == want


def test_a_record_of_another_agent_does_not_cover_a_call() -> None:
    other = [dataclasses.replace(ANSWERED[1], agent="stranger")]
    assert check_trail(FULL, [], other, ["core-0"]) == [
        "trail: 1 answered invoke of stranger, only 0 records"
    ]
