"""The one readiness rule of the parts that connect in the background (audit sink, events)."""

from __future__ import annotations

import pytest

from vivified.dataplane.readiness import ready_for_traffic


@pytest.mark.parametrize(
    ("connected_once", "started_at", "now", "ready", "reason"),
    [
        (False, None, 100.0, False, "not started: never ready"),
        (False, 100.0, 100.0, False, "just started, not connected: unready (no refusals served)"),
        (False, 100.0, 129.9, False, "still within the grace"),
        (False, 100.0, 130.0, True, "grace over: ready anyway (a dependency down everywhere)"),
        (True, 100.0, 100.1, True, "connected once: ready at once"),
        (True, 100.0, 5000.0, True, "connected once: a later outage does not flip it"),
        (True, None, 0.0, True, "connected, whatever the start time"),
    ],
)
def test_ready_for_traffic(
    connected_once: bool, started_at: float | None, now: float, ready: bool, reason: str
) -> None:
    got = ready_for_traffic(connected_once=connected_once, started_at=started_at, now=now, grace=30)
    assert got is ready, reason
