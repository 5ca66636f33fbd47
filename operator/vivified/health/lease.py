"""Heartbeat Leases (written by the core) → ``Heartbeat`` for the operator's health machine.

Pure. The core writes one coordination.k8s.io Lease per plugin
(``vivified.dataplane.heartbeats``); the operator reads each *new* renewal as one heartbeat.
A Lease whose ``renewTime`` is older than its ``leaseDurationSeconds`` (a relist after an
operator restart, a dead core) proves nothing and is ignored; the plugin's heartbeat timeout
then does its job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from vivified.health import Heartbeat, HeartbeatError, parse_heartbeat
from vivified_sdk import contract

__all__ = ["HEARTBEAT_ANNOTATION", "LEASE_LABELS", "LEASE_SELECTOR", "heartbeat_from_lease"]

HEARTBEAT_ANNOTATION = "vivified.dev/heartbeat"
#: Labels on the core's heartbeat Leases; the operator's LeaseWatcher selects on them.
LEASE_LABELS = {
    "app.kubernetes.io/managed-by": contract.CORE_SERVICE_NAME,
    "app.kubernetes.io/component": "heartbeat",
}
LEASE_SELECTOR = ",".join(f"{k}={v}" for k, v in LEASE_LABELS.items())


def _renewed(spec: Mapping[str, Any]) -> datetime | None:
    raw = spec.get("renewTime")
    if not isinstance(raw, str):
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None


def heartbeat_from_lease(
    lease: Mapping[str, Any], now: datetime
) -> tuple[str, str, datetime, Heartbeat] | None:
    """``(namespace, plugin id, renewTime, beat)``, or None for a stale or foreign Lease."""
    metadata = lease.get("metadata") or {}
    spec = lease.get("spec") or {}
    plugin_id = (metadata.get("labels") or {}).get("vivified.dev/plugin")
    if not plugin_id or spec.get("holderIdentity") != plugin_id:
        return None
    renewed = _renewed(spec)
    duration = spec.get("leaseDurationSeconds")
    if renewed is None or not isinstance(duration, int):
        return None
    if now - renewed > timedelta(seconds=duration):
        return None
    try:
        body = json.loads((metadata.get("annotations") or {}).get(HEARTBEAT_ANNOTATION, "{}"))
        beat = parse_heartbeat(body)
    except (ValueError, HeartbeatError):
        return None
    return str(metadata.get("namespace", "")), str(plugin_id), renewed, beat
