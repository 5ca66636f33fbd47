"""The state machine: probe results and heartbeats in, a health state and its events out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from vivified.settings import OperatorSettings
from vivified.status import Health, WorkloadFacts

if TYPE_CHECKING:
    pass
from vivified.health.heartbeat import Heartbeat
from vivified.health.limits import _SEVERITY, MetricValue
from vivified.health.metrics import _message
from vivified.health.targets import ProbeTarget


@dataclass(frozen=True)
class ProbeResult:
    """One check's verdict. ``metrics`` None = the check carried none (keep the last ones).

    ``grace``: a failure that does not make an ``unknown`` plugin degraded (a heartbeat-only
    plugin that has not sent its first heartbeat yet); at the threshold it is unhealthy.
    """

    ok: bool
    error: str | None = None
    metrics: Mapping[str, MetricValue] | None = None
    grace: bool = False


@dataclass(frozen=True)
class HealthPolicy:
    """The numbers the state machine needs."""

    failure_threshold: int
    interval_seconds: float
    #: Disable after this many probes in the unhealthy state (0 = never).
    disable_after: int = 0

    @property
    def report_ttl(self) -> timedelta:
        """How long a plugin's own report counts."""
        return timedelta(seconds=self.failure_threshold * self.interval_seconds)

    @classmethod
    def for_target(cls, target: ProbeTarget, settings: OperatorSettings) -> HealthPolicy:
        return cls(
            failure_threshold=target.failure_threshold,
            interval_seconds=target.interval_seconds,
            disable_after=settings.unhealthy_disable_after,
        )


@dataclass(frozen=True)
class HealthState:
    """What the monitor knows about one plugin. ``health`` is what the world sees."""

    health: Health = Health.UNKNOWN
    #: Health according to probes alone.
    probed: Health = Health.UNKNOWN
    consecutive_failures: int = 0
    last_error: str | None = None
    last_probe_time: datetime | None = None
    last_heartbeat_time: datetime | None = None
    #: The plugin's own last report (heartbeat status) and when it came.
    reported: Health | None = None
    reported_at: datetime | None = None
    reported_message: str | None = None
    metrics: Mapping[str, MetricValue] = field(default_factory=dict)


