"""Call tokens: what the core hands a target plugin for one forwarded call.

The caller's own plugin token never leaves the core. Instead the core signs a short-lived
token *for the target* (``aud`` = target plugin id) saying who called (``sub`` =
``plugin:<caller>``, ``caller``), which operation, and that the core vouches for it (``act`` =
``{"sub": <core issuer>}``, RFC 8693 actor claim). ``type`` is ``call``, so a call token can
never pass as a plugin token (and the reverse), and the audience pins it to one target, so a
target cannot replay it against another plugin.

Pure: no clock and no I/O; ``now`` is passed in.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import jwt

from .keys import ALGORITHM
from .plugin_token import TokenInvalid, check_token_shape, subject_for
from .timeutil import from_epoch, require_aware, to_epoch

__all__ = [
    "CALL_TOKEN_TYPE",
    "CallIdentity",
    "mint_call_token",
    "verify_call_token",
]

CALL_TOKEN_TYPE = "call"  # noqa: S105 - the type claim value
_REQUIRED = ("iss", "sub", "aud", "iat", "nbf", "exp", "jti", "type", "caller", "act")


@dataclass(frozen=True)
class CallIdentity:
    """Who called a target, as the core vouched for it."""

    caller: str
    target: str
    operation: str
    jti: str
    issuer: str
    actor: str
    traits: tuple[str, ...]
    expires_at: datetime
    claims: Mapping[str, Any] = field(repr=False)


def mint_call_token(
    private_key: Any,
    kid: str,
    *,
    caller: str,
    caller_traits: tuple[str, ...],
    target: str,
    operation: str,
    issuer: str,
    ttl_seconds: int,
    now: datetime,
) -> str:
    """Sign a call token. ``private_key`` is an already-loaded EC key (loading is slow)."""
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    issued = require_aware(now).replace(microsecond=0)
    claims = {
        "iss": issuer,
        "sub": subject_for(caller),
        "aud": target,
        "iat": to_epoch(issued),
        "nbf": to_epoch(issued),
        "exp": to_epoch(issued + timedelta(seconds=ttl_seconds)),
        "jti": uuid.uuid4().hex,
        "type": CALL_TOKEN_TYPE,
        "caller": caller,
        "operation": operation,
        "traits": list(caller_traits),
        "act": {"sub": issuer},
    }
    return jwt.encode(claims, private_key, algorithm=ALGORITHM, headers={"kid": kid, "typ": "JWT"})


def _key_for(token: str, jwks: Mapping[str, Any]) -> Any:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenInvalid("malformed token") from None
    if header.get("alg") != ALGORITHM:
        raise TokenInvalid(f"algorithm not allowed (only {ALGORITHM})")
    kid = header.get("kid")
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    for candidate in keys if isinstance(keys, list) else ():
        if isinstance(candidate, Mapping) and candidate.get("kid") == kid and kid:
            if candidate.get("kty") != "EC" or candidate.get("crv") != "P-256":
                raise TokenInvalid("key is not an ES256 key")
            try:
                return jwt.PyJWK(dict(candidate), algorithm=ALGORITHM).key
            except jwt.PyJWTError:
                raise TokenInvalid("key in JWKS is unusable") from None
    raise TokenInvalid("unknown key id")


def verify_call_token(
    token: str,
    jwks: Mapping[str, Any],
    *,
    audience: str,
    issuer: str,
    now: datetime,
    leeway: int = 5,
) -> CallIdentity:
    """Every check a target needs: shape, ES256, kid, signature, iss, aud = the target itself,
    type ``call``, ``act`` = the issuer, times. Raises ``TokenInvalid`` (reason safe to log)."""
    check_token_shape(token)
    key = _key_for(token, jwks)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            options={
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "require": list(_REQUIRED),
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
    moment = to_epoch(require_aware(now))
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if not isinstance(exp, int) or not isinstance(nbf, int):
        raise TokenInvalid("time claims must be integers")
    if exp <= moment - leeway:
        raise TokenInvalid("token expired")
    if nbf > moment + leeway:
        raise TokenInvalid("token not yet valid")
    if claims.get("type") != CALL_TOKEN_TYPE:
        raise TokenInvalid("not a call token")
    caller = claims.get("caller")
    if not isinstance(caller, str) or not caller or claims.get("sub") != subject_for(caller):
        raise TokenInvalid("sub does not match caller")
    act = claims.get("act")
    if not isinstance(act, Mapping) or act.get("sub") != issuer:
        raise TokenInvalid("not issued on behalf of the core")
    traits = claims.get("traits", [])
    operation = claims.get("operation", "")
    return CallIdentity(
        caller=caller,
        target=audience,
        operation=operation if isinstance(operation, str) else "",
        jti=str(claims["jti"]),
        issuer=issuer,
        actor=str(act["sub"]),
        traits=tuple(t for t in traits if isinstance(t, str)) if isinstance(traits, list) else (),
        expires_at=from_epoch(exp),
        claims=claims,
    )
