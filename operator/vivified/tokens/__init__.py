"""Plugin identity tokens: ES256 signing keys, key rotation, JWKS, minting, revocation.

Pure functions: no Kubernetes I/O and no wall clock (``now`` is always passed in). The verify
half (``verify_plugin_token``, ``VerifiedToken``, ``TokenInvalid``, revocation parsing) lives
in the SDK (``vivified_sdk``) and is re-exported here, so there is one verifier.
"""

from __future__ import annotations

from .call_token import CALL_TOKEN_TYPE, CallIdentity, mint_call_token, verify_call_token
from .keyring import (
    DEFAULT_ROTATION_GRACE_SECONDS,
    JWKS_CONFIGMAP_KEY,
    KEYRING_SECRET_KEY,
    KeyChange,
    KeyRing,
    KeyRingError,
    RetiredKey,
    RotationStep,
    jwks,
    jwks_to_configmap_data,
    key_changes,
    keyring_from_secret_data,
    keyring_to_secret_data,
    needs_rotation,
    prune_keyring,
    rotate,
    rotation_due,
    stage,
)
from .keys import (
    ALGORITHM,
    KeyMaterialError,
    SigningKey,
    generate_signing_key,
    jwk_thumbprint,
    load_signing_key,
)
from .operator_token import OperatorIdentity, mint_operator_token, verify_operator_token
from .plugin_token import (
    REQUIRED_CLAIMS,
    TOKEN_TYPE,
    MintedToken,
    TokenInvalid,
    VerifiedToken,
    mint_plugin_token,
    needs_remint,
    subject_for,
    verify_plugin_token,
)
from .revocation import (
    REVOCATIONS_CONFIGMAP_KEY,
    RevocationList,
    RevocationListError,
    merge_revocations,
    prune_revocations,
    revocations_from_configmap_data,
    revocations_to_configmap_data,
    revoke,
)
from .timeutil import format_rfc3339, parse_rfc3339

__all__ = [
    "ALGORITHM",
    "CALL_TOKEN_TYPE",
    "DEFAULT_ROTATION_GRACE_SECONDS",
    "JWKS_CONFIGMAP_KEY",
    "KEYRING_SECRET_KEY",
    "REQUIRED_CLAIMS",
    "REVOCATIONS_CONFIGMAP_KEY",
    "TOKEN_TYPE",
    "CallIdentity",
    "KeyChange",
    "KeyMaterialError",
    "KeyRing",
    "KeyRingError",
    "MintedToken",
    "OperatorIdentity",
    "RetiredKey",
    "RevocationList",
    "RevocationListError",
    "RotationStep",
    "SigningKey",
    "TokenInvalid",
    "VerifiedToken",
    "format_rfc3339",
    "generate_signing_key",
    "jwk_thumbprint",
    "jwks",
    "jwks_to_configmap_data",
    "key_changes",
    "keyring_from_secret_data",
    "keyring_to_secret_data",
    "load_signing_key",
    "merge_revocations",
    "mint_call_token",
    "mint_operator_token",
    "mint_plugin_token",
    "needs_remint",
    "needs_rotation",
    "parse_rfc3339",
    "prune_keyring",
    "prune_revocations",
    "revocations_from_configmap_data",
    "revocations_to_configmap_data",
    "revoke",
    "rotate",
    "rotation_due",
    "stage",
    "subject_for",
    "verify_call_token",
    "verify_operator_token",
    "verify_plugin_token",
]
