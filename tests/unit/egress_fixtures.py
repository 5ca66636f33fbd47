"""Plugin records for the proxy lane's tests."""

from __future__ import annotations

from typing import Any

from vivified.dataplane.directory import PluginRecord
from vivified.manifest import PluginManifest
from vivified.resource import Phase


def egress_manifest(
    plugin_id: str = "billing",
    *,
    domains: tuple[str, ...] = ("api.partner.test",),
    traits: tuple[str, ...] = ("external_service",),
    audit_level: str = "basic",
) -> PluginManifest:
    data: dict[str, Any] = {
        "id": plugin_id,
        "name": plugin_id,
        "version": "1.0.0",
        "contracts": ["CommunicationPlugin"],
        "traits": list(traits),
        "allowed_domains": list(domains),
        "security": {"authentication_required": True, "data_classification": ["internal"]},
        "compliance": {"audit_level": audit_level},
    }
    return PluginManifest.model_validate(data)


def egress_record(
    plugin_id: str = "billing",
    *,
    domains: tuple[str, ...] = ("api.partner.test",),
    traits: tuple[str, ...] = ("external_service",),
    phase: Phase = "Active",
    enabled: bool = True,
    generation: int = 1,
) -> PluginRecord:
    return PluginRecord(
        plugin_id=plugin_id,
        namespace="team-a",
        manifest=egress_manifest(plugin_id, domains=domains, traits=traits),
        phase=phase,
        enabled=enabled,
        generation=generation,
    )
