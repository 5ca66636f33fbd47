"""Short chaos scenarios (``make test``): the operator killed with SIGKILL mid-burst."""

from __future__ import annotations

import time

import pytest
from kubernetes import client
from tests.chaos.harness import Operator, converge
from tests.e2e.kube import Cluster, plugin_body

pytestmark = pytest.mark.cluster

BURST = 30


def test_kill_9_during_a_burst_of_30_plugins_then_restart_converges(
    k8s_api: client.ApiClient, namespace: str, chaos_operator: Operator
) -> None:
    cluster = Cluster(k8s_api)
    chaos_operator.start()
    names = [f"burst-{i:03d}" for i in range(BURST)]
    for i, name in enumerate(names):
        cluster.apply_plugin(namespace, plugin_body(name))
        if i == BURST // 2:
            chaos_operator.kill9()  # mid-burst: half created, some half-reconciled
    time.sleep(1)
    chaos_operator.start()
    seconds, problems, snapshot = converge(
        k8s_api, [namespace], chaos_operator.operator_namespace, timeout=120
    )
    print(f"\nkill -9 at plugin {BURST // 2} of {BURST}: converged in {seconds}s")
    assert problems == []
    assert len(snapshot.plugins) == BURST


def test_kill_9_while_disabling_keeps_every_revocation(
    k8s_api: client.ApiClient, namespace: str, chaos_operator: Operator
) -> None:
    """Disable revokes the token; a kill right after must not lose the revocation, and the
    restarted operator must not leave a disabled plugin with a valid token."""
    cluster = Cluster(k8s_api)
    chaos_operator.start()
    names = [f"toggle-{i}" for i in range(5)]
    for name in names:
        cluster.apply_plugin(namespace, plugin_body(name))
    seconds, problems, before = converge(k8s_api, [namespace], chaos_operator.operator_namespace)
    assert problems == []
    for name in names:
        cluster.patch_spec(namespace, name, {"enabled": False})
    time.sleep(0.3)
    chaos_operator.kill9()
    chaos_operator.start()
    seconds, problems, _ = converge(
        k8s_api, [namespace], chaos_operator.operator_namespace, earlier=[before]
    )
    print(f"\nkill -9 0.3 s into disabling 5 plugins: converged in {seconds}s")
    assert problems == []


def test_the_checker_catches_a_revocation_dropped_on_the_live_ground(
    k8s_api: client.ApiClient, namespace: str, chaos_operator: Operator
) -> None:
    """The deliberately broken state of issue 13: a revocation entry lost (as a build that
    rewrote the list from memory after a restart would). The checker must say so."""
    from vivified import tokens  # noqa: PLC0415
    from vivified.settings import OperatorSettings  # noqa: PLC0415

    cluster = Cluster(k8s_api)
    chaos_operator.start()
    cluster.apply_plugin(namespace, plugin_body("victim"))
    _, problems, _ = converge(k8s_api, [namespace], chaos_operator.operator_namespace)
    assert problems == []
    cluster.patch_spec(namespace, "victim", {"enabled": False})
    _, problems, before = converge(k8s_api, [namespace], chaos_operator.operator_namespace)
    assert problems == []
    jti = next(iter(before.revoked))
    chaos_operator.kill9()  # nobody repairs what we break next
    name = OperatorSettings().revocations_configmap
    data = cluster.configmap_data(chaos_operator.operator_namespace, name)
    dropped = tokens.RevocationList(
        {k: v for k, v in tokens.revocations_from_configmap_data(data).items() if k != jti}
    )
    client.CoreV1Api(k8s_api).patch_namespaced_config_map(
        name,
        chaos_operator.operator_namespace,
        {"data": tokens.revocations_to_configmap_data(dropped)},
    )
    try:
        seconds, problems, _ = converge(
            k8s_api, [namespace], chaos_operator.operator_namespace, earlier=[before], timeout=3
        )
        print(f"\nchecker on a dropped revocation: {problems}")
        assert seconds is None
        assert any(p.startswith(f"revocation of {jti} lost") for p in problems)
    finally:
        client.CoreV1Api(k8s_api).patch_namespaced_config_map(
            name, chaos_operator.operator_namespace, {"data": data}
        )
        chaos_operator.start()
