"""Mint plugin identity tokens (JWT, ES256, ``kid`` header).

Verification is the SDK's (``vivified_sdk.verify_plugin_token``, re-exported here): one
verifier for plugins, the operator and the core. Claim names come from
``vivified_sdk.contract``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import jwt

from vivified_sdk import TokenInvalid, VerifiedToken, subject_for, verify_plugin_token
from vivified_sdk import contract as c

from .keyring import KeyRing
from .keys import ALGORITHM
from .timeutil import require_aware, to_epoch

if TYPE_CHECKING:
    from vivified.manifest import PluginManifest

__all__ = [
    "REQUIRED_CLAIMS",
    "TOKEN_TYPE",
    "MintedToken",
    "TokenInvalid",
    "VerifiedToken",
    "mint_plugin_token",
    "needs_remint",
    "subject_for",
    "verify_plugin_token",
]

TOKEN_TYPE = c.TOKEN_TYPE
REQUIRED_CLAIMS: tuple[str, ...] = c.REQUIRED_CLAIMS


@dataclass(frozen=True)
class MintedToken:
    """A freshly signed token. ``repr``/``str`` never show ``token``."""

    token: str = field(repr=False)
    jti: str
    kid: str
    issued_at: datetime
    expires_at: datetime

    def __repr__(self) -> str:
        return (
            f"MintedToken(jti={self.jti!r}, kid={self.kid!r}, "
            f"issued_at={self.issued_at.isoformat()!r}, "
            f"expires_at={self.expires_at.isoformat()!r})"
        )

    __str__ = __repr__


def mint_plugin_token(
    keyring: KeyRing,
    manifest: PluginManifest,
    *,
    issuer: str,
    audience: str,
    ttl_seconds: int,
    now: datetime,
    jti: str | None = None,
) -> MintedToken:
    """Sign a plugin token with the ring's active key.

    ``iat``/``nbf`` are ``now`` truncated to whole seconds; ``exp`` is ``iat + ttl_seconds``.
    """
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    issued_at = require_aware(now).replace(microsecond=0)
    expires_at = issued_at + timedelta(seconds=ttl_seconds)
    token_id = jti if jti is not None else uuid.uuid4().hex
    if not token_id:
        raise ValueError("jti must not be empty")
    claims: dict[str, Any] = {
        c.CLAIM_ISSUER: issuer,
        c.CLAIM_SUBJECT: subject_for(manifest.id),
        c.CLAIM_AUDIENCE: audience,
        c.CLAIM_ISSUED_AT: to_epoch(issued_at),
        c.CLAIM_NOT_BEFORE: to_epoch(issued_at),
        c.CLAIM_EXPIRES_AT: to_epoch(expires_at),
        c.CLAIM_JTI: token_id,
        c.CLAIM_PLUGIN_ID: manifest.id,
        c.CLAIM_TYPE: TOKEN_TYPE,
        c.CLAIM_TRAITS: list(manifest.traits),
        c.CLAIM_DATA_CLASSIFICATION: list(manifest.security.data_classification),
        c.CLAIM_VERSION: manifest.version,
    }
    key = keyring.active
    token = jwt.encode(
        claims,
        key.private_key(),
        algorithm=ALGORITHM,
        headers={"kid": key.kid, "typ": "JWT"},
    )
    return MintedToken(
        token=token, jti=token_id, kid=key.kid, issued_at=issued_at, expires_at=expires_at
    )


def needs_remint(
    issued_at: datetime, expires_at: datetime, now: datetime, refresh_fraction: float = 0.8
) -> bool:
    """True once ``refresh_fraction`` of the token's lifetime has elapsed (or it is unusable).

    At exactly the fraction the answer is True. A token whose ``expires_at`` is not after
    ``issued_at`` is always re-minted.
    """
    if not 0 < refresh_fraction <= 1:
        raise ValueError("refresh_fraction must be in (0, 1]")
    start = require_aware(issued_at, "issued_at")
    end = require_aware(expires_at, "expires_at")
    moment = require_aware(now)
    lifetime = end - start
    if lifetime <= timedelta(0):
        return True
    return moment >= start + lifetime * refresh_fraction
