"""The event lane's settings (chart values -> environment -> this)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from vivified.dataplane.readiness import DEFAULT_GRACE_SECONDS
from vivified.policy.events import DEFAULT_MAX_EVENT_BYTES


@dataclass(frozen=True)
class EventLaneSettings:
    """Tunables; defaults suit one small installation. Env names: ``VIVIFIED_EVENTS_*``."""

    nats_url: str = "nats://127.0.0.1:4222"
    #: Credentials file (NATS .creds) and TLS CA for an external cluster; None = none.
    nats_creds: str | None = None
    nats_tls_ca: str | None = None
    stream: str = "VIVIFIED_EVENTS"
    dead_letter_stream: str = "VIVIFIED_EVENTS_DLQ"
    #: 3 on a production JetStream cluster (docs/events.md), 1 on a single server.
    replicas: int = 1
    #: Nats-Msg-Id de-duplication window: a re-sent id within it is stored once.
    duplicate_window_seconds: float = 120.0
    #: How long events are kept in the stream (subscribers that lag longer lose them).
    max_age_seconds: float = 7 * 24 * 3600.0
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    #: Delivery attempts before the event goes to the dead-letter stream.
    max_attempts: int = 5
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    delivery_timeout_seconds: float = 10.0
    #: Concurrent deliveries per (subscriber, type). 1 keeps per-type order; more delivers that
    #: many at once, keeping order only among events with the same CloudEvents ``subject``.
    max_in_flight: int = 1
    #: Events a worker pulls ahead per (subscriber, type) (the consumer's ``max_ack_pending``):
    #: one pull request per batch instead of one per event.
    prefetch: int = 64
    #: The consumer's pinned-client timeout: a replica that stops pulling (crashed) loses the
    #: consumer to another replica after this long.
    pin_timeout_seconds: float = 10.0
    #: How long a pull request waits on the server for events (an idle worker re-pulls then).
    pull_expires_seconds: float = 2.0
    #: A delivery whose audit record cannot be written (the trail is down, and the publisher's
    #: or subscriber's level needs it) is not delivered but handed back for this long.
    audit_retry_seconds: float = 2.0
    #: How long a delivery may stay unacknowledged before JetStream hands it to another
    #: replica; the worker extends it while it retries, so it bounds crash recovery.
    ack_wait_seconds: float = 30.0
    #: A consumer whose plugin has been missing from the directory this long is deleted.
    orphan_grace_seconds: float = 600.0
    #: How often the delivery supervisor re-reads the directory.
    reconcile_seconds: float = 2.0
    #: ``/readyz`` waits this long at most for the first JetStream connection: a replica is
    #: not sent publishes it would refuse, yet a NATS down for all keeps no lane down for long.
    ready_grace_seconds: float = DEFAULT_GRACE_SECONDS

    @property
    def pull_batch(self) -> int:
        """Events held per consumer (its ``max_ack_pending``): never fewer than run at once."""
        return max(1, self.prefetch, self.max_in_flight)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EventLaneSettings:
        env = os.environ if environ is None else environ
        d = cls()

        def num(name: str, default: float) -> float:
            value = env.get(f"VIVIFIED_EVENTS_{name}")
            return float(value) if value else default

        return cls(
            nats_url=env.get("VIVIFIED_NATS_URL", d.nats_url),
            nats_creds=env.get("VIVIFIED_NATS_CREDS") or None,
            nats_tls_ca=env.get("VIVIFIED_NATS_TLS_CA") or None,
            replicas=int(num("REPLICAS", d.replicas)),
            duplicate_window_seconds=num("DUPLICATE_WINDOW_SECONDS", d.duplicate_window_seconds),
            max_age_seconds=num("MAX_AGE_SECONDS", d.max_age_seconds),
            max_event_bytes=int(num("MAX_EVENT_BYTES", d.max_event_bytes)),
            max_attempts=int(num("MAX_ATTEMPTS", d.max_attempts)),
            backoff_initial_seconds=num("BACKOFF_INITIAL_SECONDS", d.backoff_initial_seconds),
            backoff_max_seconds=num("BACKOFF_MAX_SECONDS", d.backoff_max_seconds),
            delivery_timeout_seconds=num("DELIVERY_TIMEOUT_SECONDS", d.delivery_timeout_seconds),
            max_in_flight=int(num("MAX_IN_FLIGHT", d.max_in_flight)),
            prefetch=int(num("PREFETCH", d.prefetch)),
            pin_timeout_seconds=num("PIN_TIMEOUT_SECONDS", d.pin_timeout_seconds),
            pull_expires_seconds=num("PULL_EXPIRES_SECONDS", d.pull_expires_seconds),
            audit_retry_seconds=num("AUDIT_RETRY_SECONDS", d.audit_retry_seconds),
            ack_wait_seconds=num("ACK_WAIT_SECONDS", d.ack_wait_seconds),
            orphan_grace_seconds=num("ORPHAN_GRACE_SECONDS", d.orphan_grace_seconds),
            reconcile_seconds=num("RECONCILE_SECONDS", d.reconcile_seconds),
            ready_grace_seconds=num("READY_GRACE_SECONDS", d.ready_grace_seconds),
        )


def backoff_seconds(settings: EventLaneSettings, attempt: int) -> float:
    """Exponential backoff after failed attempt ``attempt`` (1-based), capped."""
    return float(
        min(settings.backoff_max_seconds, settings.backoff_initial_seconds * 2 ** (attempt - 1))
    )
