"""The plugin's token Secret and the annotations the operator reads back from it.

``data`` (base64) rather than ``stringData``: ``stringData`` is write-only and merged into
``data`` by the API server, which makes server-side-apply ownership and diffs noisy; base64
of the same input is deterministic.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vivified.settings import OperatorSettings
from vivified.tokens import MintedToken, format_rfc3339, parse_rfc3339
from vivified_sdk import contract

from .common import (
    ANNOTATION_TOKEN_EXPIRES_AT,
    ANNOTATION_TOKEN_ISSUED_AT,
    ANNOTATION_TOKEN_JTI,
    ANNOTATION_TOKEN_KID,
    child_names,
    object_metadata,
)
from .hashing import canonical_json
from .instance import PluginInstance

__all__ = [
    "JWKS_KEY",
    "TOKEN_KEY",
    "TokenSecretState",
    "read_token_secret_state",
    "render_token_secret",
]

#: Data keys = file names in the plugin's mount (``vivified_sdk.contract``).
TOKEN_KEY = contract.TOKEN_FILE_NAME
JWKS_KEY = contract.JWKS_FILE_NAME


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def render_token_secret(
    plugin: PluginInstance,
    minted: MintedToken,
    settings: OperatorSettings,
    *,
    jwks: Mapping[str, Any],
) -> dict[str, Any]:
    """Secret ``<id>-token``: ``token`` (the JWT) and ``jwks.json`` (public keys, so the
    plugin can verify platform-issued tokens offline), plus annotations describing the token
    so the operator can decide on re-minting without decoding it."""
    del settings  # the mount path lives on the Deployment
    annotations = {
        ANNOTATION_TOKEN_JTI: minted.jti,
        ANNOTATION_TOKEN_KID: minted.kid,
        ANNOTATION_TOKEN_ISSUED_AT: format_rfc3339(minted.issued_at),
        ANNOTATION_TOKEN_EXPIRES_AT: format_rfc3339(minted.expires_at),
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": object_metadata(plugin, child_names(plugin.plugin_id)["Secret"], annotations),
        "type": "Opaque",
        "data": {
            JWKS_KEY: _b64(canonical_json(jwks)),
            TOKEN_KEY: _b64(minted.token),
        },
    }


@dataclass(frozen=True)
class TokenSecretState:
    """What a token Secret's annotations say about the token inside it."""

    jti: str
    kid: str
    issued_at: datetime
    expires_at: datetime


def read_token_secret_state(annotations: Mapping[str, str] | None) -> TokenSecretState | None:
    """Parse the token annotations; None when any is missing or malformed (→ re-mint)."""
    if not annotations:
        return None
    try:
        jti = annotations[ANNOTATION_TOKEN_JTI]
        kid = annotations[ANNOTATION_TOKEN_KID]
        issued_at = parse_rfc3339(annotations[ANNOTATION_TOKEN_ISSUED_AT])
        expires_at = parse_rfc3339(annotations[ANNOTATION_TOKEN_EXPIRES_AT])
    except (KeyError, ValueError):
        return None
    if not jti or not kid:
        return None
    return TokenSecretState(jti=jti, kid=kid, issued_at=issued_at, expires_at=expires_at)
