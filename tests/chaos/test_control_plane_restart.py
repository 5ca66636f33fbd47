"""Short chaos scenarios (``make test``): the API server, and separately etcd, killed with
SIGKILL in the middle of a plugin burst and started again 2 s later (hack/cluster/cluster.py
restart). The operator is not restarted: it must ride the outage out, and the invariants must
hold once the control plane is back. The burst itself retries its idempotent writes."""

from __future__ import annotations

import functools

import pytest
from kubernetes import client
from tests.chaos.harness import ControlPlane, Operator, converge, persistently
from tests.cluster_support import KubeCluster
from tests.e2e.kube import Cluster, plugin_body

pytestmark = pytest.mark.cluster

BURST = 12
DOWN_SECONDS = 2.0


@pytest.fixture
def control_plane(kube_cluster: KubeCluster) -> ControlPlane:
    if not kube_cluster.local or kube_cluster.state_dir is None:
        pytest.skip("restarts the local test cluster's own processes (not a $KUBECONFIG one)")
    return ControlPlane(kube_cluster.state_dir)


@pytest.mark.parametrize("component", ["kube-apiserver", "etcd"])
def test_a_control_plane_restart_during_a_burst_converges(
    component: str,
    k8s_api: client.ApiClient,
    namespace: str,
    chaos_operator: Operator,
    control_plane: ControlPlane,
) -> None:
    cluster = Cluster(k8s_api)
    chaos_operator.start()
    restart = None
    retries = 0
    for i in range(BURST):
        body = plugin_body(f"cp-{i:03d}")
        retries += persistently(functools.partial(cluster.apply_plugin, namespace, body))
        if i == BURST // 2:
            restart = control_plane.restart_in_background(component, DOWN_SECONDS)
    assert restart is not None
    timing = restart.result()
    seconds, problems, snapshot = converge(
        k8s_api, [namespace], chaos_operator.operator_namespace, timeout=180
    )
    print(
        f"\nkill -9 {component} at plugin {BURST // 2} of {BURST}: down {timing['down']:.1f}s, "
        f"serving {timing['ready']:.1f}s after its start, {retries} burst writes retried; "
        f"converged {seconds}s after it was back"
    )
    assert problems == []
    assert len(snapshot.plugins) == BURST
    assert chaos_operator.alive, f"the operator died with {component}: {chaos_operator.log()}"
