"""The operator's own token: how the operator reads the core's operator-only routes.

The core serves two documents only the operator may read: the proxy's allowlist state
(``contract.CORE_PROXY_ALLOWLISTS_PATH``) and every plugin's event-lane counts
(``contract.CORE_EVENTS_STATUS_PATH``). The operator signs a short-lived token for them with
the active key of the same key ring it signs plugin tokens with, so the core verifies it
against the JWKS it already reads and needs no new secret. What keeps it apart from a plugin
token (docs/tokens.md "The operator token"):

- ``type`` = ``contract.OPERATOR_TOKEN_TYPE``, ``sub`` = ``contract.OPERATOR_SUBJECT`` (has a
  ``:``, so it is no plugin id, which is a DNS label), ``aud`` = ``contract.OPERATOR_AUDIENCE``
  (never the plugins' audience), and no ``plugin_id`` claim: a plugin-token verifier refuses it
  (missing claim, wrong audience, wrong type) and this verifier refuses a plugin token;
- its lifetime (``exp - iat``) is at most ``contract.OPERATOR_TOKEN_MAX_TTL_SECONDS``, checked
  by the verifier, so a leaked copy is worth minutes whatever the operator was set to mint.

Pure: no clock, no I/O (``now`` is passed in). Verification uses PyJWT's decoder (one request
per poll period, so its cost does not matter) behind the SDK's shape check, and turns every
surprise into ``TokenInvalid``.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from vivified_sdk import TokenInvalid
from vivified_sdk import contract as c

from .keyring import KeyRing
from .keys import ALGORITHM
from .plugin_token import MintedToken
from .timeutil import from_epoch, require_aware, to_epoch

__all__ = [
    "DEFAULT_TTL_SECONDS",
    "OperatorIdentity",
    "claims_type",
    "mint_operator_token",
    "verify_operator_token",
]

#: Lifetime of the operator's token unless told otherwise: five minutes, re-minted at half.
DEFAULT_TTL_SECONDS = 300
_MAX_TOKEN_LENGTH = 8 * 1024
_SHAPE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


@dataclass(frozen=True)
class OperatorIdentity:
    """A verified operator token (its id and lifetime; the subject is fixed)."""

    jti: str
    kid: str
    issued_at: datetime
    expires_at: datetime


def mint_operator_token(
    keyring: KeyRing,
    *,
    issuer: str,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    now: datetime,
) -> MintedToken:
    """Sign an operator token with the ring's active key (``iat``/``nbf`` = ``now``)."""
    if not 0 < ttl_seconds <= c.OPERATOR_TOKEN_MAX_TTL_SECONDS:
        raise ValueError(f"ttl_seconds must be in 1..{c.OPERATOR_TOKEN_MAX_TTL_SECONDS}")
    issued_at = require_aware(now).replace(microsecond=0)
    expires_at = issued_at + timedelta(seconds=ttl_seconds)
    token_id = uuid.uuid4().hex
    claims: dict[str, Any] = {
        c.CLAIM_ISSUER: issuer,
        c.CLAIM_SUBJECT: c.OPERATOR_SUBJECT,
        c.CLAIM_AUDIENCE: c.OPERATOR_AUDIENCE,
        c.CLAIM_ISSUED_AT: to_epoch(issued_at),
        c.CLAIM_NOT_BEFORE: to_epoch(issued_at),
        c.CLAIM_EXPIRES_AT: to_epoch(expires_at),
        c.CLAIM_JTI: token_id,
        c.CLAIM_TYPE: c.OPERATOR_TOKEN_TYPE,
    }
    key = keyring.active
    token = jwt.encode(
        claims, key.private_key(), algorithm=ALGORITHM, headers={"kid": key.kid, "typ": "JWT"}
    )
    return MintedToken(
        token=token, jti=token_id, kid=key.kid, issued_at=issued_at, expires_at=expires_at
    )


def claims_type(token: str) -> object:
    """The *unverified* ``type`` claim of a well-shaped token (None otherwise): only to choose
    which verifier to try, never to trust anything."""
    try:
        return jwt.decode(token, options={"verify_signature": False}).get(c.CLAIM_TYPE)
    except Exception:
        return None


