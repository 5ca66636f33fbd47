"""Two operator replicas in a kopf peering (processes): kill -9 the leader, the standby takes
over within the keep-alive lifetime, nothing fights, nothing is lost (``make test``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from tests.chaos.failover import audit_log, replica_pair, run
from tests.chaos.harness import Operator
from tests.cluster_support import KubeCluster
from tests.e2e.conftest import delete_plugins, strip_finalizers

pytestmark = pytest.mark.cluster

LIFETIME = 10
#: Takeover bound asserted here: the lifetime, plus kopf's resume and a loaded machine's slack.
BOUND = LIFETIME + 10


@pytest.fixture
def replicas(
    kube_cluster: KubeCluster,
    *,
    kubeconfig_path: Path,
    operator_namespace: str,
    crd_installed: None,
    namespace: str,
    tmp_path: Path,
    k8s_api: client.ApiClient,
) -> Iterator[tuple[Operator, Operator]]:
    if not kube_cluster.local or not audit_log(kubeconfig_path).exists():
        pytest.skip("counts conflicts from the local test cluster's audit log")
    pair = replica_pair(kubeconfig_path, operator_namespace, namespace, tmp_path, LIFETIME)
    yield pair
    api = client.CustomObjectsApi(k8s_api)
    if any(op.alive for op in pair):
        delete_plugins(api, namespace, timeout=60)
    for op in pair:
        op.stop()
    strip_finalizers(api, namespace)


def test_kill_9_the_leader_the_standby_takes_over_and_nothing_fights(
    k8s_api: client.ApiClient,
    kubeconfig_path: Path,
    operator_namespace: str,
    namespace: str,
    replicas: tuple[Operator, Operator],
) -> None:
    result = run(k8s_api, kubeconfig_path, operator_namespace, namespace, replicas)
    print(f"\nfailover: {result}")
    assert result.violations == ()  # incl. "every revoked jti stays revoked"
    assert result.takeover_seconds is not None
    assert result.takeover_seconds < BOUND
    assert result.first_write_seconds is not None, "the new leader did the pending work"
    assert result.conflicts == ()
    assert result.writes_while_standing_by == ()
    assert not result.rejoined_took_the_lead
    assert not result.standby_exited
