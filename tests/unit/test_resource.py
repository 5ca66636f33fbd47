"""The VivifiedPlugin resource: names, the spec model, validate_spec and the status model."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from tests.seed import user_management_manifest

from vivified import resource
from vivified.policy import ValidationReport, validate_spec
from vivified.resource import PluginSpec, PluginStatus

MANIFEST: dict[str, Any] = user_management_manifest()


def spec(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "manifest": copy.deepcopy(MANIFEST),
        "image": "ghcr.io/acme/user-management:1.0.0",
    }
    raw.update(changes)
    return raw


def at(report: ValidationReport, field: str) -> list[str]:
    return [v.message for v in report.errors if v.field == field]


def check(raw: object, field: str, ok: bool, fragment: str = "") -> ValidationReport:
    report = validate_spec(raw)
    if ok:
        assert report.errors == (), report.errors
        assert report.spec is not None
        assert report.manifest is not None
    else:
        found = at(report, field)
        assert found, f"expected an error at {field!r}: {report.errors}"
        assert any(fragment in m for m in found), (fragment, found)
    return report


def test_names_match_the_design() -> None:
    assert (resource.GROUP, resource.VERSION, resource.KIND) == (
        "vivified.dev",
        "v1alpha1",
        "VivifiedPlugin",
    )
    assert resource.PLURAL == "vivifiedplugins"
    assert resource.SHORT_NAMES == ["vp", "vplugin"]
    assert resource.CATEGORIES == ["vivified"]
    assert resource.API_VERSION == "vivified.dev/v1alpha1"


def test_minimal_spec_is_valid_with_defaults() -> None:
    report = check(spec(), "", ok=True)
    assert report.spec is not None
    assert report.spec.replicas == 1
    assert report.spec.enabled is True
    assert report.spec.port is None
    assert report.spec.env == []
    assert report.warnings == ()


@pytest.mark.parametrize(
    ("changes", "port"),
    [
        ({}, 8000),
        ({"port": 9000}, 9000),
        ({"health_check": {"port": 8080}}, 8080),
        ({"port": 9000, "health_check": {"port": 8080}}, 9000),
    ],
    ids=["default", "explicit", "from-health-check", "explicit-wins"],
)
def test_effective_port(changes: dict[str, Any], port: int) -> None:
    raw = spec()
    if "health_check" in changes:
        raw["manifest"]["health_check"] = changes["health_check"]
    if "port" in changes:
        raw["port"] = changes["port"]
    assert PluginSpec.model_validate(raw).effective_port == port


def test_manifest_errors_are_prefixed() -> None:
    raw = spec()
    raw["manifest"]["traits"] = ["handles_pii"]
    raw["manifest"]["resources"] = {"memory_limit": 63}
    report = validate_spec(raw)
    assert at(report, "spec.manifest.traits")
    assert at(report, "spec.manifest.resources.memory_limit")
    assert all(v.field.startswith("spec.") for v in report.errors)


def test_manifest_is_parsed_even_when_the_spec_has_other_errors() -> None:
    report = validate_spec(spec(replicas=-1))
    assert report.manifest is not None
    assert report.spec is None


def test_spec_must_be_an_object() -> None:
    report = validate_spec(["not", "a", "mapping"])
    assert [v.field for v in report.errors] == ["spec"]


def test_manifest_and_image_are_required() -> None:
    report = validate_spec({})
    assert at(report, "spec.manifest")
    assert at(report, "spec.image")


def test_unknown_spec_fields_get_hints() -> None:
    report = validate_spec(spec(replica=2, traits=["x"]))
    assert "did you mean 'replicas'?" in at(report, "spec.replica")[0]
    assert "did you mean 'manifest.traits'?" in at(report, "spec.traits")[0]


@pytest.mark.parametrize(
    ("image", "ok"),
    [
        ("ghcr.io/acme/user-management:1.0.0", True),
        ("user-management:1.0.0", True),
        ("localhost:5000/acme/um:dev", True),
        ("registry.example.com/a/b/c@sha256:" + "a" * 64, True),
        ("acme/um:1.0.0@sha256:" + "0" * 64, True),
        ("", False),
        ("ghcr.io/acme/um :1.0.0", False),
        ("GHCR.io/Acme/UM:1.0", False),
        ("ghcr.io/acme/um:", False),
        ("https://ghcr.io/acme/um:1.0.0", False),
        ("ghcr.io/acme/um:1.0.0\n", False),
    ],
    ids=["full", "short", "registry-port", "digest", "tag-and-digest", "empty", "space",
         "uppercase-repo", "empty-tag", "url", "newline"],
)  # fmt: skip
def test_image_reference(image: str, ok: bool) -> None:
    check(spec(image=image), "spec.image", ok)


@pytest.mark.parametrize(
    "image", ["ghcr.io/acme/um", "ghcr.io/acme/um:latest", "localhost:5000/um"]
)
def test_unpinned_image_warns(image: str) -> None:
    report = check(spec(image=image), "", ok=True)
    assert [w.field for w in report.warnings] == ["spec.image"]


@pytest.mark.parametrize(
    ("replicas", "ok"),
    [(-1, False), (0, True), (1, True), (20, True), (21, False), ("1", False), (True, False)],
    ids=["-1", "0", "1", "20", "21", "string", "bool"],
)
def test_replicas_bounds(replicas: object, ok: bool) -> None:
    check(spec(replicas=replicas), "spec.replicas", ok)


@pytest.mark.parametrize(
    ("port", "ok"),
    [(0, False), (1, True), (8000, True), (65535, True), (65536, False), ("8000", False)],
    ids=["0", "1", "8000", "65535", "65536", "string"],
)
def test_port_bounds(port: object, ok: bool) -> None:
    check(spec(port=port), "spec.port", ok)


@pytest.mark.parametrize(("enabled", "ok"), [(True, True), (False, True), ("false", False)])
def test_enabled_is_boolean(enabled: object, ok: bool) -> None:
    check(spec(enabled=enabled), "spec.enabled", ok)


@pytest.mark.parametrize(
    ("env", "field", "ok", "fragment"),
    [
        ([{"name": "LOG_LEVEL", "value": "debug"}, {"name": "_X"}], "", True, ""),
        ([{"name": "PLUGIN_ID", "value": "x"}], "spec.env[0].name", False, "set by the operator"),
        ([{"name": "PLUGIN_TOKEN_FILE", "value": "x"}], "spec.env[0].name", False, "operator"),
        ([{"name": "VIVIFIED_CORE_URL", "value": "x"}], "spec.env[0].name", False, "operator"),
        ([{"name": "VIVIFIED_ANYTHING", "value": "x"}], "spec.env[0].name", False, "operator"),
        ([{"name": "1BAD", "value": "x"}], "spec.env[0].name", False, "invalid"),
        ([{"name": "A-B", "value": "x"}], "spec.env[0].name", False, "invalid"),
        ([{"name": "A", "value": "1"}, {"name": "A", "value": "2"}], "spec.env[1].name", False,
         "more than once"),
        ([{"name": "A", "value": 1}], "spec.env[0].value", False, "must be a string"),
        ([{"name": "A", "valueFrom": {"secretKeyRef": {}}}], "spec.env[0].valueFrom", False,
         "not supported"),
        ([{"value": "x"}], "spec.env[0].name", False, "missing"),
    ],
    ids=["ok", "plugin-id", "token-file", "core-url", "prefix", "digit-first", "hyphen",
         "duplicate", "non-string-value", "value-from", "no-name"],
)  # fmt: skip
def test_env(env: object, field: str, ok: bool, fragment: str) -> None:
    check(spec(env=env), field, ok, fragment)


# --------------------------------------------------------------------------------------------
# Status
# --------------------------------------------------------------------------------------------


def test_status_serialises_camel_case_and_accepts_snake_case() -> None:
    status = PluginStatus(
        phase="Active",
        health="healthy",
        ready="1/1",
        ready_replicas=1,
        observed_generation=3,
        validation_errors=[{"field": "spec.manifest.id", "message": "bad"}],
        token={"secret_name": "user-management-token", "key_id": "k1"},
        conditions=[{"type": "Ready", "status": "True"}],
        metrics={"uptime": 12, "nested": {"x": [1, 2]}},
    )
    dumped = status.model_dump(by_alias=True, exclude_none=True)
    assert dumped["readyReplicas"] == 1
    assert dumped["observedGeneration"] == 3
    assert dumped["validationErrors"] == [{"field": "spec.manifest.id", "message": "bad"}]
    assert dumped["token"] == {"secretName": "user-management-token", "keyId": "k1"}
    assert dumped["conditions"] == [{"type": "Ready", "status": "True"}]
    assert PluginStatus.model_validate(dumped) == status


def test_status_reads_what_the_api_server_returns() -> None:
    status = PluginStatus.model_validate(
        {"phase": "Invalid", "consecutiveFailures": 2, "lastProbeTime": "2025-01-01T00:00:00Z",
         "somethingElse": {"kopf": True}}
    )  # fmt: skip
    assert status.phase == "Invalid"
    assert status.consecutive_failures == 2
