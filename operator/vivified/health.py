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

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from vivified.resource import status_patch_body
from vivified.settings import OperatorSettings, split_host_port
from vivified.status import Health, WorkloadFacts

if TYPE_CHECKING:
    from vivified.resource import PluginSpec

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

HEALTH_ENDPOINT_NAME = "health"

#: A probe response or heartbeat body larger than this is not parsed.
MAX_BODY_BYTES = 64 * 1024
#: At most this many metrics are kept (the first ones by key order).
MAX_METRICS = 16
MAX_METRIC_KEY_LENGTH = 64
MAX_METRIC_STRING_LENGTH = 128
#: Nested objects are flattened to ``outer.inner`` keys down to this depth.
MAX_METRIC_DEPTH = 2
#: Integers beyond this magnitude lose precision in JSON consumers; they are dropped.
MAX_METRIC_INT = 2**53
#: Heartbeat messages and probe errors are cut to this length.
MAX_MESSAGE_LENGTH = 256
#: A status write that only refreshes ``lastProbeTime``/``lastHeartbeatTime`` waits this many
#: times ``health_status_refresh_seconds`` (5 minutes by default).
TIMESTAMP_REFRESH_FACTOR = 5

MetricValue = int | float | str

_METRIC_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_PATH_CHARS = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@/-]*(\?[A-Za-z0-9._~!$&'()*+,;=:@/?-]*)?$")
_SEVERITY = {Health.HEALTHY: 1, Health.DEGRADED: 2, Health.UNHEALTHY: 3}


# --------------------------------------------------------------------------------------------
# What to probe
# --------------------------------------------------------------------------------------------


class ProbeKind(StrEnum):
    """How health is established for one plugin."""

    HTTP = "http"  # GET path, 200 = success, JSON body = metrics
    TCP = "tcp"  # a TCP connect succeeds
    HEARTBEAT = "heartbeat"  # manifest type "custom": no probe, heartbeats only
    READINESS = "readiness"  # nothing declared: the Deployment's availability


@dataclass(frozen=True)
class ProbeTarget:
    """Everything the monitor needs to check one plugin, derived from its spec only.

    ``problem`` is set when the declared check cannot be run safely (e.g. a health path that
    could escape the service proxy); every check then fails with that message.
    """

    plugin_id: str
    kind: ProbeKind
    port: int
    path: str
    interval_seconds: int
    timeout_seconds: int
    failure_threshold: int
    source: Literal["health_check", "endpoints.health", "deployment"]
    problem: str | None = None


def safe_probe_path(path: str) -> str | None:
    """Why ``path`` may not be probed, or None when it is fine.

    Stricter than the manifest rules: through the API server's service proxy a path is
    appended to an API URL, so dot segments, percent-escapes and ``//`` are refused.
    """
    if len(path) > 512 or not _PATH_CHARS.match(path):
        return "health check path must be a plain absolute path (no '%', spaces or '#')"
    segments = path.split("?", 1)[0].split("/")
    if any(s in (".", "..") for s in segments):
        return "health check path must not contain '.' or '..' segments"
    if "//" in path:
        return "health check path must not contain '//'"
    return None


def _timings(spec: PluginSpec, settings: OperatorSettings) -> tuple[int, int, int]:
    """Interval, timeout, threshold: the manifest's when it sets them, else the operator's."""
    check = spec.manifest.health_check
    given = check.model_fields_set if check is not None else set()
    interval = (
        check.interval_seconds
        if check is not None and "interval_seconds" in given
        else settings.health_interval_seconds
    )
    timeout = (
        check.timeout_seconds
        if check is not None and "timeout_seconds" in given
        else settings.health_timeout_seconds
    )
    threshold = (
        check.failure_threshold
        if check is not None and "failure_threshold" in given
        else settings.health_failure_threshold
    )
    # A probe never outlives its interval, so one plugin never has two probes in flight.
    return interval, max(1, min(timeout, interval)), threshold


def probe_target(spec: PluginSpec, settings: OperatorSettings) -> ProbeTarget | None:
    """How to check ``spec``'s health; None when it must not be monitored.

    Disabled plugins and plugins scaled to zero are not monitored. With a ``health_check``
    its type decides; without one, ``endpoints.health`` is probed over HTTP on the plugin
    port; without that, health follows the Deployment's availability.
    """
    if not spec.enabled or spec.replicas == 0:
        return None
    manifest = spec.manifest
    interval, timeout, threshold = _timings(spec, settings)

    def target(
        kind: ProbeKind,
        port: int,
        path: str,
        source: Literal["health_check", "endpoints.health", "deployment"],
    ) -> ProbeTarget:
        return ProbeTarget(
            plugin_id=manifest.id,
            kind=kind,
            port=port,
            path=path,
            interval_seconds=interval,
            timeout_seconds=timeout,
            failure_threshold=threshold,
            source=source,
            problem=safe_probe_path(path) if kind is ProbeKind.HTTP else None,
        )

    check = manifest.health_check
    port = spec.effective_port
    if check is not None:
        port = check.port if check.port is not None else port
        if check.type == "http":
            return target(ProbeKind.HTTP, port, check.effective_path, "health_check")
        kind = ProbeKind.TCP if check.type == "tcp" else ProbeKind.HEARTBEAT
        return target(kind, port, "", "health_check")
    endpoint = manifest.endpoints.get(HEALTH_ENDPOINT_NAME)
    if endpoint:
        return target(ProbeKind.HTTP, port, endpoint, "endpoints.health")
    return target(ProbeKind.READINESS, port, "", "deployment")


# --------------------------------------------------------------------------------------------
# Where to probe: from operator configuration only, never from a custom resource
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeAddress:
    """Where one probe goes. ``via="apiserver-proxy"`` means through the Kube client."""

    via: Literal["direct", "apiserver-proxy"]
    host: str
    port: int
    path: str
    namespace: str = ""
    service: str = ""

    @property
    def url(self) -> str:
        """``http://host:port/path`` (direct) or the API server path (proxy)."""
        if self.via == "apiserver-proxy":
            return (
                f"/api/v1/namespaces/{self.namespace}/services/"
                f"{self.service}:{self.port}/proxy{self.path or '/'}"
            )
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.path or '/'}"


class ProbeAddressResolver:
    """Maps a plugin to the address its probes go to.

    ``direct``: ``<plugin id>.<namespace>.svc:<port>`` (the plugin's Service) unless the
    plugin is in ``probe_address_overrides``. ``apiserver-proxy``: the API server's service
    proxy (overrides still win). ``overrides``: only overridden plugins are probed; others
    get None (their health stays unknown), so nothing else is ever dialled.

    The host always comes from this operator's settings or from the namespace and name of
    the resource (both DNS labels the API server validated): a custom resource cannot point
    the operator at an arbitrary host.
    """

    def __init__(self, settings: OperatorSettings) -> None:
        self._mode = settings.probe_mode
        self._overrides: dict[str, tuple[str, int]] = {}
        for key, address in settings.probe_address_overrides.items():
            parsed = split_host_port(address)
            if parsed is not None:  # settings validation guarantees it
                self._overrides[key] = parsed

    @property
    def mode(self) -> str:
        return self._mode

    def resolve(self, key: tuple[str, str], target: ProbeTarget) -> ProbeAddress | None:
        namespace, name = key
        override = self._overrides.get(f"{namespace}/{name}")
        if override is not None:
            host, port = override
            return ProbeAddress("direct", host, port, target.path, namespace, name)
        if self._mode == "overrides":
            return None
        if self._mode == "apiserver-proxy":
            return ProbeAddress(
                "apiserver-proxy", "", target.port, target.path, namespace, target.plugin_id
            )
        return ProbeAddress(
            "direct",
            f"{target.plugin_id}.{namespace}.svc",
            target.port,
            target.path,
            namespace,
            target.plugin_id,
        )


# --------------------------------------------------------------------------------------------
# Metrics: hostile input in, a few small scalars out
# --------------------------------------------------------------------------------------------


def _metric_value(value: object) -> MetricValue | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if abs(value) <= MAX_METRIC_INT else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        ok = len(value) <= MAX_METRIC_STRING_LENGTH and value.isprintable()
        return value if ok else None
    return None


def sanitize_metrics(document: object) -> dict[str, MetricValue]:
    """Numbers and short printable strings from a JSON object, flattened and capped.

    Keys must match ``[A-Za-z_][A-Za-z0-9_.-]*`` and be at most 64 characters (after
    flattening ``{"memory": {"rss": 1}}`` to ``memory.rss``); booleans, nulls, lists, huge
    integers, non-finite floats and long or non-printable strings are dropped. The first
    ``MAX_METRICS`` keys in sorted order are kept, so the result does not depend on the
    order the plugin sent them in.
    """
    found: dict[str, MetricValue] = {}
    budget = [4 * MAX_METRICS * MAX_METRICS]  # items looked at, whatever the body holds

    def walk(obj: Mapping[Any, Any], prefix: str, depth: int) -> None:
        for key, value in obj.items():
            budget[0] -= 1
            if budget[0] < 0:
                return
            if not isinstance(key, str):
                continue
            name = f"{prefix}{key}"
            if len(name) > MAX_METRIC_KEY_LENGTH or not _METRIC_KEY.match(key):
                continue
            if isinstance(value, Mapping):
                if depth < MAX_METRIC_DEPTH:
                    walk(value, name + ".", depth + 1)
                continue
            clean = _metric_value(value)
            if clean is not None:
                found[name] = clean

    if isinstance(document, Mapping):
        walk(document, "", 1)
    return {k: found[k] for k in sorted(found)[:MAX_METRICS]}


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key[:40]!r}")
        result[key] = value
    return result


