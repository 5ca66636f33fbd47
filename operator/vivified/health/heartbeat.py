"""Heartbeats: the body a plugin POSTs, parsed as hostile input."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from vivified.status import Health

if TYPE_CHECKING:
    pass
from vivified.health.limits import MAX_METRICS, MetricValue
from vivified.health.metrics import (
    _message,
    sanitize_metrics,
)

#: Words a plugin may use for its own status, and what they mean.
REPORTED_STATUS: Mapping[str, Health] = MappingProxyType(
    {
        "healthy": Health.HEALTHY,
        "ok": Health.HEALTHY,
        "active": Health.HEALTHY,
        "registered": Health.HEALTHY,
        "degraded": Health.DEGRADED,
        "unhealthy": Health.UNHEALTHY,
        "error": Health.UNHEALTHY,
        "failing": Health.UNHEALTHY,
    }
)


class HeartbeatError(ValueError):
    """A heartbeat body is unusable; the message says why (safe to return to the caller)."""


@dataclass(frozen=True)
class Heartbeat:
    """A plugin's report about itself, validated."""

    health: Health = Health.HEALTHY
    plugin_id: str | None = None
    message: str | None = None
    metrics: Mapping[str, MetricValue] | None = None


def parse_heartbeat(document: object) -> Heartbeat:
    """Validate a heartbeat body (the seed's shape, made strict).

    ``{"plugin_id": str?, "status": "healthy"|"active"|"degraded"|"unhealthy"|...?,
    "message": str?, "metrics": {...}?, "health": {...}?}`` — ``health`` is the seed's name
    for a metrics object and is merged under ``metrics``. Other keys are ignored.
    """
    if not isinstance(document, Mapping):
        raise HeartbeatError("body must be a JSON object")
    plugin_id = document.get("plugin_id")
    if plugin_id is not None and (not isinstance(plugin_id, str) or not plugin_id):
        raise HeartbeatError("plugin_id must be a non-empty string")
    status = document.get("status", "healthy")
    if not isinstance(status, str) or status.lower() not in REPORTED_STATUS:
        raise HeartbeatError(
            "status must be one of " + ", ".join(sorted(set(REPORTED_STATUS))),
        )
    message = document.get("message")
    if message is not None and not isinstance(message, str):
        raise HeartbeatError("message must be a string")
    metrics: dict[str, MetricValue] | None = None
    for name in ("health", "metrics"):
        value = document.get(name)
        if value is None:
            continue
        if not isinstance(value, Mapping):
            raise HeartbeatError(f"{name} must be an object of metrics")
        metrics = {**(metrics or {}), **sanitize_metrics(value)}
    if metrics is not None:
        metrics = {k: metrics[k] for k in sorted(metrics)[:MAX_METRICS]}
    return Heartbeat(
        health=REPORTED_STATUS[status.lower()],
        plugin_id=plugin_id if isinstance(plugin_id, str) else None,
        message=_message(message) if message else None,
        metrics=metrics,
    )
