"""Health monitoring end to end: a real user-management process on loopback, probed by the
operator through its address override; heartbeats through a real core process (its Lease per
plugin is what the operator reads: the operator accepts no plugin traffic).

Nothing here dials anything but 127.0.0.1: the operator runs with
``VIVIFIED_PROBE_MODE=overrides`` (only the plugins listed in
``VIVIFIED_PROBE_ADDRESS_OVERRIDES`` are probed, never a Service name or a pod IP).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import OperatorProcess, StartOperator
from tests.e2e.core_process import CoreProcess, core_env, free_port
from tests.e2e.kube import REPO, Cluster, load_example, plugin_body, wait_for

pytestmark = pytest.mark.cluster

PLUGIN = "user-management"
PLUGIN_DIR = REPO / "plugins" / "user-management"
INTERVAL = 2  # seconds between probes: degraded lasts two probes, long enough to see


@dataclass
class PluginProcess:
    """``uvicorn user_management.app`` on 127.0.0.1, restartable on the same port."""

    port: int
    workdir: Path
    heartbeat_url: str | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(PLUGIN_DIR), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
            "PLUGIN_TOKEN_FILE": str(self.workdir / "token"),
            "VIVIFIED_JWKS_FILE": str(self.workdir / "jwks.json"),
            "USER_MANAGEMENT_DB": str(self.workdir / "users.db"),
            "USER_MANAGEMENT_HEARTBEAT_SECONDS": "1",
        }
        if self.heartbeat_url:
            env["VIVIFIED_HEARTBEAT_URL"] = self.heartbeat_url
        return env

    def start(self) -> None:
        log = (self.workdir / "plugin.log").open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "user_management.app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
            ],
            env=self.env,
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

        def up() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"plugin exited:\n{self.log()[-3000:]}")
            try:
                return httpx.get(self.url("/health"), timeout=1, trust_env=False).is_success
            except httpx.HTTPError:
                return False

        wait_for("user-management /health", up, timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def log(self) -> str:
        path = self.workdir / "plugin.log"
        return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture
def plugin_process(tmp_path: Path) -> Iterator[PluginProcess]:
    workdir = tmp_path / "plugin"
    workdir.mkdir()
    proc = PluginProcess(port=free_port(), workdir=workdir)
    yield proc
    proc.stop()


class VpWatch:
    """``kubectl get vp NAME --watch`` in the background: the HEALTH column over time."""

    def __init__(self, kubectl: Path, kubeconfig: Path, namespace: str, name: str) -> None:
        self.out = kubeconfig.parent / f"watch-{namespace}-{name}-{time.monotonic_ns()}.txt"
        self._sink = self.out.open("wb")
        self.process = subprocess.Popen(
            [
                str(kubectl),
                "--kubeconfig",
                str(kubeconfig),
                "get",
                "vp",
                name,
                "-n",
                namespace,
                "--watch",
            ],
            stdout=self._sink,
            stderr=subprocess.STDOUT,
        )

    def healths(self) -> list[str]:
        lines = self.out.read_text(errors="replace").splitlines()
        header = next((line.split() for line in lines if line.startswith("NAME")), None)
        if header is None:
            return []
        column = header.index("HEALTH")
        values = []
        for line in lines:
            parts = line.split()
            fresh = parts and parts[0] != "NAME" and len(parts) > column
            if fresh and (not values or values[-1] != parts[column]):
                values.append(parts[column])
        return values

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self._sink.close()


def kubectl_get(kubectl: Path, kubeconfig: Path, namespace: str) -> str:
    return subprocess.run(
        [str(kubectl), "--kubeconfig", str(kubeconfig), "get", "vp", "-n", namespace],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def health_is(cluster: Cluster, namespace: str, name: str, *wanted: str) -> Any:
    status = cluster.status(namespace, name)
    return status if status.get("health") in wanted else None


def event_messages(cluster: Cluster, namespace: str, name: str) -> list[str]:
    events = sorted(
        cluster.events(namespace, name),
        key=lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp,
    )
    return [e.message for e in events if e.reason and e.reason.startswith("Plugin")]


def write_token_files(cluster: Cluster, namespace: str, plugin_id: str, workdir: Path) -> str:
    data = wait_for(
        f"{plugin_id}-token Secret",
        lambda: cluster.secret_data(namespace, f"{plugin_id}-token"),
        timeout=30,
    )
    (workdir / "jwks.json").write_text(data["jwks.json"])
    (workdir / "token").write_text(data["token"])
    return str(data["token"])


def start_monitoring_operator(
    start_operator: StartOperator, namespace: str, overrides: str, **extra: Any
) -> OperatorProcess:
    return start_operator(
        namespace,
        probe_mode="overrides",
        probe_address_overrides=overrides,
        health_interval_seconds=INTERVAL,
        health_timeout_seconds=1,
        health_failure_threshold=3,
        health_status_refresh_seconds=1,
        **extra,
    )


StartCore = Callable[..., CoreProcess]


@pytest.fixture
def start_core(
    namespace: str, operator_namespace: str, kubeconfig_path: Path, tmp_path: Path
) -> Iterator[StartCore]:
    """``start_core(port=None)``: a core watching the test's namespace, ready; stopped after."""
    started: list[CoreProcess] = []

    def start(port: int | None = None) -> CoreProcess:
        env = core_env(
            kubeconfig=kubeconfig_path,
            namespace=namespace,
            operator_namespace=operator_namespace,
            key_file=tmp_path / "core-key.pem",
        )
        core = CoreProcess(env, tmp_path / f"core-{len(started)}.log", port=port)
        started.append(core)
        wait_for("core ready", core.ready, timeout=180)  # imports are slow on a busy box
        return core

    yield start
    for core in started:
        core.stop()


