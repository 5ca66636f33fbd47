"""The one call site for audit: every lane decision and lifecycle change goes through it.

Callers describe *what happened* (an :class:`AuditEntry` with everything they know); the audit
module decides what of it is kept for the acting plugin's ``audit_level``. Callers never pass
credentials: ``details`` must not hold Authorization headers, cookies or tokens (the record
builder drops them again anyway).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

Outcome = Literal["allowed", "refused", "error"]


@dataclass(frozen=True)
class AuditEntry:
    """One thing that happened, as the deciding code saw it."""

    action: str
    """Dotted action name: ``invoke``, ``egress.decision``, ``egress.close``, ``event.publish``,
    ``event.deliver``, ``event.dead_letter``, ``heartbeat``, ``lifecycle.created``, ...,
    ``ui.enable``."""
    agent: str
    """Who acted: a plugin id, or ``user:<kubernetes username>``."""
    outcome: Outcome
    reason: str = ""
    """Machine-readable reason of a refusal (the same string as the problem+json ``reason``)."""
    entity: Mapping[str, str] = field(default_factory=dict)
    """What was acted on: ``target``/``operation``, ``host``/``port``, ``event_type``."""
    details: Mapping[str, object] = field(default_factory=dict)
    """Request details (method, status, sizes, duration_ms, selected headers, body digests)."""
    audit_level: str = "basic"
    """The acting plugin's ``compliance.audit_level``: none, basic, detailed or complete."""
    audit_required: bool = False
    """The acting plugin declares ``audit_required``: a sink outage fails its requests closed."""
    purpose_of_use: str | None = None
    after_answer: bool = False
    """The request was answered already (``invoke.result``): the record joins the chain in
    order but does not hold the caller for a round trip to the sink, and an outage cannot
    refuse it any more (it is held, or counted lost when the backlog is full)."""


class AuditUnavailable(Exception):  # noqa: N818 - reads as a state, like TokenInvalid
    """The sink cannot take a record that must be kept; its request must fail closed."""


class Auditor(Protocol):
    """Where lanes send entries. Implementations must never drop silently."""

    async def record(self, entry: AuditEntry) -> None:
        """Keep ``entry`` (or raise :class:`AuditUnavailable` when it must fail closed)."""
        ...


class NullAuditor:
    """Keeps nothing: for installations and tests that do not audit."""

    async def record(self, entry: AuditEntry) -> None:
        return None


class MemoryAuditor:
    """Keeps every entry in a list: the fake for unit tests."""

    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    async def record(self, entry: AuditEntry) -> None:
        self.entries.append(entry)
