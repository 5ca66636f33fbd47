"""Invariants 8-10 of issue 13 (the lanes), pure checks over what clients and the trail saw.

Invariants 1-7 (tests/chaos/invariants.py) read the API server; these read *histories*: the
requests clients made (:class:`Request`, with when they started and ended and how they went),
the faults injected (:class:`Fault`), the events subscribers received, and the audit trail as
stored. Like a Jepsen checker they judge only what was observed, so the same functions judge a
test's five-second run and a bench's 2,000-event one (table-tested in
tests/unit/test_chaos_lane_invariants.py).

8. no acknowledged event is lost: every event whose publish was answered 2xx reaches every
   subscriber at least once (duplicates are counted, not violations: delivery is at least once);
9. the audit trail verifies: every writer's chain is intact (``vivified.audit.verify``), every
   expected writer has one, and a record exists for every acknowledged event, answered call and
   opened tunnel (a lane answers only once its record is stored);
10. clients see errors only for requests in flight at a fault (started before it ended, ended
    after it began, on the part it hit), and every such request succeeded when retried.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

#: Which audit action records each kind of request (its allowed outcome).
RECORD_ACTION = {"publish": "event.publish", "invoke": "invoke", "tunnel": "egress.decision"}
#: A fault on this target hits every replica (the engine behind the event lane and the trail).
EVERYWHERE = "nats"


@dataclass(frozen=True)
class Request:
    """One attempt a client made: ``kind`` publish | invoke | tunnel, ``key`` names the logical
    request (its retries share it; a publish's key is the event id), ``replica`` the core it
    went to, ``agent`` the plugin that made it; ``started``/``ended`` in monotonic seconds."""

    kind: str
    key: str
    started: float
    ended: float
    ok: bool
    replica: str = ""
    agent: str = ""
    error: str = ""


@dataclass(frozen=True)
class Fault:
    """A fault on ``target`` (``core-0``, ``nats``, ...) from ``at`` until ``until`` (the
    moment it was over for clients: the replica out of the endpoints, NATS serving again)."""

    target: str
    at: float
    until: float


def in_flight(request: Request, fault: Fault) -> bool:
    """Whether the fault could have hit the request: same part, and the times overlap."""
    hits = fault.target in (EVERYWHERE, request.replica)
    return hits and request.started <= fault.until and request.ended >= fault.at


def check_errors(requests: Sequence[Request], faults: Sequence[Fault]) -> list[str]:
    """Invariant 10: every failed attempt was in flight at a fault, and its request has a
    later attempt that succeeded."""
    problems: list[str] = []
    succeeded: dict[tuple[str, str], float] = {}
    for r in requests:
        if r.ok:
            key = (r.kind, r.key)
            succeeded[key] = max(succeeded.get(key, r.started), r.started)
    unretried: dict[tuple[str, str], Request] = {}
    for r in requests:
        if r.ok:
            continue
        where = f"{r.kind} {r.key} on {r.replica or '?'} ({r.error or 'error'})"
        if not any(in_flight(r, f) for f in faults):
            problems.append(f"{where}: failed outside every fault")
        if succeeded.get((r.kind, r.key), float("-inf")) <= r.started:
            unretried[(r.kind, r.key)] = r  # once per request: its last failed attempt
    for r in unretried.values():
        where = f"{r.kind} {r.key} on {r.replica or '?'} ({r.error or 'error'})"
        problems.append(f"{where}: no later attempt succeeded")
    return problems


@dataclass(frozen=True)
class Deliveries:
    """Invariant 8's finding: violations, and the duplicate deliveries seen (not violations)."""

    lost: tuple[str, ...]
    duplicates: int


def check_events(requests: Iterable[Request], received: Mapping[str, Sequence[str]]) -> Deliveries:
    """Invariant 8 over RECEIVED (subscriber -> event ids in arrival order)."""
    acknowledged = sorted({r.key for r in requests if r.kind == "publish" and r.ok})
    lost: list[str] = []
    duplicates = 0
    for subscriber, ids in sorted(received.items()):
        seen = Counter(ids)
        duplicates += sum(n - 1 for n in seen.values())
        missing = [key for key in acknowledged if key not in seen]
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            lost.append(f"{subscriber}: {len(missing)} acknowledged event(s) lost: {shown}")
    return Deliveries(tuple(lost), duplicates)


def check_trail(
    records: Sequence[Mapping[str, object]],
    verify_problems: Sequence[str],
    requests: Iterable[Request],
    writers: Iterable[str],
) -> list[str]:
    """Invariant 9: RECORDS (the trail as stored, parsed) verified with VERIFY_PROBLEMS (what
    ``verify_trail`` found); WRITERS must each have a chain; every answered request a record."""
    problems = [f"trail: {p}" for p in verify_problems]
    chains = {str(r.get("writer")) for r in records}
    problems += [f"trail: no chain of writer {w}" for w in sorted(set(writers) - chains)]
    allowed = [r for r in records if r.get("outcome") == "allowed"]
    event_ids = {
        str(_entity(r).get("event_id")) for r in allowed if r.get("action") == "event.publish"
    }
    stored: Counter[tuple[str, str]] = Counter(
        (str(r.get("action")), str(_agent(r))) for r in allowed
    )
    answered: Counter[tuple[str, str]] = Counter()
    for r in requests:
        if not r.ok:
            continue
        if r.kind == "publish" and r.key not in event_ids:
            problems.append(f"trail: no event.publish record of acknowledged event {r.key}")
        elif r.kind in ("invoke", "tunnel"):
            answered[(RECORD_ACTION[r.kind], r.agent)] += 1
    for (action, agent), n in sorted(answered.items()):
        if stored[(action, agent)] < n:
            problems.append(
                f"trail: {n} answered {action} of {agent}, only {stored[(action, agent)]} records"
            )
    return problems


def _entity(record: Mapping[str, object]) -> Mapping[str, object]:
    entity = record.get("entity")
    return entity if isinstance(entity, Mapping) else {}


def _agent(record: Mapping[str, object]) -> object:
    agent = record.get("agent")
    return agent.get("id") if isinstance(agent, Mapping) else agent
