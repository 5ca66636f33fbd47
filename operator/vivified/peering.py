"""Who leads a kopf peering: the pure half of high availability (no I/O).

kopf lets the live peer with the highest priority work and pauses the others; equal priorities
pause everyone. Two choices are made here:

* An unset priority means **oldest wins**: it is derived from the process's start time, so a
  replica that restarts (a rejoining pod) ranks below the one that took over while it was away,
  and never takes the lead back. Random priorities did: half the time a restarted replica
  outranked the leader and demoted it mid-work.
* A replica that **led and then stops leading** (outranked, or tied) must not keep writing: its
  own watches, queue, monitor and timers run outside kopf's pause. ``after`` says ``exit`` and
  the shell ends the process (``shell/leadership.py``), so its Deployment restarts it as a
  standby.

The status format is kopf's (``kopf._core.engines.peering.Peer``): ``{identity: {"priority":
int, "lifetime": seconds, "lastseen": ISO 8601}}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from vivified_sdk.timestamps import parse_rfc3339, require_aware

#: Derived priorities count down from here by microseconds since the epoch: positive int64
#: for millennia, distinct for replicas started a microsecond apart, and above any small
#: number an operator would set by hand (set ``VIVIFIED_PEERING_PRIORITY`` above this to
#: outrank them, e.g. a debugging session; below it to stand by).
PRIORITY_CEILING = 2**62

Standing = Literal["leading", "outranked", "tied"]
Action = Literal["lead", "stand-by", "exit"]


def priority_for(started_at: datetime) -> int:
    """The priority of a replica started at ``started_at``: earlier starts rank higher."""
    moment = require_aware(started_at, "started_at")
    return PRIORITY_CEILING - int(moment.timestamp() * 1_000_000)


@dataclass(frozen=True)
class Peer:
    """One replica's keep-alive in the peering object's status."""

    identity: str
    priority: int
    lastseen: datetime
    lifetime_seconds: float

    @property
    def deadline(self) -> datetime:
        return self.lastseen + timedelta(seconds=self.lifetime_seconds)

    def alive(self, now: datetime) -> bool:
        return self.deadline > now


def peers_from_status(status: Mapping[str, Any] | None) -> list[Peer]:
    """kopf's status entries; an entry it could not have written is skipped, not fatal."""
    peers = []
    for identity, info in (status or {}).items():
        if not isinstance(info, Mapping):
            continue
        try:
            peers.append(
                Peer(
                    identity=str(identity),
                    priority=int(info.get("priority", 0)),
                    lastseen=parse_rfc3339(str(info["lastseen"])),
                    lifetime_seconds=float(info.get("lifetime", 60)),
                )
            )
        except (KeyError, TypeError, ValueError):
            continue
    return peers


def blockers(peers: Iterable[Peer], me: str, priority: int, now: datetime) -> list[Peer]:
    """The live peers that make kopf pause this replica (higher or equal priority)."""
    return [p for p in peers if p.identity != me and p.alive(now) and p.priority >= priority]


def standing(peers: Iterable[Peer], me: str, priority: int, now: datetime) -> Standing:
    """kopf's rule (``process_peering_event``): outranked beats tied beats leading."""
    found = blockers(peers, me, priority, now)
    if any(p.priority > priority for p in found):
        return "outranked"
    return "tied" if found else "leading"


def worst(standings: Iterable[Standing]) -> Standing:
    """One standing over several peering objects: kopf pauses if any of them says so."""
    found = set(standings)
    return "outranked" if "outranked" in found else "tied" if "tied" in found else "leading"


def seconds_to_recheck(peers: Iterable[Peer], me: str, priority: int, now: datetime) -> float:
    """When the standing may change without a write: the first blocker's deadline (kopf then
    touches the object and takes over); ``inf`` when nothing blocks."""
    deadlines = [(p.deadline - now).total_seconds() for p in blockers(peers, me, priority, now)]
    return max(0.0, min(deadlines)) if deadlines else float("inf")


def after(led: bool, now_standing: Standing) -> Action:
    """What a replica does on a new standing, given whether it has led since it started."""
    if now_standing == "leading":
        return "lead"
    return "exit" if led else "stand-by"