def load_json(body: bytes) -> object:
    """Strict JSON (no NaN/Infinity, no duplicate keys); ValueError on anything else."""
    if len(body) > MAX_BODY_BYTES:
        raise ValueError(f"body is larger than {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(
            body.decode("utf-8"),
            parse_constant=_reject_constant,
            object_pairs_hook=_no_duplicates,
        )
    except RecursionError:
        raise ValueError("JSON is nested too deeply") from None
    except UnicodeDecodeError:
        raise ValueError("body is not UTF-8") from None


def metrics_from_body(body: bytes) -> dict[str, MetricValue] | None:
    """Metrics from a health endpoint's response body; None when it is not a JSON object."""
    try:
        document = load_json(body)
    except ValueError:
        return None
    return sanitize_metrics(document) if isinstance(document, Mapping) else None


def _message(text: str) -> str:
    clean = "".join(c if c.isprintable() else " " for c in text).strip()
    return clean if len(clean) <= MAX_MESSAGE_LENGTH else clean[: MAX_MESSAGE_LENGTH - 3] + "..."


# --------------------------------------------------------------------------------------------
# Heartbeats
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# The state machine
# --------------------------------------------------------------------------------------------


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
    if workload.available:
        return ProbeResult(ok=True)
    return ProbeResult(
        ok=False,
        error=(
            f"deployment not available ({workload.ready_replicas}/"
            f"{workload.desired_replicas} replicas ready)"
        ),
    )


# --------------------------------------------------------------------------------------------
# Status: what is stored, and when to write it
# --------------------------------------------------------------------------------------------

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
