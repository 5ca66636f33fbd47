"""Telling humans the audit sink is down: a log line always, a Kubernetes Event in cluster."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

logger = logging.getLogger(__name__)


class OutageAlert(Protocol):
    """Told when the sink stops confirming writes and when it recovers."""

    async def outage_started(self, reason: str) -> None: ...

    async def outage_ended(self, held: int) -> None: ...


class LogAlert:
    """The default: one WARNING when an outage starts, one INFO when it ends."""

    async def outage_started(self, reason: str) -> None:
        logger.warning("audit sink down, holding records in memory: %s", reason)

    async def outage_ended(self, held: int) -> None:
        logger.info("audit sink back: %d held records written", held)


PostEvent = Callable[[str, str, str], Awaitable[None]]
"""``post(type, reason, message)``: posts a core/v1 Event about the core (its Deployment)."""


class EventAlert(LogAlert):
    """Logs, and posts a Kubernetes Event through ``post`` (the core's kube client, issue 16)."""

    def __init__(self, post: PostEvent) -> None:
        self._post = post

    async def outage_started(self, reason: str) -> None:
        await super().outage_started(reason)
        try:
            await self._post("Warning", "AuditSinkDown", f"audit sink down: {reason}"[:1024])
        except Exception:  # an alert must never break the request path
            logger.exception("could not post the AuditSinkDown event")

    async def outage_ended(self, held: int) -> None:
        await super().outage_ended(held)
        try:
            await self._post("Normal", "AuditSinkRecovered", f"{held} held records written")
        except Exception:
            logger.exception("could not post the AuditSinkRecovered event")
