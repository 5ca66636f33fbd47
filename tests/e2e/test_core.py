"""The core against the local cluster, with real plugin processes on loopback (issue 16).

The operator manages the VivifiedPlugins; ``vivified core`` runs as a process watching them
(read-only) and forwards lane calls to the real user-management process through an address
map. Callers are plugins whose tokens the operator minted: ``onboarding`` (depends on
user-management, handles_pii), ``loner`` (no dependency), ``nopii`` (depends on it, lacks
handles_pii), ``nophi`` (handles_pii, depends on ``phi-records`` whose data is phi, lacks
handles_phi).
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import StartOperator
from tests.e2e.core_process import CoreProcess, core_env
from tests.e2e.kube import REPO, Cluster, load_example, plugin_body, wait_for
from tests.e2e.test_health import PluginProcess, free_port, health_is

pytestmark = pytest.mark.cluster

ONBOARDING = json.loads((REPO / "plugins" / "onboarding" / "manifest.json").read_text())


def caller(
    plugin_id: str,
    dependencies: list[str],
    traits: list[str],
    classification: list[str] | None = None,
) -> dict[str, Any]:
    body = plugin_body(plugin_id, dependencies=dependencies, traits=traits)
    body["spec"]["manifest"]["health_check"] = {"type": "custom"}
    if classification is not None:
        body["spec"]["manifest"]["security"]["data_classification"] = classification
    return body


def phi_target() -> dict[str, Any]:
    """The phi-records example (data classification phi): refused calls never reach it, so it
    needs no process; one replica, heartbeat health (unknown, not unhealthy)."""
    body = load_example("phi-records.yaml")
    body["spec"]["replicas"] = 1
    body["spec"]["manifest"]["health_check"] = {"type": "custom"}
    return body


@pytest.fixture
def lane(  # noqa: PLR0917 - fixtures
    cluster: Cluster,
    namespace: str,
    operator_namespace: str,
    start_operator: StartOperator,
    kubeconfig_path: Path,
    tmp_path: Path,
) -> Iterator[dict[str, Any]]:
    workdir = tmp_path / "um"
    workdir.mkdir()
    target = PluginProcess(port=free_port(), workdir=workdir)
    start_operator(
        namespace,
        probe_mode="overrides",
        probe_address_overrides=f"{namespace}/user-management=127.0.0.1:{target.port}",
        health_interval_seconds=1,
        health_timeout_seconds=1,
        health_failure_threshold=2,
        health_status_refresh_seconds=1,
    )
    # Both replicas share one call-token key, as the chart's Secret makes them.
    env = core_env(
        kubeconfig=kubeconfig_path,
        namespace=namespace,
        operator_namespace=operator_namespace,
        key_file=tmp_path / "core-key.pem",
        address_map=f"user-management=127.0.0.1:{target.port}",
    )
    # Each replica writes its own chained audit trail (one chain per writer).
    cores = [
        CoreProcess(
            {
                **env,
                "VIVIFIED_AUDIT_SINK": f"file:{tmp_path}/audit-{i}.jsonl",
                "VIVIFIED_AUDIT_WRITER": f"core-{i}",
                "VIVIFIED_UI": "off",
            },
            tmp_path / f"core-{i}.log",
        )
        for i in range(2)
    ]
    try:
        for core in cores:
            wait_for("core ready", core.ready, timeout=180)  # imports are slow on a busy box
        cluster.apply_plugin(namespace, load_example("user-management.yaml"))
        onboarding = {
            "apiVersion": "vivified.dev/v1alpha1",
            "kind": "VivifiedPlugin",
            "metadata": {"name": "onboarding"},
            "spec": {"image": "registry.example.com/onboarding:1.0.0", "manifest": ONBOARDING},
        }
        onboarding["spec"]["manifest"]["health_check"] = {"type": "custom"}
        cluster.apply_plugin(namespace, onboarding)
        cluster.apply_plugin(namespace, caller("loner", [], ["audit_required"]))
        cluster.apply_plugin(namespace, caller("nopii", ["user-management"], ["audit_required"]))
        cluster.apply_plugin(namespace, phi_target())
        cluster.apply_plugin(
            namespace,
            caller("nophi", ["phi-records"], ["handles_pii", "audit_required"], ["pii"]),
        )
        tokens = {}
        for plugin_id in (
            "user-management",
            "onboarding",
            "loner",
            "nopii",
            "phi-records",
            "nophi",
        ):
            cluster.wait_phase(namespace, plugin_id, "Active", timeout=60)
            data = wait_for(
                f"{plugin_id} token",
                lambda p=plugin_id: cluster.secret_data(namespace, f"{p}-token"),
                timeout=30,
            )
            tokens[plugin_id] = data["token"]
        (workdir / "token").write_text(tokens["user-management"])
        # Behind the core: only call tokens, verified with the core's JWKS.
        target_env = {
            **target.env,
            "VIVIFIED_JWKS_URL": f"{cores[0].url}/v1/jwks",
            "PLUGIN_ID": "user-management",
        }
        _start_with_env(target, target_env)
        wait_for(
            "user-management healthy",
            lambda: health_is(cluster, namespace, "user-management", "healthy"),
            90,
        )
        yield {
            "cores": cores,
            "tokens": tokens,
            "target": target,
            "namespace": namespace,
            "trail": tmp_path / "audit-0.jsonl",
        }
    finally:
        target.stop()
        for core in cores:
            core.stop()


def _start_with_env(target: PluginProcess, env: dict[str, str]) -> None:
    log = (target.workdir / "plugin.log").open("ab")
    target.process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "user_management.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(target.port),
            "--no-access-log",
        ],
        env=env,
        cwd=target.workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    # A cold uvicorn import takes tens of seconds on a busy machine.
    wait_for("user-management /health", lambda: _up(target), timeout=180)


def _up(target: PluginProcess) -> bool:
    assert target.process is not None
    if target.process.poll() is not None:
        raise AssertionError(f"plugin exited:\n{target.log()[-3000:]}")
    try:
        return httpx.get(target.url("/health"), timeout=1, trust_env=False).is_success
    except httpx.HTTPError:
        return False


def call(
    core: CoreProcess, token: str, path: str, method: str = "GET", **kw: Any
) -> httpx.Response:
    return httpx.request(
        method,
        f"{core.url}{path}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
        trust_env=False,
        **kw,
    )


def raw_get(core: CoreProcess, token: str, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", core.port, timeout=10)
    connection.putrequest("GET", path, skip_accept_encoding=True)
    connection.putheader("Authorization", f"Bearer {token}")
    connection.endheaders()
    response = connection.getresponse()
    return response.status, response.read()


def test_the_operator_lane_end_to_end(lane: dict[str, Any], cluster: Cluster) -> None:
    cores: list[CoreProcess] = lane["cores"]
    tokens: dict[str, str] = lane["tokens"]
    namespace = lane["namespace"]
    users = "/v1/invoke/user-management/user_info/alice"
    for core in cores:  # whichever replica answers
        put = call(core, tokens["onboarding"], users, "PUT", json={"plan": "gold"})
        assert put.status_code in (200, 201), put.text
        got = call(core, tokens["onboarding"], users)
        assert got.status_code == 200, got.text
        assert got.headers["X-Vivified-Caller-Seen"] == "onboarding"
        beat = call(core, tokens["onboarding"], "/v1/heartbeat", "POST", json={})
        assert beat.status_code == 200, beat.text
        assert "keys" in httpx.get(f"{core.url}/v1/jwks", trust_env=False).json()
        assert httpx.get(f"{core.url}/v1/revocations", trust_env=False).status_code == 200
    core = cores[0]
    refused = call(core, tokens["loner"], users)
    assert (refused.status_code, refused.json()["reason"]) == (403, "not_a_dependency")
    nopii = call(core, tokens["nopii"], users)
    assert (nopii.status_code, nopii.json()["reason"]) == (403, "missing_handles_pii")
    # phi: the caller holds handles_pii but not handles_phi; the target's data is phi.
    nophi = call(core, tokens["nophi"], "/v1/invoke/phi-records/record/r1")
    assert (nophi.status_code, nophi.json()["reason"]) == (403, "missing_handles_phi"), nophi.text
    assert "handles_phi" in nophi.json()["detail"]
    undeclared = call(core, tokens["onboarding"], "/v1/invoke/user-management/admin")
    assert (undeclared.status_code, undeclared.json()["reason"]) == (404, "undeclared_operation")
    before = lane["target"].log()
    status, body = raw_get(core, tokens["onboarding"], "/v1/invoke/user-management/user_info/..")
    assert status == 400
    assert b"path_traversal" in body
    status, body = raw_get(
        core, tokens["onboarding"], "/v1/invoke/user-management/user_info/%2e%2e"
    )
    assert status == 400
    assert lane["target"].log() == before
    # Every decision of replica 0 so far is in its chained trail, and the chain verifies.
    records = [json.loads(line) for line in lane["trail"].read_text().splitlines()]
    decisions = {
        (r["agent"]["id"], r["outcome"], r.get("reason", ""))
        for r in records
        if r["lane"] == "operator"
    }
    assert ("onboarding", "allowed", "") in decisions
    assert ("loner", "refused", "not_a_dependency") in decisions
    assert ("nopii", "refused", "missing_handles_pii") in decisions
    assert ("nophi", "refused", "missing_handles_phi") in decisions
    assert ("onboarding", "refused", "path_traversal") in decisions
    verified = subprocess.run(
        [sys.executable, "-m", "vivified", "audit", "verify", "--file", str(lane["trail"])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert not [r for r in records if "eyJ" in json.dumps(r)]  # no token in the trail
    # The plugin refuses its own caller's plugin token presented directly.
    direct = httpx.get(
        lane["target"].url("/api/users/alice"),
        headers={"Authorization": f"Bearer {tokens['onboarding']}"},
        trust_env=False,
    )
    assert direct.status_code == 401
    # Heartbeats from the core reach the operator (a Lease per plugin).
    wait_for(
        "onboarding heartbeat in status",
        lambda: cluster.status(namespace, "onboarding").get("lastHeartbeatTime"),
        timeout=30,
    )
    # user-management down: unhealthy, then 503.
    lane["target"].stop()
    wait_for(
        "user-management unhealthy",
        lambda: health_is(cluster, namespace, "user-management", "unhealthy"),
        30,
    )
    unhealthy = wait_for(
        "503 from the core",
        lambda: (r := call(core, tokens["onboarding"], users)).status_code == 503 and r,
        timeout=15,
    )
    assert unhealthy.json()["reason"] == "target_unhealthy"
    # The caller disabled: its token is refused (inactive or revoked) within seconds.
    cluster.patch_spec(namespace, "onboarding", {"enabled": False})
    refused_after = wait_for(
        "401 for a disabled caller",
        lambda: (r := call(core, tokens["onboarding"], users)).status_code == 401 and r,
        timeout=20,
    )
    assert refused_after.json()["reason"] in ("plugin_inactive", "token_revoked")
