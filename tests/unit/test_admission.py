"""The admission decision: same rules as the CLI and the operator, plus the cluster-level ones."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from vivified.admission import (
    decide,
    denial_message,
    finalizer_mutation,
    identity_violations,
    needs_review,
    review,
)
from vivified.policy import validate_spec
from vivified.registry import PluginRegistry
from vivified.resource import FINALIZER
from vivified.violations import Violation

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples"


def example(name: str) -> dict[str, Any]:
    body = next(iter(yaml.safe_load_all((EXAMPLES / name).read_text())))
    body["metadata"]["namespace"] = "plugins"
    return dict(body)


@pytest.fixture
def valid() -> dict[str, Any]:
    return example("user-management.yaml")


def test_a_valid_plugin_is_admitted(valid: dict[str, Any]) -> None:
    assert review(valid, PluginRegistry()) == []


@pytest.mark.parametrize(
    "name",
    [
        "invalid/phi-without-controls.yaml",
        "invalid/dangerous-traits.yaml",
        "invalid/bad-domains.yaml",
        "invalid/unknown-field-typo.yaml",
        "invalid/events-pii-without-trait.yaml",
    ],
)
def test_the_webhook_reports_exactly_what_the_shared_validator_reports(name: str) -> None:
    body = example(name)
    expected = list(validate_spec(body["spec"]).errors)
    assert expected, "the example is meant to be invalid"
    assert review(body, PluginRegistry()) == expected


def test_every_error_is_listed_by_field_in_the_message() -> None:
    body = example("invalid/phi-without-controls.yaml")
    message = denial_message(review(body, PluginRegistry()))
    parts = message.split("; ")
    assert [p.split(":")[0] for p in parts] == [
        "spec.manifest.compliance.data_retention_days",
        "spec.manifest.compliance.hipaa_controls",
        "spec.manifest.security.data_classification",
    ]
    assert all(": " in p for p in parts)


def test_name_must_equal_the_manifest_id(valid: dict[str, Any]) -> None:
    valid["metadata"]["name"] = "users"
    assert review(valid, PluginRegistry()) == [
        Violation("metadata.name", "must equal spec.manifest.id ('user-management')")
    ]


def test_name_mismatch_is_reported_together_with_policy_errors() -> None:
    body = example("invalid/name-mismatch.yaml")
    fields = [v.field for v in review(body, PluginRegistry())]
    assert "metadata.name" in fields
    assert "spec.image" in fields
    assert fields == sorted(fields)


def test_a_plugin_id_held_by_another_plugin_is_rejected(valid: dict[str, Any]) -> None:
    registry = PluginRegistry()
    other = copy.deepcopy(valid)
    other["metadata"]["namespace"] = "elsewhere"
    registry.upsert(("elsewhere", "user-management"), other)
    (violation,) = review(valid, registry)
    assert violation.field == "spec.manifest.id"
    assert "elsewhere/user-management" in violation.message
    assert "unique" in violation.message


def test_the_owner_itself_may_be_updated(valid: dict[str, Any]) -> None:
    registry = PluginRegistry()
    registry.upsert(("plugins", "user-management"), valid)
    changed = copy.deepcopy(valid)
    changed["spec"]["replicas"] = 2
    assert review(changed, registry, operation="UPDATE", old=valid) == []


def test_the_request_namespace_is_used_when_the_object_has_none(valid: dict[str, Any]) -> None:
    registry = PluginRegistry()
    registry.upsert(("plugins", "user-management"), valid)
    del valid["metadata"]["namespace"]
    assert review(valid, registry, namespace="plugins") == []
    assert [v.field for v in review(valid, registry, namespace="other")] == ["spec.manifest.id"]


def test_a_bad_update_is_rejected(valid: dict[str, Any]) -> None:
    changed = copy.deepcopy(valid)
    changed["spec"]["manifest"]["traits"].append("admin")
    fields = [v.field for v in review(changed, PluginRegistry(), operation="UPDATE", old=valid)]
    assert fields
    assert all(f.startswith("spec.manifest.traits") for f in fields)


def test_metadata_only_updates_are_always_admitted() -> None:
    # e.g. kopf adding its finalizer to a plugin that was created before a stricter policy
    body = example("invalid/phi-without-controls.yaml")
    updated = copy.deepcopy(body)
    updated["metadata"]["finalizers"] = ["vivified.dev/finalizer"]
    assert review(updated, PluginRegistry(), operation="UPDATE", old=body) == []


def test_a_plugin_being_deleted_is_admitted() -> None:
    body = example("invalid/phi-without-controls.yaml")
    updated = copy.deepcopy(body)
    updated["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    updated["spec"]["replicas"] = 3
    assert review(updated, PluginRegistry(), operation="UPDATE", old=body) == []


@pytest.mark.parametrize(
    ("operation", "old", "expected"),
    [
        ("CREATE", None, True),
        ("UPDATE", None, True),
        ("UPDATE", {"spec": {"a": 1}}, True),
        ("UPDATE", {"spec": {"a": 2}}, False),
        ("DELETE", {"spec": {"a": 2}}, False),
        ("CONNECT", None, False),
    ],
)
def test_needs_review(operation: str, old: dict[str, Any] | None, expected: bool) -> None:
    assert needs_review(operation, {"spec": {"a": 2}}, old) is expected


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"spec": None},
        {"spec": "nope", "metadata": "nope"},
        {"spec": {"manifest": ["x"]}, "metadata": {"name": 3}},
        {"spec": {"manifest": {"id": 7}}},
    ],
)
def test_garbage_is_rejected_without_raising(body: dict[str, Any]) -> None:
    violations = review(body, PluginRegistry())
    assert violations
    assert all(isinstance(v, Violation) and v.field for v in violations)


def test_warnings_are_reported_but_do_not_deny(valid: dict[str, Any]) -> None:
    traits = valid["spec"]["manifest"]["traits"]
    traits[traits.index("audit_required")] = "audit"  # the legacy alias
    decision = decide(valid, PluginRegistry())
    assert decision.allowed
    assert decision.warnings == validate_spec(valid["spec"]).warnings
    assert [w.field for w in decision.warnings] == ["spec.manifest.traits[1]"]


def test_identity_violations_skip_a_missing_id() -> None:
    assert identity_violations(("ns", "x"), None, PluginRegistry()) == []


def test_denial_message_format() -> None:
    assert (
        denial_message([Violation("a.b", "bad"), Violation("c[0]", "worse")])
        == "a.b: bad; c[0]: worse"
    )


FINALIZER_CASES = [
    # (reason, operation, metadata, expected finalizers or None for "no change")
    ("a new plugin gets ours", "CREATE", {"name": "p"}, [FINALIZER]),
    ("a null list is like none", "CREATE", {"finalizers": None}, [FINALIZER]),
    (
        "others are kept, in order",
        "CREATE",
        {"finalizers": ["a/x", "b/y"]},
        ["a/x", "b/y", FINALIZER],
    ),
    ("already there: nothing to change", "CREATE", {"finalizers": ["a/x", FINALIZER]}, None),
    ("an update never gets one put back", "UPDATE", {"finalizers": []}, None),
    ("a delete is never mutated", "DELETE", {}, None),
    ("hostile: not a list", "CREATE", {"finalizers": "vivified.dev/finalizer"}, [FINALIZER]),
    (
        "hostile: non-strings dropped",
        "CREATE",
        {"finalizers": [1, None, "a/x"]},
        ["a/x", FINALIZER],
    ),
    ("hostile: metadata not a mapping", "CREATE", None, [FINALIZER]),
]


@pytest.mark.parametrize(
    ("operation", "metadata", "expected"),
    [case[1:] for case in FINALIZER_CASES],
    ids=[case[0] for case in FINALIZER_CASES],
)
def test_finalizer_mutation(
    operation: str, metadata: dict[str, Any] | None, expected: list[str] | None
) -> None:
    assert finalizer_mutation(metadata, FINALIZER, operation=operation) == expected
