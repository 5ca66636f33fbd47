"""Verifying one plugin token against a JWKS: pure (no I/O, ``now`` passed in).

Input is untrusted and may be anything (non-ASCII, lone surrogates, control bytes, megabytes),
so the token's shape — three dotted base64url segments, at most ``MAX_TOKEN_LENGTH`` — is
checked before PyJWT sees it, and any exception other than ``TokenInvalid`` is turned into one:
the only answer is a verified token or a refusal.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jwt

from . import contract as c
from ._errors import TokenInvalid
from ._time import MAX_EPOCH, from_epoch, require_aware, to_epoch

__all__ = [
    "MAX_TOKEN_LENGTH",
    "UnknownKey",
    "VerifiedToken",
    "check_token_shape",
    "subject_for",
    "verify_plugin_token",
]

logger = logging.getLogger("vivified_sdk")

MAX_TOKEN_LENGTH = 8 * 1024
_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", re.ASCII)
_CURVE = "P-256"


class UnknownKey(TokenInvalid):
    """The token names a key id the JWKS does not hold (a verifier may refresh its keys)."""

    def __init__(self, kid: str) -> None:
        super().__init__("unknown key id")
        self.kid = kid


def subject_for(plugin_id: str) -> str:
    """The ``sub`` claim of a plugin token: ``plugin:<id>``."""
    return c.SUBJECT_PREFIX + plugin_id


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


def check_token_shape(token: object) -> str:
    """``token`` if it looks like a compact JWS; ``TokenInvalid`` otherwise."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise TokenInvalid("malformed token")
    if _SHAPE.fullmatch(token) is None:
        raise TokenInvalid("malformed token")
    return token


def _find_jwk(jwks: Mapping[str, Any], kid: str) -> dict[str, Any]:
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(keys, list):
        raise TokenInvalid("no usable JWKS")
    for candidate in keys:
        if isinstance(candidate, Mapping) and candidate.get("kid") == kid:
            return dict(candidate)
    raise UnknownKey(kid)


