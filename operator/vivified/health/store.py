"""Status: which health fields are stored, when to write them, and reading them back."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from vivified.resource import status_patch_body
from vivified.status import Health

if TYPE_CHECKING:
    pass
from vivified.health.limits import TIMESTAMP_REFRESH_FACTOR
from vivified.health.machine import (
    HealthState,
)
from vivified.health.metrics import (
    _message,
    sanitize_metrics,
)

_VOLATILE = ("lastProbeTime", "lastHeartbeatTime")


def _stamp(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None


def status_fields(state: HealthState) -> dict[str, Any]:
    """The health-owned status fields for ``state`` (None = field absent)."""
    return status_patch_body(
        health=state.health.value,
        consecutive_failures=state.consecutive_failures,
        last_error=state.last_error,
        last_probe_time=_stamp(state.last_probe_time),
        last_heartbeat_time=_stamp(state.last_heartbeat_time),
        metrics=dict(state.metrics) or None,
    )


def _metrics_patch(new: object, old: object) -> dict[str, Any] | None:
    """A merge patch turning ``old`` metrics into ``new`` (merge patches merge objects)."""
    new_map = new if isinstance(new, Mapping) else {}
    old_map = old if isinstance(old, Mapping) else {}
    if not new_map:
        return None
    patch: dict[str, Any] = {k: None for k in old_map if k not in new_map}
    patch.update(new_map)
    return patch


def status_patch(
    desired: Mapping[str, Any],
    written: Mapping[str, Any],
    *,
    now: datetime,
    last_write: datetime | None,
    refresh_seconds: float,
) -> dict[str, Any] | None:
    """The merge patch to send now, or None.

    A change of ``health`` is written at once. Other changes (metrics, failure count,
    error) at most every ``refresh_seconds``; changes of the timestamps alone at most every
    ``TIMESTAMP_REFRESH_FACTOR * refresh_seconds``.
    """
    changed = {k for k, v in desired.items() if written.get(k) != v}
    if not changed:
        return None
    since = (now - last_write).total_seconds() if last_write is not None else math.inf
    if "health" not in changed:
        wait = refresh_seconds
        if changed <= set(_VOLATILE):
            wait = refresh_seconds * TIMESTAMP_REFRESH_FACTOR
        if since < wait:
            return None
    patch: dict[str, Any] = {}
    for key in sorted(changed):
        if key == "metrics":
            patch[key] = _metrics_patch(desired[key], written.get(key))
        else:
            patch[key] = desired[key]
    return patch


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def state_from_status(status: Mapping[str, Any] | None) -> tuple[HealthState, dict[str, Any]]:
    """Resume from a stored status (e.g. after an operator restart).

    Returns the state and the fields as they are stored now (what a patch is diffed
    against), so an unchanged plugin causes neither a write nor an event.
    """
    status = status if isinstance(status, Mapping) else {}
    raw_health = status.get("health")
    health = Health(raw_health) if raw_health in {h.value for h in Health} else Health.UNKNOWN
    failures = status.get("consecutiveFailures")
    failures = failures if isinstance(failures, int) and not isinstance(failures, bool) else 0
    error = status.get("lastError")
    state = HealthState(
        health=health,
        probed=health,
        consecutive_failures=max(0, failures),
        last_error=_message(error) if isinstance(error, str) and error else None,
        last_probe_time=_parse_time(status.get("lastProbeTime")),
        last_heartbeat_time=_parse_time(status.get("lastHeartbeatTime")),
        metrics=sanitize_metrics(status.get("metrics")),
    )
    written = {
        k: status.get(k)
        for k in (
            "health",
            "consecutiveFailures",
            "lastError",
            "lastProbeTime",
            "lastHeartbeatTime",
            "metrics",
        )
    }
    # Reconcile shows a new plugin as unknown; "absent" and "unknown" are the same news.
    written["health"] = health.value if raw_health is None else raw_health
    return state, written
