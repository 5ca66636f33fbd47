"""The event lane's metrics, registered in the core's registry (``ctx.metrics``, ``/metrics``).

Label values are bounded: subscriber ids and *registered* type names come from the directory
and the registry; a refused publish of an unknown type is counted under type ``-``.
"""

from __future__ import annotations

from vivified.dataplane.metrics import Registry

__all__ = ["LANE", "EventMetrics"]

#: The ``lane`` label of the core's shared request/decision metrics.
LANE = "events"

#: Publish -> delivery latency buckets (seconds): the goal is p99 <= 50 ms.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0)


class EventMetrics:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.published = registry.counter(
            "vivified_events_published_total",
            "Publish decisions by type and reason.",
            ("type", "reason"),
        )
        self.delivered = registry.counter(
            "vivified_events_delivered_total",
            "Deliveries acknowledged by subscribers.",
            ("subscriber", "type"),
        )
        self.failed_attempts = registry.counter(
            "vivified_events_delivery_failures_total",
            "Failed delivery attempts (non-2xx answer, timeout, unreachable).",
            ("subscriber", "type"),
        )
        self.dead_lettered = registry.counter(
            "vivified_events_dead_lettered_total",
            "Events moved to the dead-letter stream.",
            ("subscriber", "type"),
        )
        self.audit_held = registry.counter(
            "vivified_events_audit_held_total",
            "Deliveries not made because the audit trail could not record them (handed back).",
            ("subscriber", "type"),
        )
        self.latency = registry.histogram(
            "vivified_events_delivery_latency_seconds",
            "From the event's storage in JetStream to the subscriber's 2xx.",
            ("type",),
            _LATENCY_BUCKETS,
        )
