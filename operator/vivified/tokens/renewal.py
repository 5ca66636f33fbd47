"""Should the plugin's token be minted again? A chain of named checks, each with its reason.

Like cert-manager's re-issuance policy: every check looks at one fact and returns the reason it
fails (which lands in the ``TokenIssued`` event) or None; the first failing check decides. No
check, no new token: an unchanged plugin costs no write.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass
from datetime import datetime

from vivified.tokens.plugin_token import needs_remint
from vivified.tokens.timeutil import require_aware


@dataclass(frozen=True)
class LiveToken:
    """The public facts recorded on the plugin's token Secret."""

    jti: str
    kid: str
    issued_at: datetime
    expires_at: datetime
    claims: str
    """Fingerprint of what the token asserts (id, version, traits, data classification)."""


@dataclass(frozen=True)
class RenewalInput:
    """Everything the checks look at."""

    live: LiveToken | None
    claims: str
    signing_kids: Container[str]
    revoked: Container[str]
    now: datetime
    refresh_fraction: float


Check = Callable[[RenewalInput], str | None]


def missing(facts: RenewalInput) -> str | None:
    return "Missing" if facts.live is None else None


def revoked(facts: RenewalInput) -> str | None:
    return "Revoked" if facts.live is not None and facts.live.jti in facts.revoked else None


def key_retired(facts: RenewalInput) -> str | None:
    """Signed by a key no longer in the ring: verifiers cannot check it."""
    live = facts.live
    return "KeyRetired" if live is not None and live.kid not in facts.signing_kids else None


def claims_changed(facts: RenewalInput) -> str | None:
    """What the token asserts is no longer true (the old one is revoked as well)."""
    return "ClaimsChanged" if facts.live is not None and facts.live.claims != facts.claims else None


def due_for_remint(facts: RenewalInput) -> str | None:
    live = facts.live
    if live is None:
        return None
    due = needs_remint(live.issued_at, live.expires_at, facts.now, facts.refresh_fraction)
    return "DueForRemint" if due else None


CHECKS: tuple[Check, ...] = (missing, revoked, key_retired, claims_changed, due_for_remint)


def renewal_reason(facts: RenewalInput, checks: tuple[Check, ...] = CHECKS) -> str | None:
    """The reason of the first failing check, or None when the live token is good."""
    for check in checks:
        reason = check(facts)
        if reason is not None:
            return reason
    return None


def refresh_in(issued_at: datetime, expires_at: datetime, now: datetime, fraction: float) -> float:
    """Seconds until a token is due for re-mint (at least one)."""
    start, end = require_aware(issued_at, "issued_at"), require_aware(expires_at, "expires_at")
    refresh_at = start + (end - start) * fraction
    return max((refresh_at - require_aware(now)).total_seconds(), 1.0)


__all__ = [
    "CHECKS",
    "LiveToken",
    "RenewalInput",
    "claims_changed",
    "due_for_remint",
    "key_retired",
    "missing",
    "refresh_in",
    "renewal_reason",
    "revoked",
]
