"""Verifying one plugin token against a JWKS: pure (no I/O, ``now`` passed in).

Input is untrusted and may be anything (non-ASCII, lone surrogates, control bytes, megabytes),
so the token's shape — three dotted base64url segments, at most ``MAX_TOKEN_LENGTH`` — is
checked first, and any exception other than ``TokenInvalid`` is turned into one: the only
answer is a verified token or a refusal.

Only compact ES256 JWS is accepted, so the decoding is done here (strict base64url, strict
JSON, the ECDSA check by ``cryptography``) rather than by PyJWT's general decoder, whose
per-character Python checks cost more than the signature itself; public keys parsed from the
JWKS are cached by their members.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from . import contract as c
from ._errors import TokenInvalid
from ._strict_json import StrictJSONError, loads_strict
from .timestamps import MAX_EPOCH, from_epoch, require_aware, to_epoch

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
_KEY_MEMBERS = frozenset({"kty", "crv", "x", "y"})


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


def _b64decode(segment: str) -> bytes:
    """Strict base64url (no padding, canonical: re-encoding gives the same text)."""
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise TokenInvalid("malformed token") from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != segment:
        raise TokenInvalid("malformed token")
    return raw


def _json_object(segment: str) -> dict[str, Any]:
    try:
        document = loads_strict(_b64decode(segment), max_bytes=MAX_TOKEN_LENGTH)
    except StrictJSONError:
        raise TokenInvalid("malformed token") from None
    if not isinstance(document, dict):
        raise TokenInvalid("malformed token")
    return document


def unverified_kid(token: str) -> str:
    """The ``kid`` of a well-shaped token's header (not yet trusted)."""
    header = _json_object(token.split(".", 1)[0])
    if header.get("alg") != c.SIGNING_ALGORITHM:
        raise TokenInvalid(f"algorithm not allowed (only {c.SIGNING_ALGORITHM})")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenInvalid("token header has no kid")
    if header.get("crit") is not None:  # no extensions are understood (RFC 7515 4.1.11)
        raise TokenInvalid("unsupported critical header")
    return kid


@functools.lru_cache(maxsize=64)
def _public_key(members: tuple[tuple[str, str], ...]) -> ec.EllipticCurvePublicKey:
    key = jwt.PyJWK(dict(members), algorithm=c.SIGNING_ALGORITHM).key
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise TokenInvalid("key is not an ES256 key")
    return key


def _signing_key(token: str, jwks: Mapping[str, Any]) -> tuple[str, ec.EllipticCurvePublicKey]:
    """Header checks (ES256 only, kid present and published) -> ``(kid, public key)``."""
    kid = unverified_kid(token)
    jwk = _find_jwk(jwks, kid)
    alg = jwk.get("alg", c.SIGNING_ALGORITHM)
    if jwk.get("kty") != "EC" or jwk.get("crv") != _CURVE or alg != c.SIGNING_ALGORITHM:
        raise TokenInvalid("key is not an ES256 key")
    members = tuple(sorted((k, v) for k, v in jwk.items() if k in _KEY_MEMBERS))
    if not all(isinstance(v, str) for _, v in members):
        raise TokenInvalid("key in JWKS is unusable")
    try:
        return kid, _public_key(members)
    except (jwt.PyJWTError, ValueError):
        raise TokenInvalid("key in JWKS is unusable") from None


def _decode(
    token: str, key: ec.EllipticCurvePublicKey, *, audience: str, issuer: str
) -> dict[str, Any]:
    """Signature (ES256: raw ``r || s``), then the payload's ``iss``, ``aud`` and required
    claims. Times are checked by ``_check_times`` against the injected ``now``."""
    header, payload, signature = token.split(".")
    raw = _b64decode(signature)
    if len(raw) != 64:
        raise TokenInvalid("bad signature")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        key.verify(der, f"{header}.{payload}".encode("ascii"), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise TokenInvalid("bad signature") from None
    claims = _json_object(payload)
    for name in c.REQUIRED_CLAIMS:
        if name not in claims:
            raise TokenInvalid(f"missing claim {name}")
    if claims[c.CLAIM_ISSUER] != issuer:
        raise TokenInvalid("wrong issuer")
    aud = claims[c.CLAIM_AUDIENCE]
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise TokenInvalid("wrong audience")
    if audience not in audiences:
        raise TokenInvalid("wrong audience")
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
    if not isinstance(claims[c.CLAIM_SUBJECT], str) or not isinstance(claims[c.CLAIM_ISSUER], str):
        raise TokenInvalid("malformed token")
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


#: Longer ``Authorization`` values are refused before any parsing.
MAX_AUTHORIZATION_BYTES = 16 * 1024


def bearer_token(header: object) -> str:
    """The token of an ``Authorization: Bearer <token>`` value (``None`` = absent), or
    ``TokenInvalid``: the one header parser both verifiers use."""
    if header is None:
        raise TokenInvalid("missing bearer token")
    if not isinstance(header, str) or len(header) > MAX_AUTHORIZATION_BYTES:
        raise TokenInvalid("malformed authorization header")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenInvalid("missing bearer token")
    return token.strip()
