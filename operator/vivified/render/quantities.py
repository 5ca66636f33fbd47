"""Manifest resource limits → Kubernetes quantities.

Memory: the manifest says megabytes; the seed's bounds (64-8192) are binary sizes, so
``memory_limit: 512`` becomes ``512Mi``. CPU: cores → millicores, written as whole cores
when exact (``1``, ``8``) and ``<n>m`` otherwise (``100m``, ``1500m``).
Requests are ``ceil(limit * settings.resource_request_fraction)`` (never below 1Mi / 1m).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from vivified.settings import OperatorSettings

if TYPE_CHECKING:
    from vivified.manifest import PluginManifest

__all__ = [
    "container_resources",
    "cpu_millicores",
    "cpu_quantity",
    "memory_quantity",
]


def memory_quantity(megabytes: int) -> str:
    """``64`` → ``"64Mi"``."""
    if isinstance(megabytes, bool) or not isinstance(megabytes, int) or megabytes < 1:
        raise ValueError(f"memory must be a positive whole number of MB, got {megabytes!r}")
    return f"{megabytes}Mi"


def cpu_millicores(cores: float) -> int:
    """``0.1`` → ``100``; rounds to the nearest millicore (Kubernetes' finest CPU unit)."""
    if isinstance(cores, bool) or not isinstance(cores, int | float) or not math.isfinite(cores):
        raise ValueError(f"cpu must be a number of cores, got {cores!r}")
    millis = round(cores * 1000)
    if millis < 1:
        raise ValueError(f"cpu must be at least 0.001 cores (1m), got {cores!r}")
    return millis


def _millicores_quantity(millis: int) -> str:
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def cpu_quantity(cores: float) -> str:
    """``0.1`` → ``"100m"``, ``1`` → ``"1"``, ``1.5`` → ``"1500m"``, ``8`` → ``"8"``."""
    return _millicores_quantity(cpu_millicores(cores))


def container_resources(
    manifest: PluginManifest, settings: OperatorSettings
) -> dict[str, dict[str, str]]:
    """``resources`` for the plugin container: limits from the manifest (or the operator
    defaults), requests from ``resource_request_fraction``."""
    declared = manifest.resources
    memory_mb = (
        declared.memory_limit
        if declared is not None and declared.memory_limit is not None
        else settings.default_memory_limit_mb
    )
    cores = (
        declared.cpu_limit
        if declared is not None and declared.cpu_limit is not None
        else settings.default_cpu_limit
    )
    limit_millis = cpu_millicores(cores)
    fraction = settings.resource_request_fraction
    request_mb = max(1, math.ceil(memory_mb * fraction))
    request_millis = max(1, math.ceil(limit_millis * fraction))
    return {
        "limits": {"cpu": _millicores_quantity(limit_millis), "memory": memory_quantity(memory_mb)},
        "requests": {
            "cpu": _millicores_quantity(request_millis),
            "memory": memory_quantity(request_mb),
        },
    }
