"""Reading a Deployment: rolled out (``available``) versus still serving (``serving``)."""

from __future__ import annotations

from typing import Any

import pytest

from vivified.shell.reconciler import workload_facts


def deployment(
    *, generation: int = 2, observed: int = 2, ready: int = 1, updated: int = 1, avail: int = 1
) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": 1},
        "status": {
            "observedGeneration": observed,
            "readyReplicas": ready,
            "updatedReplicas": updated,
            "availableReplicas": avail,
        },
    }


@pytest.mark.parametrize(
    ("body", "was_active", "available", "serving", "reason"),
    [
        (deployment(), True, True, True, "rolled out and serving"),
        (
            deployment(observed=1),
            True,
            False,
            True,
            "the controller has not seen the edit yet: the old pod still serves",
        ),
        (
            deployment(updated=0, ready=1, avail=1),
            True,
            False,
            True,
            "surge pod starting, the previous pod available (maxUnavailable 0)",
        ),
        (
            deployment(ready=0, avail=0, updated=1),
            False,
            False,
            False,
            "a new plugin's pod starting",
        ),
        (
            deployment(ready=0, avail=0, updated=0),
            True,
            False,
            False,
            "the old pod crashed during the rollout: nothing serves",
        ),
        (
            deployment(generation=4, observed=3),
            False,
            False,
            False,
            "re-enabled before the controller saw the scale to 0: the count is of pods going away",
        ),
        (
            deployment(generation=4, observed=4),
            False,
            True,
            False,
            "re-enabled and rolled out: available, whatever the plugin was",
        ),
    ],
)
def test_workload_facts(
    body: dict[str, Any], was_active: bool, available: bool, serving: bool, reason: str
) -> None:
    facts = workload_facts(body, was_active=was_active)
    assert (facts.available, facts.serving) == (available, serving), reason
    assert facts.up == (available or serving), reason


def test_no_deployment_is_not_up() -> None:
    assert not workload_facts(None).up
