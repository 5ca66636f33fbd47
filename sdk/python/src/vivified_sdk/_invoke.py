"""The operator lane, target side: verify the call token the core forwards with each call.

A call through ``/v1/invoke`` reaches the target with ``Authorization: Bearer <call token>``
minted by the core for this target only (``aud`` = this plugin's id, ``act`` = the core,
``type`` = ``call``). The caller's own token never arrives. :class:`CallVerifier` checks it
against the core's JWKS (``VIVIFIED_JWKS_URL``: the core's ``/v1/jwks``, which publishes the
core's key) and hands the handler the caller's identity (:class:`CallIdentity`).

Call tokens live about a minute and name one target, so no revocation list is consulted: a
revoked or disabled caller can no longer get one minted. The caller side
(``CoreClient.invoke``) lives in ``_client``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt

from . import contract as c
from ._env import optional
from ._errors import TokenInvalid
from ._refresh import Refresher, Refreshing
from ._sources import JwksSource, JwksUrl, polled_parts
from ._token import UnknownKey, bearer_token, check_token_shape, subject_for, unverified_kid
from .timestamps import from_epoch, require_aware, to_epoch

__all__ = [
    "CALL_TOKEN_TYPE",
    "DEFAULT_CORE_ISSUER",
    "CallIdentity",
    "CallVerifier",
    "verify_call_token",
]

CALL_TOKEN_TYPE = c.CALL_TOKEN_TYPE
DEFAULT_CORE_ISSUER = c.DEFAULT_CORE_ISSUER
ENV_CORE_ISSUER = c.ENV_CORE_ISSUER
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


def _key_for(token: str, jwks: Mapping[str, Any]) -> Any:
    kid = unverified_kid(token)  # ES256 only, kid present, no crit
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    for candidate in keys if isinstance(keys, list) else ():
        if isinstance(candidate, Mapping) and candidate.get("kid") == kid:
            if candidate.get("kty") != "EC" or candidate.get("crv") != "P-256":
                raise TokenInvalid("key is not an ES256 key")
            try:
                return jwt.PyJWK(dict(candidate), algorithm=c.SIGNING_ALGORITHM).key
            except (jwt.PyJWTError, ValueError):
                raise TokenInvalid("key in JWKS is unusable") from None
    raise UnknownKey(kid)


def verify_call_token(
    token: object,
    jwks: Mapping[str, Any],
    *,
    audience: str,
    issuer: str,
    now: datetime,
    leeway: int = 5,
) -> CallIdentity:
    """Every check a target needs: shape, ES256, kid, signature, iss, aud = the target itself,
    type ``call``, ``act`` = the issuer, times. Raises only ``TokenInvalid`` (reason safe to
    log), whatever ``token`` is. Pure: ``now`` is passed in."""
    shaped = check_token_shape(token)
    try:
        return _verify(shaped, jwks, audience=audience, issuer=issuer, now=now, leeway=leeway)
    except TokenInvalid:
        raise
    except Exception as error:  # fail closed: a surprise in parsing is a refusal, not a 500
        raise TokenInvalid(f"invalid token ({type(error).__name__})") from None


def _verify(
    token: str, jwks: Mapping[str, Any], *, audience: str, issuer: str, now: datetime, leeway: int
) -> CallIdentity:
    key = _key_for(token, jwks)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[c.SIGNING_ALGORITHM],
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


def _utc_now() -> datetime:
    return datetime.now(UTC)


class CallVerifier(Refreshing):
    """``verify_authorization(header)`` → who called (or ``TokenInvalid``). Thread-safe; like
    :class:`TokenVerifier`, it reads key snapshots only and refreshes URLs in the background
    (``start()``/``stop()``, ``with``/``async with``)."""

    def __init__(
        self,
        jwks: JwksSource,
        *,
        plugin_id: str,
        issuer: str = DEFAULT_CORE_ISSUER,
        leeway: int = 5,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if not plugin_id:
            raise ValueError("CallVerifier needs this plugin's id (the call tokens' audience)")
        self.jwks = jwks
        self.plugin_id = plugin_id
        self.issuer = issuer
        self.leeway = leeway
        self._clock = clock
        self._refresher = Refresher(polled_parts(jwks))

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, http: httpx.Client | None = None
    ) -> CallVerifier:
        """Keys from ``VIVIFIED_JWKS_URL`` (the core's ``/v1/jwks``), audience from
        ``PLUGIN_ID``, issuer from ``VIVIFIED_CORE_ISSUER`` (default ``vivified-core``)."""
        env = os.environ if environ is None else environ
        url = optional(env, c.ENV_JWKS_URL)
        if url is None:
            raise RuntimeError(f"{c.ENV_JWKS_URL} (the core's /v1/jwks) is not set")
        return cls(
            JwksUrl(url, http=http),
            plugin_id=optional(env, c.ENV_PLUGIN_ID) or "",
            issuer=optional(env, ENV_CORE_ISSUER) or DEFAULT_CORE_ISSUER,
        )

    def verify(self, token: object) -> CallIdentity:
        try:
            return verify_call_token(
                token,
                self.jwks.document(),
                audience=self.plugin_id,
                issuer=self.issuer,
                now=self._clock(),
                leeway=self.leeway,
            )
        except UnknownKey as unknown:
            self.jwks.missing(unknown.kid)  # non-blocking: wakes the refresher
            raise TokenInvalid(unknown.reason) from None

    def verify_authorization(self, header: object) -> CallIdentity:
        """Verify an ``Authorization: Bearer <call token>`` header value (``None`` = absent)."""
        return self.verify(bearer_token(header))
