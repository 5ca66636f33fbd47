"""The probe scheduler's due times, with plain numbers for the clock (no sleeping)."""

from __future__ import annotations

import pytest

from vivified.schedule import DueQueue, first_due, next_due, retry_in_flight


def test_keys_come_out_in_due_order_only_once_due() -> None:
    queue: DueQueue[str] = DueQueue()
    assert queue.push("b", 1, 20.0)
    assert queue.push("a", 1, 10.0), "earlier than the head: the sleeper must wake"
    assert not queue.push("c", 1, 30.0)
    assert queue.next_due() == 10.0
    assert queue.pop_due(9.9) is None
    assert queue.pop_due(10.0) == ("a", 1, 10.0)
    assert queue.pop_due(25.0) == ("b", 1, 20.0)
    assert queue.pop_due(25.0) is None
    assert len(queue) == 1


def test_equal_due_times_keep_their_order() -> None:
    queue: DueQueue[str] = DueQueue()
    for key in "xyz":
        queue.push(key, 1, 5.0)
    assert [queue.pop_due(5.0) for _ in range(3)] == [("x", 1, 5.0), ("y", 1, 5.0), ("z", 1, 5.0)]


@pytest.mark.parametrize(
    ("reason", "previous", "interval", "now", "expected"),
    [
        ("on time: fixed rate from the previous due time", 100.0, 30.0, 101.0, 130.0),
        ("late probe: no drift, still from the due time", 100.0, 30.0, 129.0, 130.0),
        ("saturated: as soon as possible, no burst", 100.0, 30.0, 200.0, 200.0),
    ],
)
def test_next_due(
    reason: str, previous: float, interval: float, now: float, expected: float
) -> None:
    assert next_due(previous, interval, now) == expected, reason


@pytest.mark.parametrize(
    ("reason", "interval", "heartbeat", "fraction", "expected"),
    [
        ("a heartbeat plugin gets one interval to say hello", 30.0, True, 0.5, 1030.0),
        ("probes spread over five seconds at most", 30.0, False, 0.5, 1002.5),
        ("a short interval bounds the spread", 2.0, False, 0.5, 1001.0),
        ("the spread starts now", 30.0, False, 0.0, 1000.0),
    ],
)
def test_first_due(
    reason: str, interval: float, heartbeat: bool, fraction: float, expected: float
) -> None:
    assert first_due(1000.0, interval, heartbeat=heartbeat, fraction=fraction) == expected, reason


def test_a_probe_still_in_flight_is_looked_at_again_soon() -> None:
    assert retry_in_flight(50.0, 30.0) == 51.0
    assert retry_in_flight(50.0, 0.5) == 50.5
