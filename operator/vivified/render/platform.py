"""Operator-wide objects in the operator namespace: signing-key Secret, JWKS and
revocation ConfigMaps. Not owned by any plugin (they outlive every plugin)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from vivified.settings import OperatorSettings
from vivified.tokens import (
    KeyRing,
    RevocationList,
    jwks_to_configmap_data,
    keyring_to_secret_data,
    revocations_to_configmap_data,
)

__all__ = [
    "PLATFORM_LABELS",
    "render_jwks_configmap",
    "render_revocations_configmap",
    "render_signing_key_secret",
]

#: Deliberately *not* ``managed-by=vivified-operator``: that label selects plugin children for
#: the operator's informer, which must never cache the signing key a second time.
PLATFORM_LABELS: Mapping[str, str] = {
    "app.kubernetes.io/component": "identity",
    "app.kubernetes.io/managed-by": "vivified-operator-identity",
    "app.kubernetes.io/part-of": "vivified",
}


def _metadata(name: str, settings: OperatorSettings) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": settings.operator_namespace,
        "labels": dict(sorted(PLATFORM_LABELS.items())),
    }


def render_signing_key_secret(keyring: KeyRing, settings: OperatorSettings) -> dict[str, Any]:
    """The key ring Secret (private key material: never log the result)."""
    data = {
        key: base64.b64encode(value.encode("utf-8")).decode("ascii")
        for key, value in sorted(keyring_to_secret_data(keyring).items())
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(settings.signing_key_secret, settings),
        "type": "Opaque",
        "data": data,
    }


def render_jwks_configmap(jwks: Mapping[str, Any], settings: OperatorSettings) -> dict[str, Any]:
    """Public keys for verifiers: ``data["jwks.json"]``."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(settings.jwks_configmap, settings),
        "data": jwks_to_configmap_data(jwks),
    }


def render_revocations_configmap(
    revocations: RevocationList, settings: OperatorSettings
) -> dict[str, Any]:
    """Revoked token ids: ``data["revoked.json"]``."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(settings.revocations_configmap, settings),
        "data": revocations_to_configmap_data(revocations),
    }
