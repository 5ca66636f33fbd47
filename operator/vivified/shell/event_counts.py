"""Read the event lane's counts from the core, for ``status.events.pending`` / ``deadLettered``.

Every ``events_status_seconds`` the operator fetches ``GET /v1/events/status`` under
``core_url``: one document with every subscriber's counts (one consumer listing and one
dead-letter summary in the core, whatever the number of plugins), read with the operator's
own token (``shell/corepoll.py``; plugins get 403 ``operator_only`` there). Only plugins whose
counts changed are reconciled again, and the reconciler writes the status only when a value
differs from the stored one, so a quiet lane costs no API write. When the core cannot be read
the last counts stand for a while, then are removed from the status (not reported).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Unpack

from vivified.shell.corepoll import CoreReports, Key, PollKnobs
from vivified.status import EventCounts, counts_from_document
from vivified_sdk import contract

__all__ = ["EventCountReports"]


class EventCountReports(CoreReports[EventCounts]):
    """The core's latest event-lane counts per subscriber, kept fresh by a background poll."""

    def __init__(
        self, core_url: str, on_change: Callable[[set[Key]], None], **knobs: Unpack[PollKnobs]
    ) -> None:
        super().__init__(
            core_url.rstrip("/") + contract.CORE_EVENTS_STATUS_PATH,
            counts_from_document,
            on_change,
            name="event-lane counts",
            **knobs,
        )
