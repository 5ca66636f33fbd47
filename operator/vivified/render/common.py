"""Names, labels, annotations and ownerReferences shared by every rendered child."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from vivified.settings import PLUGIN_COMMON_LABELS, PLUGIN_ID_LABEL

from .instance import PluginInstance

__all__ = [
    "ANNOTATION_ALLOWED_DOMAINS",
    "ANNOTATION_MANIFEST_HASH",
    "ANNOTATION_TOKEN_EXPIRES_AT",
    "ANNOTATION_TOKEN_ISSUED_AT",
    "ANNOTATION_TOKEN_JTI",
    "ANNOTATION_TOKEN_KID",
    "CRD_API_VERSION",
    "CRD_KIND",
    "PLUGIN_ID_LABEL",
    "child_names",
    "object_metadata",
    "owner_reference",
    "plugin_labels",
    "selector_labels",
    "version_label_value",
]

CRD_API_VERSION = "vivified.dev/v1alpha1"
CRD_KIND = "VivifiedPlugin"

ANNOTATION_MANIFEST_HASH = "vivified.dev/manifest-hash"
ANNOTATION_ALLOWED_DOMAINS = "vivified.dev/allowed-domains"
ANNOTATION_TOKEN_JTI = "vivified.dev/token-jti"  # noqa: S105 - an annotation key
ANNOTATION_TOKEN_KID = "vivified.dev/token-kid"  # noqa: S105 - an annotation key
ANNOTATION_TOKEN_ISSUED_AT = "vivified.dev/token-issued-at"  # noqa: S105 - an annotation key
ANNOTATION_TOKEN_EXPIRES_AT = "vivified.dev/token-expires-at"  # noqa: S105 - an annotation key

_LABEL_VALUE_BAD = re.compile(r"[^A-Za-z0-9._-]")


def child_names(plugin_id: str) -> dict[str, str]:
    """Name of each child object by kind (the token Secret is ``<id>-token``)."""
    return {
        "ServiceAccount": plugin_id,
        "Secret": f"{plugin_id}-token",
        "Deployment": plugin_id,
        "Service": plugin_id,
        "NetworkPolicy": plugin_id,
    }


def version_label_value(version: str) -> str:
    """A label-safe form of a version (``+`` of build metadata becomes ``_``, max 63)."""
    value = _LABEL_VALUE_BAD.sub("_", version)[:63]
    return value.strip("._-")


def selector_labels(plugin_id: str) -> dict[str, str]:
    """The one label that selects a plugin's pods (Deployment, Service, NetworkPolicy)."""
    return {PLUGIN_ID_LABEL: plugin_id}


def plugin_labels(plugin: PluginInstance) -> dict[str, str]:
    """Labels on every child and on the pods, sorted by key."""
    manifest = plugin.spec.manifest
    labels = {
        **PLUGIN_COMMON_LABELS,
        "app.kubernetes.io/name": manifest.id,
        PLUGIN_ID_LABEL: manifest.id,
    }
    version = version_label_value(manifest.version)
    if version:
        labels["app.kubernetes.io/version"] = version
    return dict(sorted(labels.items()))


def owner_reference(plugin: PluginInstance) -> dict[str, Any]:
    return {
        "apiVersion": CRD_API_VERSION,
        "kind": CRD_KIND,
        "name": plugin.name,
        "uid": plugin.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def object_metadata(
    plugin: PluginInstance, name: str, annotations: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``metadata`` for a child: name, namespace, labels, annotations (if any), owner.

    ``ownerReferences`` are left out only for previews (``plugin.uid == ""``), where there is
    no owner object yet.
    """
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": plugin.namespace,
        "labels": plugin_labels(plugin),
    }
    if annotations:
        metadata["annotations"] = dict(sorted(annotations.items()))
    if plugin.uid:
        metadata["ownerReferences"] = [owner_reference(plugin)]
    return metadata
