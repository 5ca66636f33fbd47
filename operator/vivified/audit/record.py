"""From an :class:`AuditEntry` to the record body that is kept, by the acting plugin's level.

The levels follow Kubernetes' audit policy levels: ``none`` (None), ``basic`` (Metadata),
``detailed`` (Request: method, status, sizes, duration, allowlisted headers) and ``complete``
(RequestResponse, but as SHA-256 digests of the bodies: the trail proves *which* bytes passed
without becoming a second copy of the PHI they hold).

``none`` still keeps refusals and platform actions (lifecycle, Admin UI): a refusal is an attempt
the platform blocked (164.308(a)(1)(ii)(D) activity review needs it whatever the plugin chose),
and a lifecycle change is the platform's own act, not the plugin's traffic.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

from vivified.audit.actions import is_platform_action, lane_of
from vivified.audit.hook import AuditEntry
from vivified.audit.redact import scrub, select_headers

RECORD_VERSION: Final = 1
LEVELS: Final = ("none", "basic", "detailed", "complete")

#: Details a ``detailed`` record keeps, with their type. Anything else is dropped (allowlist).
DETAILED_FIELDS: Final[dict[str, type | tuple[type, ...]]] = {
    "method": str,
    "status": int,
    "request_bytes": int,
    "response_bytes": int,
    "bytes_up": int,
    "bytes_down": int,
    "bytes_in": int,
    "bytes_out": int,
    "duration_ms": (int, float),
    "dns_ms": (int, float),
    "attempt": int,
    "attempts": int,
    "event_id": str,
    "subscriber": str,
    "address": str,
    "addresses": list,
    "would_deny": str,
    "mode": str,
}
MAX_LIST: Final = 16
#: Added at ``complete``: hex SHA-256 digests of the bodies (never the bodies).
COMPLETE_FIELDS: Final = ("request_sha256", "response_sha256", "data_sha256")
_DIGEST = re.compile(r"[0-9a-f]{64}")
_MAX_INT: Final = 2**53 - 1  # RFC 8785 numbers are IEEE doubles
_MAX_FLOAT: Final = 1e15


def normalise_level(level: str) -> str:
    """An unknown level is treated as ``complete``: when unsure, keep more, never less."""
    return level if level in LEVELS else "complete"


def kept(entry: AuditEntry) -> bool:
    """Whether ``entry`` produces a record at all."""
    if normalise_level(entry.audit_level) != "none":
        return True
    return entry.outcome != "allowed" or is_platform_action(entry.action)


def must_persist(entry: AuditEntry) -> bool:
    """Whether the request must fail closed when its record cannot be stored."""
    return entry.audit_required or normalise_level(entry.audit_level) == "complete"


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds: sortable as text, one spelling per instant."""
    m = moment.astimezone(UTC)
    # Formatted by hand: strftime was the largest single cost of building a record.
    return (
        f"{m.year:04d}-{m.month:02d}-{m.day:02d}T"
        f"{m.hour:02d}:{m.minute:02d}:{m.second:02d}.{m.microsecond:06d}Z"
    )


def agent_of(agent: str, *, requestor: bool = True) -> dict[str, object]:
    """``user:<name>`` is a Kubernetes user, ``system:<name>`` a platform part, else a plugin."""
    for prefix, kind in (("user:", "user"), ("system:", "system")):
        if agent.startswith(prefix):
            return {"type": kind, "id": scrub(agent[len(prefix) :]), "requestor": requestor}
    return {"type": "plugin", "id": scrub(agent), "requestor": requestor}


def _number(value: object, kind: type | tuple[type, ...]) -> object | None:
    if isinstance(value, bool) or not isinstance(value, kind):
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        rounded = max(-_MAX_FLOAT, min(_MAX_FLOAT, round(value, 3)))
        # Integral values as ints: RFC 8785 writes 2.0 as 2, and records stay on the fast path.
        return int(rounded) if rounded.is_integer() else rounded
    if isinstance(value, int):
        return max(-_MAX_INT, min(_MAX_INT, value))
    return None


def _key(name: object) -> str:
    """An entity key as ASCII (keys sort by code point = RFC 8785's UTF-16 order only then)."""
    return scrub(str(name)).encode("ascii", "backslashreplace").decode()


def _details(entry: AuditEntry, level: str) -> dict[str, object]:
    if level not in ("detailed", "complete"):
        return {}
    out: dict[str, object] = {}
    source: Mapping[str, object] = entry.details
    for name, value in source.items():  # a few present keys, not every allowed one
        kind = DETAILED_FIELDS.get(name)
        if kind is None:
            continue
        if kind is str:
            if isinstance(value, str):
                out[name] = scrub(value)
        elif kind is list:
            if isinstance(value, list | tuple):
                out[name] = [scrub(str(v)) for v in value[:MAX_LIST] if isinstance(v, str | int)]
        else:
            number = _number(value, kind)
            if number is not None:
                out[name] = number
    headers = select_headers(source.get("headers"))
    if headers:
        out["headers"] = headers
    if level == "complete":
        for name in COMPLETE_FIELDS:
            value = source.get(name)
            if isinstance(value, str) and _DIGEST.fullmatch(value):
                out[name] = value
    return out


def build_body(entry: AuditEntry, now: datetime) -> dict[str, object] | None:
    """The record body for ``entry`` (no writer, sequence or chain yet), or None if not kept."""
    if not kept(entry):
        return None
    level = normalise_level(entry.audit_level)
    # A platform action or refusal by a `none` plugin is kept with metadata only.
    effective = "basic" if level == "none" else level
    body: dict[str, object] = {
        "v": RECORD_VERSION,
        "time": format_time(now),
        "action": scrub(entry.action),
        "lane": lane_of(entry.action),
        "agent": agent_of(entry.agent),
        "entity": {_key(k): scrub(str(v)) for k, v in sorted(entry.entity.items())},
        "outcome": entry.outcome,
        "audit_level": level,
    }
    if entry.reason:
        body["reason"] = scrub(entry.reason)
    if entry.purpose_of_use:
        body["purpose_of_use"] = scrub(entry.purpose_of_use)
    details = _details(entry, effective)
    if details:
        body["details"] = details
    return body
