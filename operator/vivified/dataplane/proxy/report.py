"""What the proxy enforces right now, per plugin: the core's published allowlist state.

The proxy reads the directory on every request, so "loaded" means: the directory holds the
plugin at this generation, and these are the domains a request is checked against. The core
serves this document (``GET /v1/proxy/allowlists``); the operator compares the generation
with the CR's to set ``EgressEnforced`` (docs/proxy.md).
"""

from __future__ import annotations

from typing import Any

from vivified.dataplane.directory import PluginDirectory
from vivified.policy.egress import EXTERNAL_SERVICE_TRAIT, Mode

__all__ = ["allowlist_report"]


def allowlist_report(directory: PluginDirectory, mode: Mode = "enforce") -> dict[str, Any]:
    plugins: dict[str, Any] = {}
    for record in directory.all():
        external = EXTERNAL_SERVICE_TRAIT in record.manifest.traits
        plugins[record.plugin_id] = {
            "namespace": record.namespace,
            "generation": record.generation,
            "active": record.active,
            "domains": sorted(record.manifest.all_allowed_domains) if external else [],
        }
    return {"mode": mode, "plugins": plugins}
