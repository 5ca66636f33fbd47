"""Desired child objects of a VivifiedPlugin, as plain dicts ready for server-side apply.

Pure: no Kubernetes I/O, no clock, no randomness. The same inputs always give the same
output, byte for byte once serialised.
"""

from __future__ import annotations

from typing import Any

from vivified.settings import OperatorSettings

from .common import (
    ANNOTATION_ALLOWED_DOMAINS,
    ANNOTATION_MANIFEST_HASH,
    ANNOTATION_TOKEN_EXPIRES_AT,
    ANNOTATION_TOKEN_ISSUED_AT,
    ANNOTATION_TOKEN_JTI,
    ANNOTATION_TOKEN_KID,
    child_names,
    owner_reference,
    plugin_labels,
    selector_labels,
)
from .hashing import spec_hash
from .instance import PluginInstance
from .network import BLOCKED_IPV4_RANGES, BLOCKED_IPV6_RANGES, render_network_policy
from .platform import (
    render_jwks_configmap,
    render_revocations_configmap,
    render_signing_key_secret,
)
from .quantities import container_resources, cpu_quantity, memory_quantity
from .token_secret import TokenSecretState, read_token_secret_state, render_token_secret
from .workload import (
    RESERVED_ENV_NAMES,
    render_deployment,
    render_service,
    render_service_account,
)

__all__ = [
    "ANNOTATION_ALLOWED_DOMAINS",
    "ANNOTATION_MANIFEST_HASH",
    "ANNOTATION_TOKEN_EXPIRES_AT",
    "ANNOTATION_TOKEN_ISSUED_AT",
    "ANNOTATION_TOKEN_JTI",
    "ANNOTATION_TOKEN_KID",
    "BLOCKED_IPV4_RANGES",
    "BLOCKED_IPV6_RANGES",
    "RESERVED_ENV_NAMES",
    "PluginInstance",
    "TokenSecretState",
    "child_names",
    "container_resources",
    "cpu_quantity",
    "memory_quantity",
    "owner_reference",
    "plugin_labels",
    "read_token_secret_state",
    "render_children",
    "render_deployment",
    "render_jwks_configmap",
    "render_network_policy",
    "render_revocations_configmap",
    "render_service",
    "render_service_account",
    "render_signing_key_secret",
    "render_token_secret",
    "selector_labels",
    "spec_hash",
]


def render_children(plugin: PluginInstance, settings: OperatorSettings) -> list[dict[str, Any]]:
    """ServiceAccount, NetworkPolicy, Service, Deployment — in that order (isolation before
    workload; ``plan.apply_waves`` holds the Deployment back until the others are applied).

    The token Secret is not included: its content comes from a freshly minted token (see
    ``render_token_secret``). Raises ``ValueError`` if ``plugin.name`` is not the manifest id.
    """
    if plugin.name != plugin.plugin_id:
        raise ValueError(
            f"metadata.name {plugin.name!r} must equal spec.manifest.id {plugin.plugin_id!r}"
        )
    return [
        render_service_account(plugin, settings),
        render_network_policy(plugin, settings),
        render_service(plugin, settings),
        render_deployment(plugin, settings),
    ]
