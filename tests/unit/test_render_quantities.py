"""Manifest resources → container resources: the conversion table and the defaults."""

from __future__ import annotations

from typing import Any

import pytest

from vivified.manifest import PluginManifest
from vivified.render import container_resources, cpu_quantity, memory_quantity
from vivified.settings import OperatorSettings


def manifest(resources: dict[str, Any] | None) -> PluginManifest:
    data: dict[str, Any] = {
        "id": "demo",
        "name": "Demo",
        "version": "1.0.0",
        "contracts": ["StoragePlugin"],
        "traits": ["audit_required"],
        "security": {"authentication_required": True, "data_classification": ["internal"]},
        "compliance": {"audit_level": "basic"},
    }
    if resources is not None:
        data["resources"] = resources
    return PluginManifest.model_validate(data)


@pytest.mark.parametrize(
    ("megabytes", "quantity"),
    [(64, "64Mi"), (256, "256Mi"), (512, "512Mi"), (1000, "1000Mi"), (8192, "8192Mi")],
)
def test_memory_megabytes_become_mebibytes(megabytes: int, quantity: str) -> None:
    assert memory_quantity(megabytes) == quantity


@pytest.mark.parametrize(
    ("cores", "quantity"),
    [
        (0.1, "100m"),
        (0.25, "250m"),
        (0.5, "500m"),
        (1, "1"),
        (1.0, "1"),
        (1.5, "1500m"),
        (2, "2"),
        (2.25, "2250m"),
        (0.333, "333m"),
        (0.0015, "2m"),  # rounded to the nearest millicore
        (8, "8"),
        (8.0, "8"),
    ],
)
def test_cpu_cores_become_millicores_or_whole_cores(cores: float, quantity: str) -> None:
    assert cpu_quantity(cores) == quantity


@pytest.mark.parametrize("bad", [0, -1, 0.0004, float("nan"), float("inf"), True])
def test_cpu_below_one_millicore_or_not_a_number_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="cpu"):
        cpu_quantity(bad)


@pytest.mark.parametrize("bad", [0, -64, True, 1.5])
def test_memory_must_be_a_positive_whole_number(bad: Any) -> None:
    with pytest.raises(ValueError, match="memory"):
        memory_quantity(bad)


def test_declared_limits_with_requests_equal_to_limits_by_default() -> None:
    result = container_resources(
        manifest({"memory_limit": 512, "cpu_limit": 1.0}), OperatorSettings()
    )
    assert result == {
        "limits": {"cpu": "1", "memory": "512Mi"},
        "requests": {"cpu": "1", "memory": "512Mi"},
    }


def test_operator_defaults_when_resources_are_absent() -> None:
    result = container_resources(manifest(None), OperatorSettings())
    assert result == {
        "limits": {"cpu": "500m", "memory": "256Mi"},
        "requests": {"cpu": "500m", "memory": "256Mi"},
    }


@pytest.mark.parametrize(
    ("resources", "expected_limits"),
    [
        ({"memory_limit": 128}, {"cpu": "250m", "memory": "128Mi"}),
        ({"cpu_limit": 2.0}, {"cpu": "2", "memory": "1024Mi"}),
        ({}, {"cpu": "250m", "memory": "1024Mi"}),
    ],
)
def test_each_missing_limit_falls_back_to_its_own_default(
    resources: dict[str, Any], expected_limits: dict[str, str]
) -> None:
    settings = OperatorSettings(default_memory_limit_mb=1024, default_cpu_limit=0.25)
    assert container_resources(manifest(resources), settings)["limits"] == expected_limits


@pytest.mark.parametrize(
    ("fraction", "limits", "requests"),
    [
        (1.0, {"memory_limit": 512, "cpu_limit": 1.5}, {"cpu": "1500m", "memory": "512Mi"}),
        (0.5, {"memory_limit": 512, "cpu_limit": 1.5}, {"cpu": "750m", "memory": "256Mi"}),
        (0.5, {"memory_limit": 65, "cpu_limit": 0.1}, {"cpu": "50m", "memory": "33Mi"}),
        (0.25, {"memory_limit": 64, "cpu_limit": 8.0}, {"cpu": "2", "memory": "16Mi"}),
        (0.001, {"memory_limit": 64, "cpu_limit": 0.1}, {"cpu": "1m", "memory": "1Mi"}),
    ],
)
def test_requests_are_the_limit_fraction_rounded_up(
    fraction: float, limits: dict[str, Any], requests: dict[str, str]
) -> None:
    settings = OperatorSettings(resource_request_fraction=fraction)
    assert container_resources(manifest(limits), settings)["requests"] == requests
