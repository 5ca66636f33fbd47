"""Mint and verify plugin identity tokens (JWT, ES256, ``kid`` header)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import jwt

from .keyring import KeyRing
from .keys import ALGORITHM, CURVE
from .timeutil import from_epoch, require_aware, to_epoch

if TYPE_CHECKING:
    from vivified.manifest import PluginManifest

__all__ = [
    "REQUIRED_CLAIMS",
    "TOKEN_TYPE",
    "MintedToken",
    "TokenInvalid",
    "VerifiedToken",
    "check_token_shape",
    "mint_plugin_token",
    "needs_remint",
    "subject_for",
    "verify_plugin_token",
]

TOKEN_TYPE = "plugin"  # noqa: S105 - the type claim value
REQUIRED_CLAIMS: tuple[str, ...] = (
    "iss",
    "sub",
    "aud",
    "iat",
    "nbf",
    "exp",
    "jti",
    "plugin_id",
    "type",
)


#: The longest token any verifier looks at; plugin tokens are about 700 bytes.
MAX_TOKEN_LENGTH = 8 * 1024
_JWS_COMPACT = re.compile(r"[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}")


def check_token_shape(token: object) -> str:
    """Refuse anything that is not a compact JWS (three base64url parts, ASCII, bounded).

    Runs before PyJWT sees the value: a non-UTF-8 byte made PyJWT raise
    ``UnicodeEncodeError`` (a 500), and odd shapes should never reach a parser at all.
    """
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise TokenInvalid("malformed token")
    if not _JWS_COMPACT.fullmatch(token):
        raise TokenInvalid("malformed token")
    return token


def subject_for(plugin_id: str) -> str:
    """The ``sub`` claim of a plugin token: ``plugin:<id>``."""
    return f"plugin:{plugin_id}"


class TokenInvalid(Exception):  # noqa: N818 - name fixed by the design
    """A token was rejected. ``reason`` is safe to log: it never contains the token."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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


@dataclass(frozen=True)
class VerifiedToken:
    """The claims of a token that passed every check."""

    plugin_id: str
    subject: str
    jti: str
    kid: str
    issuer: str
    audience: tuple[str, ...]
    issued_at: datetime
    not_before: datetime
    expires_at: datetime
    traits: tuple[str, ...]
    data_classification: tuple[str, ...]
    version: str | None
    claims: Mapping[str, Any] = field(repr=False)


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
        "iss": issuer,
        "sub": subject_for(manifest.id),
        "aud": audience,
        "iat": to_epoch(issued_at),
        "nbf": to_epoch(issued_at),
        "exp": to_epoch(expires_at),
        "jti": token_id,
        "plugin_id": manifest.id,
        "type": TOKEN_TYPE,
        "traits": list(manifest.traits),
        "data_classification": list(manifest.security.data_classification),
        "version": manifest.version,
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


def _find_jwk(jwks: Mapping[str, Any], kid: str) -> dict[str, Any]:
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(keys, list):
        raise TokenInvalid("no usable JWKS")
    for candidate in keys:
        if isinstance(candidate, Mapping) and candidate.get("kid") == kid:
            return dict(candidate)
    raise TokenInvalid("unknown key id")