def test_probes_follow_a_real_plugin_through_failure_and_recovery(
    *,
    cluster: Cluster,
    namespace: str,
    start_operator: StartOperator,
    plugin_process: PluginProcess,
    kubectl: Path,
    kubeconfig_path: Path,
    start_core: StartCore,
) -> None:
    core_port = free_port()
    plugin_process.heartbeat_url = f"http://127.0.0.1:{core_port}/v1/heartbeat"
    plugin_process.start()  # up before the operator knows about it: first probe is healthy
    start_monitoring_operator(
        start_operator,
        namespace,
        f"{namespace}/{PLUGIN}=127.0.0.1:{plugin_process.port}",
    )
    start_core(port=core_port)  # after the operator: it publishes the keys the core serves
    cluster.apply_plugin(namespace, load_example("user-management.yaml"))
    watch = VpWatch(kubectl, kubeconfig_path, namespace, PLUGIN)
    try:
        # -- healthy, with the plugin's /health numbers as metrics ---------------------------
        # The first probe can land before the reconciler's first status write: wait for both,
        # so every printer column below (PHASE, HEALTH, READY) has a value.
        status = wait_for(
            "health healthy and phase Active",
            lambda: (
                (s := health_is(cluster, namespace, PLUGIN, "healthy"))
                and s.get("phase") == "Active"
                and s
            ),
            30,
        )
        metrics = status["metrics"]
        assert metrics["status"] == "healthy"
        assert metrics["plugin"] == PLUGIN
        assert isinstance(metrics["uptime_seconds"], int | float)
        assert metrics["memory_usage"] > 1_000_000
        assert status["consecutiveFailures"] == 0
        assert status["lastProbeTime"].endswith("Z")
        table = kubectl_get(kubectl, kubeconfig_path, namespace)
        assert table.splitlines()[0].split()[:5] == ["NAME", "VERSION", "PHASE", "HEALTH", "READY"]
        assert table.splitlines()[1].split()[3] == "healthy"

        # -- the operator-minted token works against the real plugin -------------------------
        token = write_token_files(cluster, namespace, PLUGIN, plugin_process.workdir)
        auth = {"Authorization": f"Bearer {token}"}
        reply = httpx.put(
            plugin_process.url("/api/users/alice"),
            json={"department": "Engineering", "manager": "bob"},
            headers=auth,
            trust_env=False,
        )
        assert reply.status_code == 201, reply.text
        assert httpx.get(plugin_process.url("/api/users/alice"), trust_env=False).status_code == 401
        # ...and the plugin's own heartbeats (SDK CoreClient) reach its status.
        wait_for(
            "lastHeartbeatTime",
            lambda: cluster.status(namespace, PLUGIN).get("lastHeartbeatTime"),
            timeout=20,
        )

        # -- stop it: degraded after one failed probe, unhealthy after three ----------------
        plugin_process.stop()
        status = wait_for(
            "degraded",
            lambda: health_is(cluster, namespace, PLUGIN, "degraded", "unhealthy"),
            timeout=INTERVAL * 2 + 10,
        )
        assert status["health"] == "degraded", status
        assert status["consecutiveFailures"] in (1, 2)
        assert status["lastError"] == "connection refused"
        status = wait_for(
            "unhealthy",
            lambda: health_is(cluster, namespace, PLUGIN, "unhealthy"),
            timeout=INTERVAL * 4 + 10,
        )
        assert status["consecutiveFailures"] >= 3
        assert kubectl_get(kubectl, kubeconfig_path, namespace).splitlines()[1].split()[3] == (
            "unhealthy"
        )

        # -- restart it: healthy again, data still there ------------------------------------
        plugin_process.start()
        status = wait_for(
            "healthy again",
            lambda: health_is(cluster, namespace, PLUGIN, "healthy"),
            timeout=INTERVAL * 2 + 10,
        )
        assert status["consecutiveFailures"] == 0
        assert "lastError" not in status or status["lastError"] is None
        reply = httpx.get(plugin_process.url("/api/users/alice"), headers=auth, trust_env=False)
        assert reply.json()["attributes"] == {"department": "Engineering", "manager": "bob"}
    finally:
        time.sleep(1)
        watch.stop()

    seen = watch.healths()
    for step in ("healthy", "degraded", "unhealthy"):
        assert step in seen, seen
    start = seen.index("healthy")
    assert seen[start:][:3] == ["healthy", "degraded", "unhealthy"], seen
    assert seen[-1] == "healthy", seen

    messages = wait_for(
        "health events",
        lambda: (m := event_messages(cluster, namespace, PLUGIN)) and len(m) >= 4 and m,
        timeout=10,
    )
    assert messages[0] == f"Plugin {PLUGIN} is healthy"
    assert f"Plugin {PLUGIN} is degraded: connection refused" in messages
    assert f"Plugin {PLUGIN} is unhealthy: connection refused" in messages
    assert messages[-1] == f"Plugin {PLUGIN} is healthy again"
    warnings = [e.type for e in cluster.events(namespace, PLUGIN) if e.reason == "PluginUnhealthy"]
    assert warnings == ["Warning"]