@dataclass(frozen=True)
class HealthEvent:
    """A Kubernetes Event to post about a health change."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Outcome:
    """The new state, and what the shell must do about the change."""

    state: HealthState
    previous: Health
    event: HealthEvent | None = None
    #: The disable policy's threshold was reached by this very probe (fires once).
    disable: bool = False

    @property
    def changed(self) -> bool:
        """Whether the externally visible health changed (→ status write + event)."""
        return self.state.health is not self.previous


def combine(probed: Health, reported: Health | None) -> Health:
    """The worse of the probes' verdict and the plugin's own report (unknown = no data)."""
    if reported is None or reported is Health.UNKNOWN:
        return probed
    if probed is Health.UNKNOWN:
        return reported
    return probed if _SEVERITY[probed] >= _SEVERITY[reported] else reported


def _reported(state: HealthState, policy: HealthPolicy, now: datetime) -> Health | None:
    if state.reported is None or state.reported_at is None:
        return None
    return state.reported if now - state.reported_at <= policy.report_ttl else None


def _event(plugin_id: str, state: HealthState, previous: Health) -> HealthEvent | None:
    health = state.health
    if health is previous:
        return None
    if health is Health.HEALTHY:
        again = " again" if previous in (Health.DEGRADED, Health.UNHEALTHY) else ""
        return HealthEvent("Normal", "PluginHealthy", f"Plugin {plugin_id} is healthy{again}")
    if health is Health.UNKNOWN:
        return HealthEvent("Normal", "PluginHealthUnknown", f"Plugin {plugin_id} health is unknown")
    probe_says = state.probed is health and state.last_error
    reason = state.last_error if probe_says else None
    if reason is None:
        reason = "reported by the plugin" + (
            f": {state.reported_message}" if state.reported_message else ""
        )
    word = "unhealthy" if health is Health.UNHEALTHY else "degraded"
    return HealthEvent(
        "Warning",
        "PluginUnhealthy" if health is Health.UNHEALTHY else "PluginDegraded",
        f"Plugin {plugin_id} is {word}: {reason}",
    )


def _finish(
    plugin_id: str,
    before: HealthState,
    state: HealthState,
    policy: HealthPolicy,
    now: datetime,
    *,
    disable: bool = False,
) -> Outcome:
    visible = combine(state.probed, _reported(state, policy, now))
    state = replace(state, health=visible)
    return Outcome(state, before.health, _event(plugin_id, state, before.health), disable)


def observe_probe(
    plugin_id: str,
    state: HealthState,
    result: ProbeResult,
    policy: HealthPolicy,
    now: datetime,
) -> Outcome:
    """Fold one probe result into ``state``.

    Success: healthy, failures reset, error cleared. Failure number n: degraded while
    n < threshold, unhealthy from n = threshold on (``grace`` failures keep an unknown
    plugin unknown until the threshold). Metrics are replaced only by a result that has some.
    """
    metrics = dict(result.metrics) if result.metrics is not None else state.metrics
    if result.ok:
        updated = replace(
            state,
            probed=Health.HEALTHY,
            consecutive_failures=0,
            last_error=None,
            last_probe_time=now,
            metrics=metrics,
        )
        return _finish(plugin_id, state, updated, policy, now)
    failures = state.consecutive_failures + 1
    threshold = policy.failure_threshold
    if failures >= threshold:
        probed = Health.UNHEALTHY
    elif result.grace and state.probed is Health.UNKNOWN:
        probed = Health.UNKNOWN
    else:
        probed = Health.DEGRADED
    updated = replace(
        state,
        probed=probed,
        consecutive_failures=failures,
        last_error=_message(result.error or "health check failed"),
        last_probe_time=now,
        metrics=metrics,
    )
    disable = policy.disable_after > 0 and failures - threshold + 1 == policy.disable_after
    return _finish(plugin_id, state, updated, policy, now, disable=disable)


def observe_heartbeat(
    plugin_id: str,
    state: HealthState,
    beat: Heartbeat,
    policy: HealthPolicy,
    now: datetime,
    *,
    proves_liveness: bool,
) -> Outcome:
    """Fold a heartbeat into ``state``.

    The report counts for ``policy.report_ttl``. For heartbeat-only plugins
    (``proves_liveness``) the heartbeat is also the liveness signal: failures reset.
    """
    updated = replace(
        state,
        last_heartbeat_time=now,
        reported=beat.health,
        reported_at=now,
        reported_message=beat.message,
        metrics=dict(beat.metrics) if beat.metrics is not None else state.metrics,
    )
    if proves_liveness:
        updated = replace(updated, probed=Health.HEALTHY, consecutive_failures=0, last_error=None)
    return _finish(plugin_id, state, updated, policy, now)


def heartbeat_check(
    state: HealthState,
    policy: HealthPolicy,
    now: datetime,
    *,
    timeout_seconds: float,
) -> ProbeResult:
    """The scheduled check of a heartbeat-only plugin: was there a heartbeat lately?

    A heartbeat within the last interval (plus the timeout as slack) is a success. Before
    the first heartbeat the failures are ``grace`` failures: the plugin stays unknown and
    becomes unhealthy once ``failure_threshold`` intervals passed without any heartbeat.
    """
    last = state.last_heartbeat_time
    window = policy.interval_seconds + timeout_seconds
    if last is None:
        waited = int((state.consecutive_failures + 1) * policy.interval_seconds)
        return ProbeResult(ok=False, error=f"no heartbeat received in {waited}s", grace=True)
    age = (now - last).total_seconds()
    if age <= window:
        return ProbeResult(ok=True)
    return ProbeResult(ok=False, error=f"no heartbeat for {int(age)}s")


def readiness_check(workload: WorkloadFacts | None) -> ProbeResult | None:
    """Health from the Deployment for plugins that declare no check; None = nothing known."""
    if workload is None or not workload.exists or workload.desired_replicas == 0:
        return None
    if workload.up:
        return ProbeResult(ok=True)
    return ProbeResult(
        ok=False,
        error=(
            f"deployment not available ({workload.ready_replicas}/"
            f"{workload.desired_replicas} replicas ready)"
        ),
    )
