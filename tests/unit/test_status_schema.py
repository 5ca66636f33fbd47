"""Every status field the operator writes exists in the CRD schema (else it would be pruned).

The writers go through ``resource.status_patch_body`` (the model that generates the CRD); this
walks what they actually produce, over every phase, against ``crds/`` as shipped.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from vivified.dependencies import DependencyVerdict
from vivified.health import HealthState, status_fields
from vivified.resource import status_patch_body
from vivified.status import Health, PluginFacts, TokenFacts, WorkloadFacts, derive_status
from vivified.violations import Violation

CRD = Path(__file__).resolve().parents[2] / "crds" / "vivified.dev_vivifiedplugins.yaml"
NOW = datetime(2026, 3, 1, tzinfo=UTC)
TOKEN = TokenFacts("p-token", "kid1", "2026-03-02T00:00:00Z", jti="j1")
RUNNING = WorkloadFacts(exists=True, desired_replicas=1, ready_replicas=1, available=True)


def status_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    version = crd["spec"]["versions"][0]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    return schema


def unknown_paths(value: Any, schema: dict[str, Any], path: str = "status") -> list[str]:
    """Paths in ``value`` that ``schema`` would prune."""
    if isinstance(value, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields") or "additionalProperties" in schema:
            return []
        properties = schema.get("properties") or {}
        found: list[str] = []
        for key, item in value.items():
            if key not in properties:
                found.append(f"{path}.{key}")
            elif item is not None:
                found.extend(unknown_paths(item, properties[key], f"{path}.{key}"))
        return found
    if isinstance(value, list):
        return [p for item in value for p in unknown_paths(item, schema.get("items", {}), path)]
    return []


CASES = [
    ("active", PluginFacts(generation=2, workload=RUNNING, token=TOKEN)),
    ("pending", PluginFacts(generation=1, token=TOKEN)),
    ("disabled", PluginFacts(generation=1, enabled=False)),
    (
        "invalid, last workload kept",
        PluginFacts(
            generation=3,
            errors=(Violation("spec.image", "required"),),
            workload=RUNNING,
            kept_last_valid_workload=True,
        ),
    ),
    (
        "blocked on a dependency",
        PluginFacts(generation=1, dependencies=DependencyVerdict(missing=("db",)), token=TOKEN),
    ),
    ("egress domains", PluginFacts(generation=1, token=TOKEN, egress_domains=("api.example",))),
]


@pytest.mark.parametrize(("reason", "facts"), CASES, ids=[c[0] for c in CASES])
def test_reconcile_writes_only_fields_the_crd_knows(reason: str, facts: PluginFacts) -> None:
    written = derive_status(facts, {}, NOW)
    assert unknown_paths(written, status_schema()) == [], reason


def test_health_writes_only_fields_the_crd_knows() -> None:
    state = HealthState(
        health=Health.DEGRADED,
        consecutive_failures=2,
        last_error="timeout",
        last_probe_time=NOW,
        last_heartbeat_time=NOW,
        metrics={"uptime": 3.0},
    )
    assert unknown_paths(status_fields(state), status_schema()) == []


def test_the_token_id_is_written_so_deletion_can_revoke_without_the_secret() -> None:
    written = derive_status(PluginFacts(generation=1, token=TOKEN), {}, NOW)
    assert written["token"] == {
        "secretName": "p-token",
        "keyId": "kid1",
        "expiresAt": "2026-03-02T00:00:00Z",
        "jti": "j1",
    }


def test_a_field_the_model_does_not_know_is_refused_not_pruned_in_silence() -> None:
    with pytest.raises(ValueError, match="not status fields"):
        status_patch_body(readyReplica=1)


def test_the_walker_reports_an_unknown_field() -> None:
    assert unknown_paths({"phase": "Active", "bogus": 1}, status_schema()) == ["status.bogus"]
