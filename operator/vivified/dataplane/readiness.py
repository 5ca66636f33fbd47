"""The readiness rule of a part that connects in the background (the audit sink, the event
lane's JetStream): one pure decision, so the two parts cannot drift apart.

Ready once it has connected, and from then on whatever happens (a later outage is handled by
the part itself: requests fail closed or are held, docs/audit.md, docs/events.md; flipping the
pod unready would take every lane out of its Service for one part's outage). Before the first
connection it is unready for ``grace`` seconds, so a new replica takes no traffic it would
have to refuse; after the grace it is ready anyway, so a dependency that is down for every
replica cannot keep the whole core out of service.
"""

from __future__ import annotations

from typing import Final

#: The grace both parts use unless configured (``VIVIFIED_EVENTS_READY_GRACE_SECONDS``).
DEFAULT_GRACE_SECONDS: Final = 30.0


def ready_for_traffic(
    *, connected_once: bool, started_at: float | None, now: float, grace: float
) -> bool:
    """Whether the part lets the core's readiness pass (``started_at``/``now`` on one clock;
    ``started_at`` None: not started, never ready)."""
    if connected_once:
        return True
    return started_at is not None and now - started_at >= grace