def _int_claim(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise TokenInvalid(f"claim {name} must be an integer")
    return value


def _str_list_claim(claims: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = claims.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TokenInvalid(f"claim {name} must be a list of strings")
    return tuple(value)


def _signing_key(token: str, jwks: Mapping[str, Any]) -> tuple[str, Any]:
    """Header checks (ES256 only, kid present and published) → ``(kid, public key)``."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenInvalid("malformed token") from None
    if header.get("alg") != ALGORITHM:
        raise TokenInvalid(f"algorithm not allowed (only {ALGORITHM})")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenInvalid("token header has no kid")
    jwk = _find_jwk(jwks, kid)
    if jwk.get("kty") != "EC" or jwk.get("crv") != CURVE or jwk.get("alg", ALGORITHM) != ALGORITHM:
        raise TokenInvalid("key is not an ES256 key")
    try:
        return kid, jwt.PyJWK(jwk, algorithm=ALGORITHM).key
    except jwt.PyJWTError:
        raise TokenInvalid("key in JWKS is unusable") from None


def _decode(token: str, key: Any, *, audience: str, issuer: str) -> dict[str, Any]:
    """Signature, ``aud``, ``iss`` and presence of the required claims (PyJWT).

    PyJWT's time checks read the wall clock, so they are off here; see ``_check_times``.
    """
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            options={
                "verify_signature": True,
                "verify_aud": True,
                "verify_iss": True,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "require": list(REQUIRED_CLAIMS),
            },
        )
    except jwt.MissingRequiredClaimError as exc:
        raise TokenInvalid(f"missing claim {exc.claim}") from None
    except jwt.InvalidSignatureError:
        raise TokenInvalid("bad signature") from None
    except jwt.InvalidAudienceError:
        raise TokenInvalid("wrong audience") from None
    except jwt.InvalidIssuerError:
        raise TokenInvalid("wrong issuer") from None
    except jwt.PyJWTError as exc:
        raise TokenInvalid(f"invalid token ({type(exc).__name__})") from None
    return claims


def _check_times(claims: Mapping[str, Any], moment: int, leeway: int) -> tuple[int, int, int]:
    iat = _int_claim(claims, "iat")
    nbf = _int_claim(claims, "nbf")
    exp = _int_claim(claims, "exp")
    if exp <= moment - leeway:
        raise TokenInvalid("token expired")
    if nbf > moment + leeway:
        raise TokenInvalid("token not yet valid")
    if iat > moment + leeway:
        raise TokenInvalid("token issued in the future")
    return iat, nbf, exp


def _check_identity(claims: Mapping[str, Any], revoked_jtis: Collection[str]) -> tuple[str, str]:
    if claims.get("type") != TOKEN_TYPE:
        raise TokenInvalid("not a plugin token")
    plugin_id = claims.get("plugin_id")
    if not isinstance(plugin_id, str) or not plugin_id:
        raise TokenInvalid("claim plugin_id must be a non-empty string")
    if claims.get("sub") != subject_for(plugin_id):
        raise TokenInvalid("sub does not match plugin_id")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise TokenInvalid("claim jti must be a non-empty string")
    if jti in revoked_jtis:
        raise TokenInvalid("token revoked")
    return plugin_id, jti


def verify_plugin_token(
    token: str,
    jwks: Mapping[str, Any],
    *,
    audience: str,
    issuer: str,
    revoked_jtis: Collection[str],
    now: datetime,
    leeway: int = 30,
) -> VerifiedToken:
    """Verify signature and claims of a plugin token against ``jwks`` at time ``now``.

    Only ES256 is accepted and the header's ``kid`` must name a key in ``jwks``. Time
    claims are checked here against the injected ``now`` with ``leeway`` seconds of clock
    skew (PyJWT reads the wall clock, so its own time checks are switched off).
    Raises ``TokenInvalid`` with a loggable reason.
    """
    moment = to_epoch(require_aware(now))
    check_token_shape(token)
    kid, key = _signing_key(token, jwks)
    claims = _decode(token, key, audience=audience, issuer=issuer)
    iat, nbf, exp = _check_times(claims, moment, leeway)
    plugin_id, jti = _check_identity(claims, revoked_jtis)
    aud = claims["aud"]
    version = claims.get("version")
    return VerifiedToken(
        plugin_id=plugin_id,
        subject=claims["sub"],
        jti=jti,
        kid=kid,
        issuer=claims["iss"],
        audience=(aud,) if isinstance(aud, str) else tuple(aud),
        issued_at=from_epoch(iat),
        not_before=from_epoch(nbf),
        expires_at=from_epoch(exp),
        traits=_str_list_claim(claims, "traits"),
        data_classification=_str_list_claim(claims, "data_classification"),
        version=version if isinstance(version, str) else None,
        claims=claims,
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
