"""VivifiedPlugin resource (a dict from the API server) → :class:`PluginRecord`. Pure.

A resource whose spec no longer parses is left out: the core serves only plugins it can
reason about, so an invalid one is an unknown target (404) and its tokens are refused (401).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast, get_args

from pydantic import ValidationError

from vivified.dataplane.directory import PluginRecord
from vivified.resource import Health, Phase, PluginSpec

__all__ = ["record_from_resource"]


def record_from_resource(obj: Mapping[str, Any]) -> PluginRecord | None:
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec")
    status = obj.get("status") or {}
    if not isinstance(spec, Mapping) or not isinstance(metadata, Mapping):
        return None
    try:
        parsed = PluginSpec.model_validate(dict(spec))
    except ValidationError:
        return None
    if parsed.manifest.id != metadata.get("name"):
        return None
    phase = status.get("phase") if isinstance(status, Mapping) else None
    health = status.get("health") if isinstance(status, Mapping) else None
    return PluginRecord(
        plugin_id=parsed.manifest.id,
        namespace=str(metadata.get("namespace", "")),
        manifest=parsed.manifest,
        phase=cast(Phase, phase) if phase in get_args(Phase) else "Pending",
        health=cast(Health, health) if health in get_args(Health) else "unknown",
        enabled=parsed.enabled,
        port=parsed.effective_port,
        generation=int(metadata.get("generation") or 0),
        status=dict(status) if isinstance(status, Mapping) else {},
    )
