"""Plugin health: what to probe, how probe results and heartbeats become a health state.

Pure: no I/O and no clock (``now`` is passed in). The shell (``vivified.shell.monitor``)
runs the probes, feeds their results here and writes what this module says to write.

States (docs/health.md)::

    unknown    no probe result yet (or nothing to go by)
    healthy    the last probe succeeded (and the plugin does not report trouble)
    degraded   1 .. failure_threshold-1 consecutive failed probes, or the plugin says so
    unhealthy  failure_threshold or more consecutive failed probes, or the plugin says so

A plugin's own report (heartbeat ``status``) can only make its health *worse* than what the
probes show, never hide a failing probe, and it expires after ``failure_threshold * interval``.

Everything a plugin sends us (probe bodies, heartbeats) is hostile input: metrics are
flattened, filtered by key pattern, type and size, and capped in number before they can
reach the custom resource's status.
"""

from __future__ import annotations

from vivified.health.heartbeat import REPORTED_STATUS, Heartbeat, HeartbeatError, parse_heartbeat
from vivified.health.limits import (
    HEALTH_ENDPOINT_NAME,
    MAX_BODY_BYTES,
    MAX_MESSAGE_LENGTH,
    MAX_METRIC_KEY_LENGTH,
    MAX_METRIC_STRING_LENGTH,
    MAX_METRICS,
    TIMESTAMP_REFRESH_FACTOR,
    MetricValue,
)
from vivified.health.machine import (
    HealthEvent,
    HealthPolicy,
    HealthState,
    Outcome,
    ProbeResult,
    combine,
    heartbeat_check,
    observe_heartbeat,
    observe_probe,
    readiness_check,
)
from vivified.health.metrics import load_json, metrics_from_body, sanitize_metrics
from vivified.health.store import state_from_status, status_fields, status_patch
from vivified.health.targets import (
    ProbeAddress,
    ProbeAddressResolver,
    ProbeKind,
    ProbeTarget,
    probe_target,
    safe_probe_path,
)
from vivified.status import Health

__all__ = [
    "HEALTH_ENDPOINT_NAME",
    "MAX_BODY_BYTES",
    "MAX_MESSAGE_LENGTH",
    "MAX_METRICS",
    "MAX_METRIC_KEY_LENGTH",
    "MAX_METRIC_STRING_LENGTH",
    "REPORTED_STATUS",
    "TIMESTAMP_REFRESH_FACTOR",
    "Health",
    "HealthEvent",
    "HealthPolicy",
    "HealthState",
    "Heartbeat",
    "HeartbeatError",
    "MetricValue",
    "Outcome",
    "ProbeAddress",
    "ProbeAddressResolver",
    "ProbeKind",
    "ProbeResult",
    "ProbeTarget",
    "combine",
    "heartbeat_check",
    "load_json",
    "metrics_from_body",
    "observe_heartbeat",
    "observe_probe",
    "parse_heartbeat",
    "probe_target",
    "readiness_check",
    "safe_probe_path",
    "sanitize_metrics",
    "state_from_status",
    "status_fields",
    "status_patch",
]
