"""Status is a function of facts: phases, the Ready summary, conditions and transition times."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vivified.dependencies import DependencyVerdict
from vivified.status import (
    CONDITION_TYPES,
    PluginFacts,
    TokenFacts,
    WorkloadFacts,
    derive_status,
    status_changed,
)
from vivified.violations import Violation

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
RUNNING = WorkloadFacts(exists=True, desired_replicas=1, ready_replicas=1, available=True)
STARTING = WorkloadFacts(exists=True, desired_replicas=1, ready_replicas=0, available=False)
TOKEN = TokenFacts(secret_name="a-token", key_id="kid1", expires_at="2026-11-26T12:00:00Z")


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


def test_running_workload_is_active_and_ready() -> None:
    status = derive_status(PluginFacts(generation=3, workload=RUNNING, token=TOKEN), {}, NOW)
    assert status["phase"] == "Active"
    assert status["observedGeneration"] == 3
    assert status["ready"] == "1/1"
    assert status["readyReplicas"] == 1
    assert condition(status, "Ready")["status"] == "True"
    assert status["token"] == {
        "secretName": "a-token",
        "keyId": "kid1",
        "expiresAt": "2026-11-26T12:00:00Z",
    }
    assert status["health"] == "unknown"
    assert [c["type"] for c in status["conditions"]] == list(CONDITION_TYPES)


def test_workload_not_yet_available_is_pending() -> None:
    status = derive_status(PluginFacts(generation=1, workload=STARTING, token=TOKEN), {}, NOW)
    assert status["phase"] == "Pending"
    ready = condition(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "WorkloadNotAvailable")
    assert ready["message"] == "0/1 replicas ready"


def test_invalid_lists_every_error_and_says_nothing_was_created() -> None:
    errors = (Violation("spec.manifest.traits", "bad"), Violation("spec.image", "worse"))
    status = derive_status(PluginFacts(generation=1, errors=errors), {}, NOW)
    assert status["phase"] == "Invalid"
    assert status["validationErrors"] == [
        {"field": "spec.manifest.traits", "message": "bad"},
        {"field": "spec.image", "message": "worse"},
    ]
    assert "nothing was created" in condition(status, "Ready")["message"]
    valid = condition(status, "ManifestValid")
    assert valid["status"] == "False"
    assert "spec.image: worse" in valid["message"]
    assert condition(status, "DependenciesReady")["status"] == "Unknown"


def test_invalid_after_running_says_the_last_workload_is_kept() -> None:
    facts = PluginFacts(
        generation=2,
        errors=(Violation("x", "y"),),
        workload=RUNNING,
        kept_last_valid_workload=True,
    )
    status = derive_status(facts, {}, NOW)
    assert status["phase"] == "Invalid"
    assert "last valid workload is left running" in condition(status, "Ready")["message"]
    assert condition(status, "Available")["status"] == "True"


def test_disabled_wins_over_everything_but_invalid() -> None:
    facts = PluginFacts(generation=1, enabled=False, workload=RUNNING)
    status = derive_status(facts, {}, NOW)
    assert status["phase"] == "Disabled"
    assert condition(status, "TokenIssued")["reason"] == "Revoked"
    assert condition(status, "EgressEnforced")["reason"] == "DenyAll"
    assert status["token"] is None


def test_missing_dependencies_block_by_default_and_are_named() -> None:
    facts = PluginFacts(
        generation=1, dependencies=DependencyVerdict(missing=("a",)), workload=RUNNING
    )
    status = derive_status(facts, {}, NOW)
    assert status["phase"] == "Pending"
    deps = condition(status, "DependenciesReady")
    assert deps["status"] == "False"
    assert "missing: a" in deps["message"]
    assert condition(status, "Ready")["reason"] == "DependenciesMissing"


def test_warn_only_policy_lets_a_plugin_with_missing_dependencies_be_active() -> None:
    facts = PluginFacts(
        generation=1,
        dependencies=DependencyVerdict(missing=("a",)),
        block_on_dependencies=False,
        workload=RUNNING,
    )
    status = derive_status(facts, {}, NOW)
    assert status["phase"] == "Active"
    assert condition(status, "DependenciesReady")["status"] == "False"


def test_cycle_is_reported_with_its_path() -> None:
    facts = PluginFacts(generation=1, dependencies=DependencyVerdict(cycle=("a", "b", "a")))
    ready = condition(derive_status(facts, {}, NOW), "Ready")
    assert ready["reason"] == "DependencyCycle"
    assert "a -> b -> a" in ready["message"]


def test_egress_condition_names_the_domains() -> None:
    facts = PluginFacts(generation=1, workload=RUNNING, egress_domains=("api.stripe.com",))
    egress = condition(derive_status(facts, {}, NOW), "EgressEnforced")
    assert egress["reason"] == "PortLevel"
    assert "api.stripe.com" in egress["message"]


def test_unchanged_facts_give_an_unchanged_status() -> None:
    facts = PluginFacts(generation=1, workload=RUNNING, token=TOKEN)
    first = derive_status(facts, {}, NOW)
    second = derive_status(facts, first, NOW + timedelta(hours=1))
    assert second == {k: v for k, v in first.items() if k != "health"}
    assert not status_changed(first, second)


def test_transition_time_moves_only_when_a_condition_flips() -> None:
    first = derive_status(PluginFacts(generation=1, workload=STARTING), {}, NOW)
    later = NOW + timedelta(minutes=5)
    second = derive_status(PluginFacts(generation=1, workload=RUNNING), first, later)
    assert condition(second, "Ready")["lastTransitionTime"] == "2026-11-25T12:05:00Z"
    assert condition(second, "ManifestValid")["lastTransitionTime"] == "2026-11-25T12:00:00Z"
    assert status_changed(first, second)


@pytest.mark.parametrize("field", ["health", "consecutiveFailures", "lastError", "metrics"])
def test_health_fields_are_left_to_the_health_monitor(field: str) -> None:
    previous = {"health": "degraded", field: {"kept": True} if field == "metrics" else "x"}
    status = derive_status(PluginFacts(generation=1, workload=RUNNING), previous, NOW)
    assert field not in status, "a status patch must never overwrite the monitor's fields"


def test_health_starts_unknown_once() -> None:
    assert derive_status(PluginFacts(generation=1), {}, NOW)["health"] == "unknown"


def test_previous_status_junk_does_not_break_derivation() -> None:
    status = derive_status(PluginFacts(generation=1), {"conditions": "junk"}, NOW)
    assert status["phase"] == "Pending"
    status = derive_status(PluginFacts(generation=1), {"conditions": [1, None, {}]}, NOW)
    assert len(status["conditions"]) == len(CONDITION_TYPES)


ROLLING = WorkloadFacts(
    exists=True,
    desired_replicas=1,
    ready_replicas=1,
    available=False,
    serving=True,
    updated_replicas=0,
)


def test_an_edit_rolling_out_keeps_the_plugin_active_while_the_old_pod_serves() -> None:
    # A manifest edit rolls the Deployment (maxUnavailable 0): the previous pod serves until the
    # new one is ready. Pending here would refuse the plugin's lanes (egress, calls) meanwhile.
    status = derive_status(PluginFacts(generation=2, workload=ROLLING, token=TOKEN), {}, NOW)
    assert status["phase"] == "Active"
    ready = condition(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Active")
    assert "rollout in progress (0/1 replicas updated" in ready["message"]
    available = condition(status, "Available")
    assert (available["status"], available["reason"]) == ("True", "MinimumReplicasAvailable")
    assert "rolling out (0/1 updated)" in available["message"]


def test_a_rollout_with_nothing_serving_is_pending() -> None:
    down = WorkloadFacts(exists=True, desired_replicas=1, ready_replicas=0, updated_replicas=1)
    status = derive_status(PluginFacts(generation=2, workload=down, token=TOKEN), {}, NOW)
    assert status["phase"] == "Pending"
    assert condition(status, "Available")["status"] == "False"
