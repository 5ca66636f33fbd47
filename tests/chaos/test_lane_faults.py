"""Short lane scenarios (``make test``): nats-server killed -9 during a publish burst, a core
replica killed -9 during calls, tunnels and deliveries; invariants 8-10 judged on the history
(tests/chaos/lanes.py). One ground for both: starting two cores and an operator is most of
the cost. The long variants are bench/chaos.py rows ``nats`` and ``core``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from tests.chaos.lanes import LaneGround, core_killed, lane_ground, nats_killed

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def ground(
    k8s_api: client.ApiClient,
    kubeconfig_path: Path,
    crd_installed: None,
    operator_namespace: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LaneGround]:
    with lane_ground(k8s_api, kubeconfig_path, tmp_path_factory.mktemp("lanes")) as g:
        yield g


def test_nats_killed_9_during_a_publish_burst_loses_no_acknowledged_event(
    ground: LaneGround,
) -> None:
    outcome = nats_killed(ground, 60, down=0.5, deliver_timeout=30)
    print(f"\n{outcome}")
    assert outcome.violations == ()
    assert outcome.converge_seconds is not None


def test_a_core_replica_killed_9_mid_traffic_costs_only_in_flight_requests(
    ground: LaneGround,
) -> None:
    outcome = core_killed(ground, 60, deliver_timeout=30)
    print(f"\n{outcome}")
    assert outcome.violations == ()
    assert outcome.converge_seconds is not None
