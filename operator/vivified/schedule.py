"""When each plugin's next health check is due: pure scheduling, the clock is an argument.

The monitor in the shell sleeps until ``next_due()`` and asks ``pop_due(now)`` what to run; the
decisions (fixed rate, catch-up when saturated, first checks spread out, stale entries skipped)
live here and are tested with plain numbers instead of sleeping.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

#: First probes of many plugins tracked at once are spread over up to this many seconds.
FIRST_PROBE_SPREAD_SECONDS = 5.0


@dataclass
class DueQueue(Generic[K]):
    """Keys ordered by due time; each push carries the key's generation at that moment."""

    _heap: list[tuple[float, int, K, int]] = field(default_factory=list)
    _sequence: int = 0

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, key: K, generation: int, due: float) -> bool:
        """Schedule ``key``; True when it is now the earliest (a sleeper must wake up)."""
        self._sequence += 1
        item = (due, self._sequence, key, generation)
        heapq.heappush(self._heap, item)
        return self._heap[0] is item

    def generations(self, key: K) -> list[int]:
        """The generations ``key`` is scheduled with (stale ones included)."""
        return [g for _, _, k, g in self._heap if k == key]

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> tuple[K, int, float] | None:
        """The earliest (key, generation, due) if it is due at ``now``, removed; else None."""
        if not self._heap or self._heap[0][0] > now:
            return None
        due, _, key, generation = heapq.heappop(self._heap)
        return key, generation, due


def next_due(previous_due: float, interval: float, now: float) -> float:
    """Fixed rate: one interval after the previous due time; if that already passed (the
    system is saturated), as soon as possible, never a burst of catch-up checks."""
    return max(previous_due + interval, now)


def first_due(now: float, interval: float, *, heartbeat: bool, fraction: float) -> float:
    """The first check: a heartbeat plugin gets one interval to say hello; a probed plugin is
    checked at ``fraction`` (random in [0, 1), the caller's) of the spread window, which is
    one interval or ``FIRST_PROBE_SPREAD_SECONDS``, whichever is shorter."""
    if heartbeat:
        return now + interval
    return now + fraction * min(interval, FIRST_PROBE_SPREAD_SECONDS)


def retry_in_flight(now: float, interval: float) -> float:
    """A probe of the previous target still runs: look again in a second (or one interval)."""
    return now + min(1.0, interval)
