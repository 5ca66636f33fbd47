"""The manifest models: the seed's examples parse, defaults are sensible, numbers are strict."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError
from tests.seed import user_management_manifest

from vivified.manifest import (
    DEFAULT_HEALTH_PATH,
    Compliance,
    HealthCheck,
    PluginManifest,
    Resources,
    Security,
)

# The seed document, section "Manifest Details": the User Management plugin's manifest.
SEED_USER_MANAGEMENT: dict[str, Any] = user_management_manifest()

# The seed document, section "Core Manifest Structure".
SEED_CORE_STRUCTURE: dict[str, Any] = {
    "id": "user-management",
    "name": "User Management Service",
    "version": "1.2.0",
    "description": "Manages user profiles and authentication",
    "contracts": ["IdentityPlugin"],
    "traits": ["handles_pii", "audit_required"],
    "security": {"authentication_required": True, "data_classification": ["pii"]},
    "compliance": {"hipaa_controls": ["164.312(a)"], "audit_level": "detailed"},
}


def seed() -> dict[str, Any]:
    return copy.deepcopy(SEED_USER_MANAGEMENT)


def test_seed_user_management_manifest_parses() -> None:
    manifest = PluginManifest.model_validate(seed())
    assert manifest.id == "user-management"
    assert manifest.security.data_classification == ["pii", "internal"]
    assert manifest.endpoints["user_info"] == "/api/users/{id}"
    assert manifest.health_check is None
    assert manifest.resources is None


def test_core_structure_example_parses_with_list_fields_defaulting_to_empty() -> None:
    manifest = PluginManifest.model_validate(copy.deepcopy(SEED_CORE_STRUCTURE))
    assert manifest.dependencies == []
    assert manifest.allowed_domains == []
    assert manifest.endpoints == {}
    assert manifest.security.allowed_domains == []
    assert manifest.security.network_isolation is True
    assert manifest.compliance.data_retention_days is None


def test_description_is_optional() -> None:
    raw = seed()
    del raw["description"]
    assert PluginManifest.model_validate(raw).description is None


def test_health_check_defaults() -> None:
    hc = HealthCheck.model_validate({})
    assert hc.type == "http"
    assert hc.port is None
    assert hc.effective_path == DEFAULT_HEALTH_PATH
    assert (hc.interval_seconds, hc.timeout_seconds, hc.failure_threshold) == (30, 5, 3)
    assert HealthCheck.model_validate({"path": "/ready"}).effective_path == "/ready"


@pytest.mark.parametrize(
    ("model", "raw"),
    [
        pytest.param(PluginManifest, {**SEED_USER_MANAGEMENT, "extra": 1}, id="manifest"),
        pytest.param(Security, {"authentication_required": True, "data_classification": ["public"],
                                "extra": 1}, id="security"),
        pytest.param(Compliance, {"audit_level": "basic", "extra": 1}, id="compliance"),
        pytest.param(HealthCheck, {"extra": 1}, id="health_check"),
        pytest.param(Resources, {"extra": 1}, id="resources"),
    ],
)  # fmt: skip
def test_every_level_forbids_unknown_fields(model: type[Any], raw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="extra"):
        model.model_validate(raw)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param({"memory_limit": "512"}, id="memory-string"),
        pytest.param({"memory_limit": True}, id="memory-bool"),
        pytest.param({"memory_limit": 512.5}, id="memory-fraction"),
        pytest.param({"cpu_limit": "1"}, id="cpu-string"),
        pytest.param({"cpu_limit": False}, id="cpu-bool"),
    ],
)
def test_resources_numbers_are_strict(raw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Resources.model_validate(raw)


def test_resources_accept_numbers() -> None:
    res = Resources.model_validate({"memory_limit": 512, "cpu_limit": 1})
    assert res.memory_limit == 512
    assert res.cpu_limit == 1.0


def test_authentication_required_is_strictly_boolean() -> None:
    with pytest.raises(ValidationError):
        Security.model_validate({"authentication_required": "yes", "data_classification": ["pii"]})


def test_all_allowed_domains_is_the_normalised_union_of_both_lists() -> None:
    raw = seed()
    raw["allowed_domains"] = ["api.stripe.com", "Bücher.example"]
    raw["security"]["allowed_domains"] = ["API.stripe.com", "hooks.slack.com"]
    manifest = PluginManifest.model_validate(raw)
    assert manifest.all_allowed_domains == (
        "api.stripe.com",
        "xn--bcher-kva.example",
        "hooks.slack.com",
    )


def test_every_field_has_a_human_description() -> None:
    for model in (PluginManifest, Security, Compliance, HealthCheck, Resources):
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name} needs a description"
            assert len(info.description) >= 20