def _public_key(token: str, jwks: Mapping[str, Any]) -> tuple[str, ec.EllipticCurvePublicKey]:
    header = jwt.get_unverified_header(token)
    if header.get("alg") != ALGORITHM:
        raise TokenInvalid(f"algorithm not allowed (only {ALGORITHM})")
    if header.get("crit") is not None:
        raise TokenInvalid("unsupported critical header")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenInvalid("token header has no kid")
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    for candidate in keys if isinstance(keys, list) else ():
        if isinstance(candidate, Mapping) and candidate.get("kid") == kid:
            if candidate.get("kty") != "EC" or candidate.get("crv") != "P-256":
                raise TokenInvalid("key is not an ES256 key")
            key = jwt.PyJWK(dict(candidate), algorithm=ALGORITHM).key
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise TokenInvalid("key is not an ES256 key")
            return kid, key
    raise TokenInvalid("unknown key id")


def _epoch(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TokenInvalid(f"claim {name} must be an integer timestamp")
    return value


def _check(
    claims: Mapping[str, Any],
    *,
    issuer: str,
    revoked_jtis: Collection[str],
    moment: int,
    leeway: int,
) -> tuple[str, int, int]:
    """The claim checks, in the order that gives the most useful reason."""
    if claims.get(c.CLAIM_TYPE) != c.OPERATOR_TOKEN_TYPE:
        raise TokenInvalid("not an operator token")
    if claims.get(c.CLAIM_SUBJECT) != c.OPERATOR_SUBJECT or c.CLAIM_PLUGIN_ID in claims:
        raise TokenInvalid("not the operator's subject")
    if claims.get(c.CLAIM_AUDIENCE) != c.OPERATOR_AUDIENCE:
        raise TokenInvalid("wrong audience")
    if claims.get(c.CLAIM_ISSUER) != issuer:
        raise TokenInvalid("wrong issuer")
    iat = _epoch(claims, c.CLAIM_ISSUED_AT)
    nbf = _epoch(claims, c.CLAIM_NOT_BEFORE)
    exp = _epoch(claims, c.CLAIM_EXPIRES_AT)
    if exp - iat > c.OPERATOR_TOKEN_MAX_TTL_SECONDS:
        raise TokenInvalid(f"lifetime over {c.OPERATOR_TOKEN_MAX_TTL_SECONDS} s")
    if exp <= moment - leeway:
        raise TokenInvalid("token expired")
    if nbf > moment + leeway:
        raise TokenInvalid("token not yet valid")
    if iat > moment + leeway:
        raise TokenInvalid("token issued in the future")
    jti = claims.get(c.CLAIM_JTI)
    if not isinstance(jti, str) or not jti:
        raise TokenInvalid("claim jti must be a non-empty string")
    if jti in revoked_jtis:
        raise TokenInvalid("token revoked")
    return jti, iat, exp


def verify_operator_token(
    token: object,
    jwks: Mapping[str, Any],
    *,
    issuer: str,
    revoked_jtis: Collection[str],
    now: datetime,
    leeway: int = 30,
) -> OperatorIdentity:
    """Signature (ES256, a published ``kid``), then ``type``, ``sub``, ``aud``, ``iss``, the
    lifetime cap, ``exp``/``nbf``/``iat`` with ``leeway`` seconds of skew, ``jti``.

    Raises only ``TokenInvalid`` (its reason is safe to log and to return), whatever
    ``token`` is.
    """
    moment = to_epoch(require_aware(now))
    if (
        not isinstance(token, str)
        or not 0 < len(token) <= _MAX_TOKEN_LENGTH
        or token.count(".") != 2
        or not set(token) <= _SHAPE_CHARS
    ):
        raise TokenInvalid("malformed token")
    try:
        kid, key = _public_key(token, jwks)
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            options={
                "verify_aud": False,
                "verify_iss": False,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_sub": False,
                "verify_jti": False,
            },
        )
        jti, iat, exp = _check(
            claims, issuer=issuer, revoked_jtis=revoked_jtis, moment=moment, leeway=leeway
        )
    except TokenInvalid:
        raise
    except jwt.InvalidSignatureError:
        raise TokenInvalid("bad signature") from None
    except Exception:  # fail closed: a surprise in parsing is a refusal, never a 500
        raise TokenInvalid("unverifiable token") from None
    return OperatorIdentity(jti=jti, kid=kid, issued_at=from_epoch(iat), expires_at=from_epoch(exp))
