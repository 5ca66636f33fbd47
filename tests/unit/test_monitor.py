"""The probe scheduler: bounded concurrency, small lag, writes only when they matter."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web

from vivified.health import (
    Health,
    Heartbeat,
    ProbeAddress,
    ProbeAddressResolver,
    ProbeKind,
    ProbeResult,
    ProbeTarget,
)
from vivified.settings import OperatorSettings
from vivified.shell.events import EventRecorder
from vivified.shell.kube import KubeError
from vivified.shell.monitor import HealthMonitor, NetworkProber, describe_error
from vivified.status import WorkloadFacts

NS = "team-a"


class ManualClock:
    """The monitor's datetime clock, moved by the test (write rate limits use it)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def utc_now() -> datetime:
    return datetime.now(UTC)


class FakeKube:
    """Records status patches and other requests; can be told to fail."""

    def __init__(self) -> None:
        self.patches: list[tuple[str, str, dict[str, Any]]] = []
        self.requests: list[tuple[str, str, Any]] = []
        self.fail: KubeError | None = None

    async def patch_status(
        self, kind: str, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        assert kind == "VivifiedPlugin"
        if self.fail is not None:
            raise self.fail
        self.patches.append((namespace, name, status))
        return {}

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        self.requests.append((method, path, kwargs.get("body")))
        return {}

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        return [
            body
            for method, path, body in self.requests
            if method == "POST"
            and path.endswith("/events")
            and (name is None or body["involvedObject"]["name"] == name)
        ]

    def patches_for(self, name: str) -> list[dict[str, Any]]:
        return [p for _, n, p in self.patches if n == name]


class ScriptedProber:
    """Answers from a per-plugin script (last answer repeats), counting concurrency."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.scripts: dict[str, list[ProbeResult]] = {}
        self.calls: dict[str, int] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.addresses: list[ProbeAddress] = []

    async def __call__(self, target: ProbeTarget, address: ProbeAddress) -> ProbeResult:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.addresses.append(address)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            n = self.calls.get(target.plugin_id, 0)
            self.calls[target.plugin_id] = n + 1
            script = self.scripts.get(target.plugin_id) or [ProbeResult(ok=True)]
            return script[min(n, len(script) - 1)]
        finally:
            self.in_flight -= 1


def target(
    plugin_id: str,
    *,
    interval: float = 0.05,
    threshold: int = 3,
    kind: ProbeKind = ProbeKind.HTTP,
    problem: str | None = None,
) -> ProbeTarget:
    return ProbeTarget(
        plugin_id=plugin_id,
        kind=kind,
        port=8000,
        path="/health" if kind is ProbeKind.HTTP else "",
        interval_seconds=interval,  # type: ignore[arg-type]  # fractions speed tests up
        timeout_seconds=1,
        failure_threshold=threshold,
        source="health_check",
        problem=problem,
    )


def body(name: str, status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "vivified.dev/v1alpha1",
        "kind": "VivifiedPlugin",
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}"},
        "status": status or {},
    }


Factory = Callable[..., tuple[HealthMonitor, FakeKube, ScriptedProber]]


@pytest.fixture
async def make() -> AsyncIterator[Factory]:
    monitors: list[HealthMonitor] = []

    def factory(
        *,
        concurrency: int = 64,
        delay: float = 0.0,
        workloads: Callable[..., WorkloadFacts | None] | None = None,
        clock: Callable[[], datetime] = utc_now,
        **settings: Any,
    ) -> tuple[HealthMonitor, FakeKube, ScriptedProber]:
        s = OperatorSettings(**settings)
        kube = FakeKube()
        prober = ScriptedProber(delay)
        monitor = HealthMonitor(
            kube,  # type: ignore[arg-type]
            EventRecorder(kube, clock),  # type: ignore[arg-type]
            s,
            clock,
            resolver=ProbeAddressResolver(s),
            concurrency=concurrency,
            prober=prober,
            workloads=workloads,
        )
        monitors.append(monitor)
        return monitor, kube, prober

    yield factory
    for monitor in monitors:
        await monitor.stop()


async def eventually(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


# --------------------------------------------------------------------------------------------
# Scheduling
# --------------------------------------------------------------------------------------------


async def test_concurrency_is_bounded(make: Factory) -> None:
    monitor, _, prober = make(concurrency=5, delay=0.05)
    for i in range(40):
        monitor.track((NS, f"p{i}"), target(f"p{i}", interval=0.1))
    await monitor.start()
    await eventually(lambda: sum(prober.calls.values()) > 40)  # and the work gets done
    assert prober.max_in_flight == 5
    assert monitor.stats.max_in_flight == 5


# Due times (fixed rate, catch-up, spread) are tested without a clock in test_schedule.py; the
# lag under load is a benchmark (bench/health_probes.py), not a unit test.


async def test_track_is_idempotent_and_untrack_stops(make: Factory) -> None:
    monitor, _, prober = make()
    t = target("a", interval=0.1)
    for _ in range(5):
        monitor.track((NS, "a"), t, body("a"))
    assert monitor.scheduled((NS, "a")) == 1  # one schedule, not five
    await monitor.start()
    await eventually(lambda: prober.calls.get("a", 0) >= 3)
    assert monitor.scheduled((NS, "a")) == 1
    monitor.untrack((NS, "a"))
    assert monitor.tracked((NS, "a")) is None
    assert monitor.scheduled((NS, "a")) == 0  # what is left in the queue is stale


async def test_untrack_and_track_again_keeps_one_schedule(make: Factory) -> None:
    monitor, _, prober = make()
    await monitor.start()
    for _ in range(5):
        monitor.track((NS, "a"), target("a", interval=0.1))
        monitor.untrack((NS, "a"))
    monitor.track((NS, "a"), target("a", interval=0.1))
    assert monitor.scheduled((NS, "a")) == 1  # the five earlier schedules are stale
    await eventually(lambda: prober.calls.get("a", 0) >= 3)
    assert monitor.scheduled((NS, "a")) == 1


async def test_changed_target_takes_effect(make: Factory) -> None:
    monitor, _, prober = make()
    monitor.track((NS, "a"), target("a", interval=10))
    await monitor.start()
    await eventually(lambda: prober.calls.get("a", 0) >= 1)  # the first, spread probe
    before = prober.calls["a"]
    monitor.track((NS, "a"), target("a", interval=0.05))
    await eventually(lambda: prober.calls["a"] >= before + 5)  # not ten seconds later
    assert monitor.tracked((NS, "a")) == target("a", interval=0.05)


async def test_tracking_before_start_works(make: Factory) -> None:
    monitor, _, prober = make()
    monitor.track((NS, "a"), target("a"))
    await monitor.start()
    await eventually(lambda: prober.calls.get("a", 0) >= 2)


# --------------------------------------------------------------------------------------------
# Status writes and events
# --------------------------------------------------------------------------------------------


async def test_no_status_write_while_health_is_unchanged(make: Factory) -> None:
    monitor, kube, prober = make()
    for i in range(10):
        monitor.track((NS, f"p{i}"), target(f"p{i}", interval=0.05), body(f"p{i}"))
    await monitor.start()
    await eventually(lambda: len(prober.calls) == 10 and min(prober.calls.values()) >= 10)
    # One write per plugin: unknown -> healthy. Nothing after, although every probe ran.
    assert len(kube.patches) == 10
    assert all(p["health"] == "healthy" for _, _, p in kube.patches)
    assert len(kube.events()) == 10
    assert monitor.stats.status_writes == 10


async def test_a_stale_seed_over_a_probe_result_is_written_back(make: Factory) -> None:
    """The reconciler's first status patch, built from a copy that had no health yet, seeds
    ``unknown`` over the monitor's fresh ``healthy``: the next sight of the CR repairs it."""
    monitor, kube, _ = make()
    key, probe = (NS, "p"), target("p", interval=60.0)
    monitor.track(key, probe, body("p"))
    await monitor.start()
    await eventually(lambda: kube.patches_for("p"))
    assert kube.patches_for("p")[-1]["health"] == "healthy"
    monitor.track(key, probe, body("p", {"health": "unknown"}))  # the stale seed landed
    await eventually(lambda: len(kube.patches_for("p")) == 2)
    assert kube.patches_for("p")[-1]["health"] == "healthy"
    monitor.track(key, probe, body("p", {"health": "healthy"}))  # agrees now: no write
    await asyncio.sleep(0)
    assert len(kube.patches_for("p")) == 2


async def test_transitions_are_written_with_events(make: Factory) -> None:
    monitor, kube, prober = make()
    fail = ProbeResult(ok=False, error="health check timeout")
    prober.scripts["um"] = [
        ProbeResult(ok=True, metrics={"uptime_seconds": 1.0, "memory_usage": 1000}),
        fail,
        fail,
        fail,
        fail,
        ProbeResult(ok=True, metrics={"uptime_seconds": 2.0}),
    ]
    monitor.track((NS, "um"), target("um", interval=0.05), body("um"))
    await monitor.start()
    await eventually(lambda: len([p for p in kube.patches_for("um") if "health" in p]) >= 4)
    await eventually(lambda: len(kube.events("um")) >= 4)
    healths = [p["health"] for p in kube.patches_for("um") if "health" in p]
    assert healths == ["healthy", "degraded", "unhealthy", "healthy"]
    first = kube.patches_for("um")[0]
    assert first["metrics"] == {"memory_usage": 1000, "uptime_seconds": 1.0}
    assert first["consecutiveFailures"] == 0
    assert "lastProbeTime" in first
    degraded = kube.patches_for("um")[1]
    assert degraded["consecutiveFailures"] == 1
    assert degraded["lastError"] == "health check timeout"
    recovered = kube.patches_for("um")[3]
    assert recovered["lastError"] is None
    assert recovered["metrics"] == {"uptime_seconds": 2.0, "memory_usage": None}
    events = [(e["type"], e["reason"], e["message"]) for e in kube.events("um")]
    assert events == [
        ("Normal", "PluginHealthy", "Plugin um is healthy"),
        ("Warning", "PluginDegraded", "Plugin um is degraded: health check timeout"),
        ("Warning", "PluginUnhealthy", "Plugin um is unhealthy: health check timeout"),
        ("Normal", "PluginHealthy", "Plugin um is healthy again"),
    ]
    assert kube.events("um")[0]["involvedObject"]["uid"] == "uid-um"
    for _, _, patch in kube.patches:
        assert "conditions" not in patch
        assert "phase" not in patch


async def test_refresh_writes_are_rate_limited(make: Factory) -> None:
    clock = ManualClock()
    monitor, kube, prober = make(health_status_refresh_seconds=60, clock=clock)
    prober.scripts["m"] = [ProbeResult(ok=True, metrics={"n": i}) for i in range(100000)]
    monitor.track((NS, "m"), target("m", interval=0.01), body("m"))
    await monitor.start()
    await eventually(lambda: prober.calls.get("m", 0) >= 20)
    assert len(kube.patches_for("m")) == 1  # the change of health; metrics wait
    clock.advance(61)
    await eventually(lambda: len(kube.patches_for("m")) == 2)  # due: one refresh
    calls = prober.calls["m"]
    await eventually(lambda: prober.calls["m"] >= calls + 20)
    assert len(kube.patches_for("m")) == 2


async def test_resumed_status_causes_no_write_or_event(make: Factory) -> None:
    monitor, kube, prober = make()
    stored = {"health": "healthy", "consecutiveFailures": 0, "phase": "Active"}
    monitor.track((NS, "a"), target("a"), body("a", stored))
    await monitor.start()
    await eventually(lambda: prober.calls.get("a", 0) >= 5)
    assert kube.patches == []
    assert kube.events() == []
    state = monitor.health((NS, "a"))
    assert state is not None
    assert state.health is Health.HEALTHY


async def test_failed_writes_are_retried_on_the_next_probe(make: Factory) -> None:
    monitor, kube, prober = make()
    kube.fail = KubeError(500, "InternalError", "etcd is sad")
    monitor.track((NS, "a"), target("a"), body("a"))
    await monitor.start()
    await eventually(lambda: prober.calls.get("a", 0) >= 2)
    assert kube.patches == []
    kube.fail = None
    await eventually(lambda: kube.patches_for("a"))
    assert kube.patches_for("a")[0]["health"] == "healthy"


async def test_gone_plugin_write_is_dropped_quietly(make: Factory) -> None:
    monitor, kube, prober = make()
    kube.fail = KubeError(404, "NotFound", "gone")
    monitor.track((NS, "a"), target("a"), body("a"))
    await monitor.start()
    await eventually(lambda: prober.calls.get("a", 0) >= 3)
    assert monitor.stats.status_writes == 0


async def test_untrack_with_clear_resets_health(make: Factory) -> None:
    monitor, kube, _ = make()
    monitor.track((NS, "a"), target("a"), body("a"))
    await monitor.start()
    await eventually(lambda: kube.patches_for("a"))
    monitor.untrack((NS, "a"), clear_status=True)
    await eventually(lambda: len(kube.patches_for("a")) == 2)
    assert kube.patches_for("a")[1] == {
        "health": "unknown",
        "consecutiveFailures": None,
        "lastError": None,
        "lastProbeTime": None,
        "metrics": None,
    }


async def test_disable_policy_patches_spec_enabled(make: Factory) -> None:
    monitor, kube, prober = make(unhealthy_disable_after=2)
    prober.scripts["a"] = [ProbeResult(ok=False, error="connection refused")]
    monitor.track((NS, "a"), target("a", threshold=2), body("a"))
    await monitor.start()
    await eventually(lambda: any(m == "PATCH" for m, _, _ in kube.requests))
    await eventually(lambda: len(kube.events("a")) >= 3)
    calls = prober.calls["a"]
    await eventually(lambda: prober.calls["a"] >= calls + 3)  # still unhealthy: no second patch
    patches = [(p, b) for m, p, b in kube.requests if m == "PATCH"]
    assert patches == [
        (
            "/apis/vivified.dev/v1alpha1/namespaces/team-a/vivifiedplugins/a",
            {"spec": {"enabled": False}},
        )
    ]
    reasons = [e["reason"] for e in kube.events("a")]
    assert reasons == ["PluginDegraded", "PluginUnhealthy", "PluginAutoDisabled"]


async def test_unsafe_path_fails_without_dialling(make: Factory) -> None:
    monitor, kube, prober = make()
    monitor.track((NS, "a"), target("a", problem="health check path must not contain '..'"))
    await monitor.start()
    await eventually(lambda: len(kube.patches_for("a")) >= 1)
    assert prober.calls == {}
    assert kube.patches_for("a")[0]["lastError"] == "health check path must not contain '..'"


async def test_overrides_mode_dials_only_overridden_plugins(make: Factory) -> None:
    monitor, _, prober = make(
        probe_mode="overrides", probe_address_overrides={f"{NS}/a": "127.0.0.1:18080"}
    )
    monitor.track((NS, "a"), target("a"))
    monitor.track((NS, "b"), target("b"))
    await monitor.start()
    await eventually(lambda: prober.calls.get("a", 0) >= 3)
    assert "b" not in prober.calls
    assert {a.url for a in prober.addresses} == {"http://127.0.0.1:18080/health"}


# --------------------------------------------------------------------------------------------
# Heartbeat-only and readiness-based plugins
# --------------------------------------------------------------------------------------------


async def test_heartbeat_only_plugin(make: Factory) -> None:
    monitor, kube, prober = make()
    key = (NS, "hb")
    monitor.track(
        key, target("hb", kind=ProbeKind.HEARTBEAT, interval=0.1, threshold=3), body("hb")
    )
    await monitor.start()
    state = monitor.health(key)
    assert state is not None
    assert state.health is Health.UNKNOWN
    await eventually(lambda: kube.patches_for("hb"))
    # Never degraded while waiting for the first beat: the first write is the verdict.
    assert kube.patches_for("hb")[0]["health"] == "unhealthy"
    assert kube.patches_for("hb")[0]["lastError"].startswith("no heartbeat received in")
    assert monitor.record_heartbeat(key, Heartbeat(metrics={"queue": 1})) is Health.HEALTHY
    await eventually(lambda: len(kube.patches_for("hb")) == 2)
    latest = kube.patches_for("hb")[1]
    assert latest["health"] == "healthy"
    assert latest["metrics"] == {"queue": 1}
    assert "lastHeartbeatTime" in latest
    assert prober.calls == {}  # never dialled


async def test_record_heartbeat_for_untracked_plugin(make: Factory) -> None:
    monitor, _, _ = make()
    assert monitor.record_heartbeat((NS, "nobody"), Heartbeat()) is None


async def test_readiness_based_plugin(make: Factory) -> None:
    facts: dict[tuple[str, str], WorkloadFacts] = {}
    monitor, kube, _ = make(workloads=facts.get)
    key = (NS, "r")
    monitor.track(key, target("r", kind=ProbeKind.READINESS, interval=0.05), body("r"))
    await monitor.start()
    await eventually(lambda: monitor.stats.checks >= 3)
    assert kube.patches == []  # nothing known yet: stays unknown
    facts[key] = WorkloadFacts(exists=True, desired_replicas=1, ready_replicas=1, available=True)
    await eventually(lambda: kube.patches_for("r"))
    assert kube.patches_for("r")[0]["health"] == "healthy"
    facts[key] = replace(facts[key], ready_replicas=0, available=False)
    await eventually(lambda: len(kube.patches_for("r")) >= 3)
    healths = [p["health"] for p in kube.patches_for("r")]
    assert healths[:3] == ["healthy", "degraded", "unhealthy"]
    assert kube.patches_for("r")[1]["lastError"] == "deployment not available (0/1 replicas ready)"


# --------------------------------------------------------------------------------------------
# The real network prober, against loopback servers
# --------------------------------------------------------------------------------------------


@pytest.fixture
async def plugin_server() -> AsyncIterator[int]:
    async def health(_: web.Request) -> web.Response:
        return web.json_response(
            {"status": "healthy", "uptime_seconds": 3.5, "memory_usage": 42, "junk": [1]}
        )

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({})

    async def broken(_: web.Request) -> web.Response:
        return web.Response(status=503, text="nope")

    async def big(_: web.Request) -> web.Response:
        return web.Response(body=b'{"a": "' + b"x" * 200_000 + b'"}')

    async def text(_: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def redirect(_: web.Request) -> web.Response:
        raise web.HTTPFound("http://127.0.0.2:1/elsewhere")

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/slow", slow)
    app.router.add_get("/broken", broken)
    app.router.add_get("/big", big)
    app.router.add_get("/text", text)
    app.router.add_get("/redirect", redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield int(runner.addresses[0][1])
    await runner.cleanup()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _address(port: int, path: str = "/health") -> ProbeAddress:
    return ProbeAddress("direct", "127.0.0.1", port, path)


async def test_network_prober_http(plugin_server: int) -> None:
    prober = NetworkProber()
    await prober.start()
    try:
        t = target("x")
        ok = await prober(t, _address(plugin_server))
        assert ok == ProbeResult(
            ok=True, metrics={"memory_usage": 42, "status": "healthy", "uptime_seconds": 3.5}
        )
        assert await prober(t, _address(plugin_server, "/broken")) == ProbeResult(
            ok=False, error="health check returned HTTP 503"
        )
        assert await prober(t, _address(plugin_server, "/slow")) == ProbeResult(
            ok=False, error="health check timeout"
        )
        assert await prober(t, _address(plugin_server, "/big")) == ProbeResult(ok=True, metrics={})
        assert await prober(t, _address(plugin_server, "/text")) == ProbeResult(ok=True, metrics={})
        redirected = await prober(t, _address(plugin_server, "/redirect"))
        assert redirected == ProbeResult(ok=False, error="health check returned HTTP 302")
        refused = await prober(t, _address(_closed_port()))
        assert refused == ProbeResult(ok=False, error="connection refused")
    finally:
        await prober.close()


async def test_network_prober_tcp(plugin_server: int) -> None:
    prober = NetworkProber()
    t = target("x", kind=ProbeKind.TCP)
    assert await prober(t, _address(plugin_server, "")) == ProbeResult(ok=True)
    assert await prober(t, _address(_closed_port(), "")) == ProbeResult(
        ok=False, error="connection refused"
    )
    await prober.close()


def test_describe_error() -> None:
    assert describe_error(TimeoutError()) == "health check timeout"
    assert describe_error(ConnectionRefusedError(111, "refused")) == "connection refused"
    assert describe_error(OSError(113, "no route")) == "connection failed (EHOSTUNREACH)"
    assert describe_error(RuntimeError("x")) == "health check failed (RuntimeError)"