def unverified_kid(token: str) -> str:
    """The ``kid`` of a well-shaped token's header (not yet trusted)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenInvalid("malformed token") from None
    if header.get("alg") != c.SIGNING_ALGORITHM:
        raise TokenInvalid(f"algorithm not allowed (only {c.SIGNING_ALGORITHM})")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenInvalid("token header has no kid")
    return kid


def _signing_key(token: str, jwks: Mapping[str, Any]) -> tuple[str, Any]:
    """Header checks (ES256 only, kid present and published) -> ``(kid, public key)``."""
    kid = unverified_kid(token)
    jwk = _find_jwk(jwks, kid)
    alg = jwk.get("alg", c.SIGNING_ALGORITHM)
    if jwk.get("kty") != "EC" or jwk.get("crv") != _CURVE or alg != c.SIGNING_ALGORITHM:
        raise TokenInvalid("key is not an ES256 key")
    try:
        return kid, jwt.PyJWK(jwk, algorithm=c.SIGNING_ALGORITHM).key
    except jwt.PyJWTError:
        raise TokenInvalid("key in JWKS is unusable") from None


def _decode(token: str, key: Any, *, audience: str, issuer: str) -> dict[str, Any]:
    """Signature, ``aud``, ``iss`` and the required claims (PyJWT's clock checks are off:
    they read the wall clock; ``_check_times`` uses the injected ``now``)."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[c.SIGNING_ALGORITHM],
            audience=audience,
            issuer=issuer,
            options={
                "verify_signature": True,
                "verify_aud": True,
                "verify_iss": True,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "require": list(c.REQUIRED_CLAIMS),
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


def _int_claim(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_EPOCH:
        raise TokenInvalid(f"claim {name} must be an integer timestamp")
    return value


def _str_list_claim(claims: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = claims.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TokenInvalid(f"claim {name} must be a list of strings")
    return tuple(value)


def _check_times(claims: Mapping[str, Any], moment: int, leeway: int) -> tuple[int, int, int]:
    iat = _int_claim(claims, c.CLAIM_ISSUED_AT)
    nbf = _int_claim(claims, c.CLAIM_NOT_BEFORE)
    exp = _int_claim(claims, c.CLAIM_EXPIRES_AT)
    if exp <= moment - leeway:
        raise TokenInvalid("token expired")
    if nbf > moment + leeway:
        raise TokenInvalid("token not yet valid")
    if iat > moment + leeway:
        raise TokenInvalid("token issued in the future")
    return iat, nbf, exp


def _check_identity(claims: Mapping[str, Any], revoked_jtis: Collection[str]) -> tuple[str, str]:
    if claims.get(c.CLAIM_TYPE) != c.TOKEN_TYPE:
        raise TokenInvalid("not a plugin token")
    plugin_id = claims.get(c.CLAIM_PLUGIN_ID)
    if not isinstance(plugin_id, str) or not plugin_id:
        raise TokenInvalid(f"claim {c.CLAIM_PLUGIN_ID} must be a non-empty string")
    if claims.get(c.CLAIM_SUBJECT) != subject_for(plugin_id):
        raise TokenInvalid(f"sub does not match {c.CLAIM_PLUGIN_ID}")
    jti = claims.get(c.CLAIM_JTI)
    if not isinstance(jti, str) or not jti:
        raise TokenInvalid("claim jti must be a non-empty string")
    if jti in revoked_jtis:
        raise TokenInvalid("token revoked")
    return plugin_id, jti


def _verify(
    token: str,
    jwks: Mapping[str, Any],
    *,
    audience: str,
    issuer: str,
    revoked_jtis: Collection[str],
    moment: int,
    leeway: int,
) -> VerifiedToken:
    kid, key = _signing_key(token, jwks)
    claims = _decode(token, key, audience=audience, issuer=issuer)
    iat, nbf, exp = _check_times(claims, moment, leeway)
    plugin_id, jti = _check_identity(claims, revoked_jtis)
    aud = claims[c.CLAIM_AUDIENCE]
    version = claims.get(c.CLAIM_VERSION)
    return VerifiedToken(
        plugin_id=plugin_id,
        subject=claims[c.CLAIM_SUBJECT],
        jti=jti,
        kid=kid,
        issuer=claims[c.CLAIM_ISSUER],
        audience=(aud,) if isinstance(aud, str) else tuple(aud),
        issued_at=from_epoch(iat),
        not_before=from_epoch(nbf),
        expires_at=from_epoch(exp),
        traits=_str_list_claim(claims, c.CLAIM_TRAITS),
        data_classification=_str_list_claim(claims, c.CLAIM_DATA_CLASSIFICATION),
        version=version if isinstance(version, str) else None,
        claims=claims,
    )


def verify_plugin_token(
    token: object,
    jwks: Mapping[str, Any],
    *,
    audience: str,
    issuer: str,
    revoked_jtis: Collection[str],
    now: datetime,
    leeway: int = 30,
) -> VerifiedToken:
    """Every check of docs/tokens.md against ``jwks`` at time ``now``: ES256 only, the
    header's ``kid`` published, signature, ``iss``, ``aud``, ``exp``/``nbf``/``iat`` with
    ``leeway`` seconds of skew, ``type``/``sub``/``plugin_id``, ``jti`` not revoked.

    Raises only ``TokenInvalid`` (with a reason safe to log), whatever ``token`` is.
    """
    moment = to_epoch(require_aware(now))
    shaped = check_token_shape(token)
    try:
        return _verify(
            shaped,
            jwks,
            audience=audience,
            issuer=issuer,
            revoked_jtis=revoked_jtis,
            moment=moment,
            leeway=leeway,
        )
    except TokenInvalid:
        raise
    except Exception as error:  # fail closed: a surprise in parsing is a refusal, not a 500
        logger.warning("token refused on an unexpected %s", type(error).__name__)
        raise TokenInvalid("unverifiable token") from None
