"""Timestamps: timezone-aware UTC in, RFC 3339 (``2025-01-31T12:00:00Z``) out.

Public like ``contract``: the operator's token code uses the same functions, so a plugin and
the platform can never disagree on how a claim's time is read (naive datetimes hide clock bugs).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = [
    "MAX_EPOCH",
    "format_rfc3339",
    "from_epoch",
    "parse_rfc3339",
    "require_aware",
    "to_epoch",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: 9999-12-31T23:59:59Z: larger claims cannot be a datetime, so they are refused.
MAX_EPOCH = 253402300799


def require_aware(value: datetime, name: str = "now") -> datetime:
    """``value`` in UTC; naive datetimes are refused."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (use datetime.now(UTC))")
    return value.astimezone(UTC)


def to_epoch(value: datetime) -> int:
    """Whole seconds since the epoch (fractions are truncated)."""
    return (require_aware(value, "timestamp") - _EPOCH) // timedelta(seconds=1)


def from_epoch(seconds: int) -> datetime:
    return _EPOCH + timedelta(seconds=seconds)


def format_rfc3339(value: datetime) -> str:
    """RFC 3339 in UTC with second precision and a ``Z`` suffix."""
    return require_aware(value, "timestamp").strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 timestamp with ``Z`` or an explicit offset, as UTC."""
    if not isinstance(text, str):
        raise ValueError(f"expected an RFC 3339 timestamp string, got {type(text).__name__}")
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not an RFC 3339 timestamp: {text[:64]!r}") from None
    if value.tzinfo is None:
        raise ValueError(f"timestamp has no timezone: {text[:64]!r}")
    return value.astimezone(UTC)
