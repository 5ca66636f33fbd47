"""The pure health core: probe targets, the state machine, metrics and status patches."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vivified.health import (
    MAX_METRIC_STRING_LENGTH,
    MAX_METRICS,
    TIMESTAMP_REFRESH_FACTOR,
    Health,
    HealthPolicy,
    HealthState,
    Heartbeat,
    HeartbeatError,
    ProbeAddressResolver,
    ProbeKind,
    ProbeResult,
    ProbeTarget,
    combine,
    heartbeat_check,
    load_json,
    metrics_from_body,
    observe_heartbeat,
    observe_probe,
    parse_heartbeat,
    probe_target,
    readiness_check,
    safe_probe_path,
    sanitize_metrics,
    state_from_status,
    status_fields,
    status_patch,
)
from vivified.resource import PluginSpec
from vivified.settings import OperatorSettings
from vivified.status import WorkloadFacts

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
PID = "user-management"
OK = ProbeResult(ok=True)
TIMEOUT = ProbeResult(ok=False, error="health check timeout")
U, H, D, X = Health.UNKNOWN, Health.HEALTHY, Health.DEGRADED, Health.UNHEALTHY


def policy(threshold: int = 3, interval: float = 30, disable_after: int = 0) -> HealthPolicy:
    return HealthPolicy(
        failure_threshold=threshold, interval_seconds=interval, disable_after=disable_after
    )


def spec(health_check: dict[str, Any] | None = None, **extra: Any) -> PluginSpec:
    manifest: dict[str, Any] = {
        "id": PID,
        "name": "User Management Plugin",
        "version": "1.0.0",
        "contracts": ["IdentityPlugin"],
        "traits": ["handles_pii", "audit_required"],
        "endpoints": extra.pop("endpoints", {}),
        "security": {"authentication_required": True, "data_classification": ["pii"]},
        "compliance": {"audit_level": "detailed"},
    }
    if health_check is not None:
        manifest["health_check"] = health_check
    return PluginSpec.model_validate(
        {"manifest": manifest, "image": "registry.example.com/um:1.0.0", **extra}
    )


def run(results: list[ProbeResult], threshold: int = 3) -> list[Health]:
    state = HealthState()
    seen = []
    for i, result in enumerate(results):
        state = observe_probe(
            PID, state, result, policy(threshold), NOW + timedelta(seconds=i)
        ).state
        seen.append(state.health)
    return seen


# --------------------------------------------------------------------------------------------
# probe_target
# --------------------------------------------------------------------------------------------


def test_http_health_check_with_operator_defaults() -> None:
    s = OperatorSettings(
        health_interval_seconds=20, health_timeout_seconds=4, health_failure_threshold=5
    )
    target = probe_target(spec({"type": "http", "port": 8000, "path": "/health"}), s)
    assert target == ProbeTarget(
        plugin_id=PID,
        kind=ProbeKind.HTTP,
        port=8000,
        path="/health",
        interval_seconds=20,
        timeout_seconds=4,
        failure_threshold=5,
        source="health_check",
    )


def test_manifest_timings_win_over_operator_defaults() -> None:
    hc = {"type": "http", "interval_seconds": 2, "timeout_seconds": 1, "failure_threshold": 4}
    target = probe_target(spec(hc, port=9000), OperatorSettings())
    assert target is not None
    assert (target.interval_seconds, target.timeout_seconds, target.failure_threshold) == (2, 1, 4)
    assert (target.port, target.path) == (9000, "/health")


def test_timeout_never_exceeds_the_interval() -> None:
    s = OperatorSettings(health_interval_seconds=1, health_timeout_seconds=5)
    target = probe_target(spec({"type": "http"}), s)
    assert target is not None
    assert (target.interval_seconds, target.timeout_seconds) == (1, 1)


def test_tcp_and_custom_checks() -> None:
    tcp = probe_target(spec({"type": "tcp", "port": 7000}), OperatorSettings())
    assert tcp is not None
    assert (tcp.kind, tcp.port, tcp.path) == (ProbeKind.TCP, 7000, "")
    custom = probe_target(spec({"type": "custom"}), OperatorSettings())
    assert custom is not None
    assert (custom.kind, custom.port, custom.source) == (ProbeKind.HEARTBEAT, 8000, "health_check")


def test_without_health_check_the_health_endpoint_is_probed() -> None:
    target = probe_target(spec(endpoints={"health": "/healthz"}, port=8080), OperatorSettings())
    assert target is not None
    assert (target.kind, target.port, target.path, target.source) == (
        ProbeKind.HTTP,
        8080,
        "/healthz",
        "endpoints.health",
    )
    assert target.interval_seconds == OperatorSettings().health_interval_seconds


def test_without_any_check_health_follows_the_deployment() -> None:
    target = probe_target(spec(endpoints={"info": "/info"}), OperatorSettings())
    assert target is not None
    assert (target.kind, target.source) == (ProbeKind.READINESS, "deployment")


def test_disabled_or_scaled_to_zero_plugins_are_not_monitored() -> None:
    assert probe_target(spec({"type": "http"}, enabled=False), OperatorSettings()) is None
    assert probe_target(spec({"type": "http"}, replicas=0), OperatorSettings()) is None


@pytest.mark.parametrize(
    "path",
    [
        "/health/../../../secrets",
        "/a/./b",
        "/%2e%2e/x",
        "/a//b",
        "/ health",
        "/a#frag",
        "/" + "a" * 600,
    ],
)
def test_unsafe_probe_paths_are_flagged(path: str) -> None:
    assert safe_probe_path(path) is not None


@pytest.mark.parametrize("path", ["/health", "/api/v1/health", "/health?verbose=1", "/a.b/c-d_e~"])
def test_plain_probe_paths_are_fine(path: str) -> None:
    assert safe_probe_path(path) is None


def test_unsafe_endpoint_path_becomes_a_problem_not_a_request() -> None:
    target = probe_target(spec(endpoints={"health": "/x/../../y"}), OperatorSettings())
    assert target is not None
    assert target.problem is not None


# --------------------------------------------------------------------------------------------
# Address resolution: configuration only
# --------------------------------------------------------------------------------------------


def _target(**kwargs: Any) -> ProbeTarget:
    base: dict[str, Any] = {
        "plugin_id": PID,
        "kind": ProbeKind.HTTP,
        "port": 8000,
        "path": "/health",
        "interval_seconds": 30,
        "timeout_seconds": 5,
        "failure_threshold": 3,
        "source": "health_check",
    }
    base.update(kwargs)
    return ProbeTarget(**base)


def test_direct_mode_dials_the_service() -> None:
    address = ProbeAddressResolver(OperatorSettings()).resolve(("team-a", PID), _target())
    assert address is not None
    assert address.url == "http://user-management.team-a.svc:8000/health"


def test_overrides_win_in_every_mode() -> None:
    for mode in ("direct", "apiserver-proxy", "overrides"):
        s = OperatorSettings(
            probe_mode=mode,
            probe_address_overrides={"team-a/user-management": "127.0.0.1:18080"},
        )
        address = ProbeAddressResolver(s).resolve(("team-a", PID), _target())
        assert address is not None
        assert address.url == "http://127.0.0.1:18080/health"
        assert address.via == "direct"


def test_ipv6_override() -> None:
    s = OperatorSettings(probe_address_overrides={"ns/user-management": "[::1]:9000"})
    address = ProbeAddressResolver(s).resolve(("ns", PID), _target())
    assert address is not None
    assert address.url == "http://[::1]:9000/health"


def test_overrides_mode_probes_nothing_else() -> None:
    s = OperatorSettings(
        probe_mode="overrides", probe_address_overrides={"ns/other": "127.0.0.1:1"}
    )
    assert ProbeAddressResolver(s).resolve(("ns", PID), _target()) is None


def test_apiserver_proxy_path() -> None:
    s = OperatorSettings(probe_mode="apiserver-proxy")
    address = ProbeAddressResolver(s).resolve(("team-a", PID), _target(port=8080))
    assert address is not None
    assert address.via == "apiserver-proxy"
    assert address.url == "/api/v1/namespaces/team-a/services/user-management:8080/proxy/health"


# --------------------------------------------------------------------------------------------
# The state machine
# --------------------------------------------------------------------------------------------


def test_unknown_until_the_first_probe() -> None:
    assert HealthState().health is U
    assert status_fields(HealthState())["health"] == "unknown"


def test_first_success_is_healthy_first_failure_is_degraded() -> None:
    assert run([OK]) == [H]
    assert run([TIMEOUT]) == [D]


@pytest.mark.parametrize("threshold", [1, 2, 3, 5, 10])
def test_threshold_bounds(threshold: int) -> None:
    seen = run([OK] + [TIMEOUT] * (threshold + 1), threshold)
    assert seen[0] is H
    failures = seen[1:]
    assert failures[: threshold - 1] == [D] * (threshold - 1)
    assert failures[threshold - 1] is X  # exactly at the threshold
    assert failures[threshold] is X  # and it stays there


def test_a_success_recovers_from_any_state() -> None:
    assert run([TIMEOUT, OK]) == [D, H]
    assert run([TIMEOUT] * 3 + [OK]) == [D, D, X, H]
    assert run([OK, OK]) == [H, H]


def test_failures_must_be_consecutive() -> None:
    assert run([TIMEOUT, TIMEOUT, OK, TIMEOUT, TIMEOUT]) == [D, D, H, D, D]


def test_counts_errors_and_times() -> None:
    state = HealthState()
    p = policy()
    state = observe_probe(PID, state, TIMEOUT, p, NOW).state
    assert state.consecutive_failures == 1
    assert state.last_error == "health check timeout"
    assert state.last_probe_time == NOW
    state = observe_probe(PID, state, ProbeResult(ok=False), p, NOW).state
    assert state.last_error == "health check failed"
    state = observe_probe(PID, state, OK, p, NOW).state
    assert (state.consecutive_failures, state.last_error) == (0, None)


def test_errors_are_cleaned_and_cut() -> None:
    result = ProbeResult(ok=False, error="bad\x00\nthing " + "x" * 1000)
    state = observe_probe(PID, HealthState(), result, policy(), NOW).state
    assert state.last_error is not None
    assert len(state.last_error) == 256
    assert state.last_error.startswith("bad  thing")
    assert state.last_error.endswith("...")


def test_events_say_what_happened() -> None:
    p = policy()
    state = HealthState()
    outcome = observe_probe(PID, state, OK, p, NOW)
    assert outcome.changed
    assert outcome.event is not None
    assert (outcome.event.type, outcome.event.reason) == ("Normal", "PluginHealthy")
    assert outcome.event.message == "Plugin user-management is healthy"
    state = outcome.state
    outcome = observe_probe(PID, state, TIMEOUT, p, NOW)
    assert outcome.event is not None
    assert (outcome.event.type, outcome.event.reason) == ("Warning", "PluginDegraded")
    assert outcome.event.message == "Plugin user-management is degraded: health check timeout"
    state = outcome.state
    outcome = observe_probe(PID, state, TIMEOUT, p, NOW)
    assert not outcome.changed
    assert outcome.event is None
    outcome = observe_probe(PID, outcome.state, TIMEOUT, p, NOW)
    assert outcome.event is not None
    assert (outcome.event.type, outcome.event.reason) == ("Warning", "PluginUnhealthy")
    assert outcome.event.message == "Plugin user-management is unhealthy: health check timeout"
    outcome = observe_probe(PID, outcome.state, OK, p, NOW)
    assert outcome.event is not None
    assert outcome.event.message == "Plugin user-management is healthy again"


def test_disable_policy_fires_once_after_n_unhealthy_probes() -> None:
    p = policy(threshold=3, disable_after=2)
    state = HealthState()
    fired = []
    for _ in range(6):
        outcome = observe_probe(PID, state, TIMEOUT, p, NOW)
        state = outcome.state
        fired.append(outcome.disable)
    # failures 1,2 degraded; 3 = first unhealthy probe; 4 = second → disable, once.
    assert fired == [False, False, False, True, False, False]


def test_disable_policy_off_by_default() -> None:
    state = HealthState()
    for _ in range(10):
        outcome = observe_probe(PID, state, TIMEOUT, policy(), NOW)
        assert not outcome.disable
        state = outcome.state


def test_metrics_are_replaced_only_when_a_result_has_some() -> None:
    p = policy()
    state = observe_probe(PID, HealthState(), ProbeResult(ok=True, metrics={"a": 1}), p, NOW).state
    assert dict(state.metrics) == {"a": 1}
    state = observe_probe(PID, state, TIMEOUT, p, NOW).state
    assert dict(state.metrics) == {"a": 1}  # last known while failing
    state = observe_probe(PID, state, ProbeResult(ok=True, metrics={}), p, NOW).state
    assert dict(state.metrics) == {}


@pytest.mark.parametrize(
    ("probed", "reported", "visible"),
    [
        (U, None, U),
        (U, H, H),
        (U, D, D),
        (H, None, H),
        (H, H, H),
        (H, D, D),
        (H, X, X),
        (D, H, D),
        (X, H, X),
        (D, X, X),
        (X, D, X),
        (H, U, H),
    ],
)
def test_combine_takes_the_worse(probed: Health, reported: Health | None, visible: Health) -> None:
    assert combine(probed, reported) is visible


# --------------------------------------------------------------------------------------------
# Heartbeats
# --------------------------------------------------------------------------------------------


def test_reported_trouble_makes_health_worse_but_expires() -> None:
    p = policy(threshold=3, interval=10)
    state = observe_probe(PID, HealthState(), OK, p, NOW).state
    beat = Heartbeat(health=X, message="database down")
    outcome = observe_heartbeat(PID, state, beat, p, NOW, proves_liveness=False)
    assert outcome.state.health is X
    assert outcome.event is not None
    assert outcome.event.message == (
        "Plugin user-management is unhealthy: reported by the plugin: database down"
    )
    assert outcome.state.last_heartbeat_time == NOW
    # Within 3 x 10 s a passing probe does not hide the report...
    later = observe_probe(PID, outcome.state, OK, p, NOW + timedelta(seconds=30)).state
    assert later.health is X
    # ...after that it no longer counts.
    later = observe_probe(PID, later, OK, p, NOW + timedelta(seconds=31)).state
    assert later.health is H


def test_reported_healthy_does_not_hide_a_failing_probe() -> None:
    p = policy()
    state = HealthState()
    for _ in range(3):
        state = observe_probe(PID, state, TIMEOUT, p, NOW).state
    beat = Heartbeat(health=H)
    assert observe_heartbeat(PID, state, beat, p, NOW, proves_liveness=False).state.health is X


def test_heartbeat_metrics_replace_probe_metrics() -> None:
    p = policy()
    state = observe_probe(PID, HealthState(), ProbeResult(ok=True, metrics={"a": 1}), p, NOW).state
    beat = Heartbeat(metrics={"b": 2})
    state = observe_heartbeat(PID, state, beat, p, NOW, proves_liveness=False).state
    assert dict(state.metrics) == {"b": 2}
    state = observe_heartbeat(PID, state, Heartbeat(), p, NOW, proves_liveness=False).state
    assert dict(state.metrics) == {"b": 2}


def test_heartbeat_only_unknown_until_threshold_then_unhealthy() -> None:
    p = policy(threshold=3, interval=10)
    state = HealthState()
    seen = []
    for i in range(1, 5):
        result = heartbeat_check(state, p, NOW + timedelta(seconds=10 * i), timeout_seconds=5)
        assert not result.ok
        assert result.grace
        state = observe_probe(PID, state, result, p, NOW + timedelta(seconds=10 * i)).state
        seen.append(state.health)
    assert seen == [U, U, X, X]
    assert state.last_error == "no heartbeat received in 40s"


def test_heartbeat_only_beat_is_liveness() -> None:
    p = policy(threshold=3, interval=10)
    state = HealthState()
    for _ in range(3):
        result = heartbeat_check(state, p, NOW, timeout_seconds=5)
        state = observe_probe(PID, state, result, p, NOW).state
    assert state.health is X
    outcome = observe_heartbeat(PID, state, Heartbeat(), p, NOW, proves_liveness=True)
    assert outcome.state.health is H
    assert outcome.state.consecutive_failures == 0
    assert outcome.event is not None
    assert outcome.event.message == "Plugin user-management is healthy again"
    state = outcome.state
    # Fresh within interval + timeout, stale after.
    assert heartbeat_check(state, p, NOW + timedelta(seconds=15), timeout_seconds=5).ok
    missed = heartbeat_check(state, p, NOW + timedelta(seconds=16), timeout_seconds=5)
    assert not missed.ok
    assert not missed.grace
    assert missed.error == "no heartbeat for 16s"
    state = observe_probe(PID, state, missed, p, NOW + timedelta(seconds=16)).state
    assert state.health is D


def test_heartbeat_reporting_degraded_for_heartbeat_only_plugin() -> None:
    p = policy()
    outcome = observe_heartbeat(
        PID, HealthState(), Heartbeat(health=D), p, NOW, proves_liveness=True
    )
    assert outcome.state.health is D


@pytest.mark.parametrize(
    ("body", "health"),
    [
        ({}, H),
        ({"status": "active"}, H),
        ({"status": "OK"}, H),
        ({"status": "degraded"}, D),
        ({"status": "unhealthy"}, X),
        ({"status": "error"}, X),
    ],
)
def test_parse_heartbeat_status_words(body: dict[str, Any], health: Health) -> None:
    assert parse_heartbeat(body).health is health


def test_parse_heartbeat_merges_seed_health_object_and_metrics() -> None:
    beat = parse_heartbeat(
        {
            "plugin_id": PID,
            "status": "active",
            "health": {"uptime": 5, "memory_usage": 100},
            "metrics": {"uptime": 6, "queue": 2},
            "message": "all\x07 good",
            "extra": "ignored",
        }
    )
    assert beat.plugin_id == PID
    assert dict(beat.metrics or {}) == {"memory_usage": 100, "queue": 2, "uptime": 6}
    assert beat.message == "all  good"


@pytest.mark.parametrize(
    "body",
    [
        [],
        "healthy",
        None,
        {"plugin_id": ""},
        {"plugin_id": 3},
        {"status": "fine"},
        {"status": 1},
        {"message": 1},
        {"metrics": [1, 2]},
        {"health": "good"},
    ],
)
def test_parse_heartbeat_rejects(body: Any) -> None:
    with pytest.raises(HeartbeatError):
        parse_heartbeat(body)


def test_readiness_check() -> None:
    assert readiness_check(None) is None
    assert readiness_check(WorkloadFacts()) is None
    ready = WorkloadFacts(exists=True, desired_replicas=2, ready_replicas=2, available=True)
    assert readiness_check(ready) == ProbeResult(ok=True)
    down = WorkloadFacts(exists=True, desired_replicas=2, ready_replicas=1, available=False)
    result = readiness_check(down)
    assert result is not None
    assert not result.ok
    assert result.error == "deployment not available (1/2 replicas ready)"
    zero = WorkloadFacts(exists=True, desired_replicas=0, ready_replicas=0, available=True)
    assert readiness_check(zero) is None


# --------------------------------------------------------------------------------------------
# Metrics sanitising: hostile input
# --------------------------------------------------------------------------------------------


def test_sanitize_keeps_numbers_and_short_strings() -> None:
    metrics = sanitize_metrics(
        {
            "status": "healthy",
            "uptime_seconds": 12.5,
            "memory_usage": 123456,
            "ok": True,
            "none": None,
            "list": [1, 2],
            "nan": float("nan"),
            "inf": float("inf"),
            "huge": 2**60,
            "long": "x" * (MAX_METRIC_STRING_LENGTH + 1),
            "ctrl": "a\x1b[31mred",
            "bad key!": 1,
            "-dash": 1,
            "memory": {"rss": 10, "deep": {"deeper": 1}},
            3: "int key",
        }
    )
    assert metrics == {
        "memory.rss": 10,
        "memory_usage": 123456,
        "status": "healthy",
        "uptime_seconds": 12.5,
    }


def test_sanitize_caps_count_and_key_length() -> None:
    doc = {f"m{i:03d}": i for i in range(100)}
    doc["k" * 65] = 1
    metrics = sanitize_metrics(doc)
    assert len(metrics) == MAX_METRICS
    assert list(metrics) == [f"m{i:03d}" for i in range(MAX_METRICS)]
    assert sanitize_metrics({"a" * 64: 1}) == {"a" * 64: 1}


def test_sanitize_non_objects() -> None:
    for doc in (None, [], "x", 1, [{"a": 1}]):
        assert sanitize_metrics(doc) == {}


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=200),
        lambda children: (
            st.lists(children, max_size=5)
            | st.dictionaries(st.text(max_size=80), children, max_size=30)
        ),
        max_leaves=60,
    )
)
def test_sanitize_output_is_always_small_and_scalar(doc: Any) -> None:
    metrics = sanitize_metrics(doc)
    assert len(metrics) <= MAX_METRICS
    for key, value in metrics.items():
        assert len(key) <= 64
        assert isinstance(value, int | float | str)
        assert not isinstance(value, bool)
        if isinstance(value, str):
            assert len(value) <= MAX_METRIC_STRING_LENGTH
    json.dumps(metrics, allow_nan=False)  # always serialisable as strict JSON


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"a": NaN}',
        b'{"a": 1, "a": 2}',
        b"[" * 100_000,
        b"\xff",
        b"[1]",
        b" " * 70_000,
    ],
)
def test_metrics_from_bad_bodies(body: bytes) -> None:
    assert metrics_from_body(body) is None


def test_metrics_from_body() -> None:
    assert metrics_from_body(b'{"uptime": 3, "status": "healthy"}') == {
        "status": "healthy",
        "uptime": 3,
    }


def test_load_json_rejects_depth_bombs() -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        load_json(b"[" * 20_000 + b"]" * 20_000)


# --------------------------------------------------------------------------------------------
# Status fields and write decisions
# --------------------------------------------------------------------------------------------


def test_status_fields() -> None:
    state = HealthState(
        health=D,
        probed=D,
        consecutive_failures=1,
        last_error="connection refused",
        last_probe_time=NOW,
        metrics={"a": 1},
    )
    assert status_fields(state) == {
        "health": "degraded",
        "consecutiveFailures": 1,
        "lastError": "connection refused",
        "lastProbeTime": "2025-03-01T12:00:00Z",
        "lastHeartbeatTime": None,
        "metrics": {"a": 1},
    }


def _fields(**kwargs: Any) -> dict[str, Any]:
    return status_fields(HealthState(**kwargs))


def test_no_patch_when_nothing_changed() -> None:
    fields = _fields(health=H, probed=H, last_probe_time=NOW)
    assert status_patch(fields, fields, now=NOW, last_write=None, refresh_seconds=60) is None


def test_health_change_is_written_at_once() -> None:
    before = _fields(health=H, probed=H)
    after = _fields(health=D, probed=D, consecutive_failures=1, last_error="x")
    patch = status_patch(after, before, now=NOW, last_write=NOW, refresh_seconds=60)
    assert patch == {"health": "degraded", "consecutiveFailures": 1, "lastError": "x"}


def test_other_changes_wait_for_the_refresh_interval() -> None:
    before = _fields(health=H, metrics={"uptime": 1})
    after = _fields(health=H, metrics={"uptime": 2})
    kwargs: dict[str, Any] = {"refresh_seconds": 60}
    assert status_patch(after, before, now=NOW, last_write=NOW, **kwargs) is None
    soon = NOW + timedelta(seconds=59)
    assert status_patch(after, before, now=soon, last_write=NOW, **kwargs) is None
    due = NOW + timedelta(seconds=60)
    assert status_patch(after, before, now=due, last_write=NOW, **kwargs) == {
        "metrics": {"uptime": 2}
    }
    assert status_patch(after, before, now=NOW, last_write=None, **kwargs) is not None


def test_timestamps_alone_wait_longer() -> None:
    before = _fields(health=H, last_probe_time=NOW)
    after = _fields(health=H, last_probe_time=NOW + timedelta(seconds=30))
    wait = 60 * TIMESTAMP_REFRESH_FACTOR
    early = NOW + timedelta(seconds=wait - 1)
    assert status_patch(after, before, now=early, last_write=NOW, refresh_seconds=60) is None
    due = NOW + timedelta(seconds=wait)
    patch = status_patch(after, before, now=due, last_write=NOW, refresh_seconds=60)
    assert patch == {"lastProbeTime": "2025-03-01T12:00:30Z"}


def test_metrics_patch_removes_vanished_keys() -> None:
    before = _fields(health=H, metrics={"a": 1, "b": 2})
    after = _fields(health=D, probed=D, metrics={"a": 3})
    patch = status_patch(after, before, now=NOW, last_write=None, refresh_seconds=60)
    assert patch is not None
    assert patch["metrics"] == {"a": 3, "b": None}
    emptied = _fields(health=D, probed=D)
    patch = status_patch(emptied, before, now=NOW, last_write=None, refresh_seconds=60)
    assert patch is not None
    assert patch["metrics"] is None


def test_resume_from_stored_status() -> None:
    status = {
        "phase": "Active",
        "health": "unhealthy",
        "consecutiveFailures": 4,
        "lastError": "connection refused",
        "lastProbeTime": "2025-03-01T12:00:00Z",
        "metrics": {"uptime": 5, "evil": {"x": {"y": {"z": 1}}}},
    }
    state, written = state_from_status(status)
    assert (state.health, state.probed, state.consecutive_failures) == (X, X, 4)
    assert state.last_probe_time == NOW
    assert dict(state.metrics) == {"uptime": 5}
    assert written["health"] == "unhealthy"
    assert written["metrics"] == status["metrics"]
    # The next failure continues the count: no spurious change, no event.
    outcome = observe_probe(PID, state, TIMEOUT, policy(), NOW)
    assert not outcome.changed
    assert outcome.state.consecutive_failures == 5


@pytest.mark.parametrize(
    "status",
    [None, {}, {"health": "weird", "consecutiveFailures": "3", "lastProbeTime": "yesterday"}],
)
def test_resume_from_empty_or_bad_status(status: Any) -> None:
    state, _ = state_from_status(status)
    assert state == HealthState()