def custom_plugin(plugin_id: str) -> dict[str, Any]:
    body = plugin_body(plugin_id)
    body["spec"]["manifest"]["health_check"] = {
        "type": "custom",
        "interval_seconds": INTERVAL,
        "timeout_seconds": 1,
        "failure_threshold": 2,
    }
    return body


def test_heartbeats_update_only_the_senders_status(
    cluster: Cluster, namespace: str, start_operator: StartOperator, start_core: StartCore
) -> None:
    start_monitoring_operator(start_operator, namespace, "")
    url = start_core().url + "/v1/heartbeat"
    cluster.apply_plugin(namespace, custom_plugin("beat-a"))
    cluster.apply_plugin(namespace, custom_plugin("beat-b"))
    token_a = wait_for(
        "beat-a token", lambda: cluster.secret_data(namespace, "beat-a-token"), timeout=30
    )["token"]

    def send(body: dict[str, Any], token: str | None = token_a) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.post(url, json=body, headers=headers, timeout=5, trust_env=False)

    reply = wait_for(
        "heartbeat accepted",
        lambda: (
            (r := send({"status": "active", "metrics": {"queue_depth": 4}})).status_code == 200
            and r
        ),
        timeout=20,
    )
    assert reply.json() == {"plugin_id": "beat-a", "accepted": True, "health": "healthy"}
    status = wait_for(
        "beat-a healthy", lambda: health_is(cluster, namespace, "beat-a", "healthy"), 15
    )
    assert status["lastHeartbeatTime"].endswith("Z")
    assert status["metrics"] == {"queue_depth": 4}

    # A's token cannot speak for B; nor can no token at all.
    refused = send({"plugin_id": "beat-b", "status": "healthy"})
    assert refused.status_code == 403
    assert send({"status": "healthy"}, token=None).status_code == 401
    assert send({"status": "healthy"}, token=token_a + "x").status_code == 401

    # A reporting trouble itself is believed at once.
    assert send({"status": "unhealthy", "message": "disk full"}).status_code == 200
    wait_for("beat-a unhealthy", lambda: health_is(cluster, namespace, "beat-a", "unhealthy"), 15)
    wanted = "Plugin beat-a is unhealthy: reported by the plugin: disk full"
    wait_for(
        "the plugin's own report as an event",
        lambda: wanted in event_messages(cluster, namespace, "beat-a"),
        timeout=10,
    )

    # B never sent a heartbeat: unknown at first, unhealthy once 2 x 2 s passed without one.
    status_b = wait_for(
        "beat-b unhealthy", lambda: health_is(cluster, namespace, "beat-b", "unhealthy"), 30
    )
    assert "lastHeartbeatTime" not in status_b
    assert status_b["lastError"].startswith("no heartbeat received in")
    assert "degraded" not in " ".join(event_messages(cluster, namespace, "beat-b"))
    assert json.dumps(cluster.plugin(namespace, "beat-a")).find(token_a) == -1
