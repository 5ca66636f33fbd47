"""For targets of the operator lane: verify the call token the core forwards with each call.

A call through ``/v1/invoke`` reaches the target with ``Authorization: Bearer <call token>``
minted by the core for this target only (``aud`` = this plugin's id, ``act`` = the core). The
caller's own token never arrives. :class:`CallVerifier` checks it against the core's JWKS
(``VIVIFIED_JWKS_URL``, the core's ``/v1/jwks``, which publishes the core's key) and gives the
handler the caller's identity (:class:`vivified.tokens.CallIdentity`).

Call tokens live 60 s and name one target, so there is no revocation list to consult: a
revoked or disabled caller can no longer get one minted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from vivified.tokens import CallIdentity, TokenInvalid, verify_call_token

from .config import ENV_JWKS_URL, optional
from .verify import JwksCache

__all__ = ["DEFAULT_CORE_ISSUER", "ENV_PLUGIN_ID", "CallIdentity", "CallVerifier"]

DEFAULT_CORE_ISSUER = "vivified-core"
ENV_PLUGIN_ID = "PLUGIN_ID"
ENV_CORE_ISSUER = "VIVIFIED_CORE_ISSUER"
_BEARER = re.compile(r"Bearer ([A-Za-z0-9_.-]{1,8192})", re.IGNORECASE)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class CallVerifier:
    """``verify_authorization(header)`` → who called (or ``TokenInvalid``). Thread-safe."""

    def __init__(
        self,
        jwks: JwksCache,
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

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CallVerifier:
        env = os.environ if environ is None else environ
        url = optional(env, ENV_JWKS_URL)
        if url is None:
            raise RuntimeError(f"{ENV_JWKS_URL} (the core's /v1/jwks) is not set")
        return cls(
            JwksCache(url=url),
            plugin_id=optional(env, ENV_PLUGIN_ID) or "",
            issuer=optional(env, ENV_CORE_ISSUER) or DEFAULT_CORE_ISSUER,
        )

    def verify(self, token: str) -> CallIdentity:
        import jwt  # noqa: PLC0415 - only for the unverified kid look-up

        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            raise TokenInvalid("malformed token") from None
        return verify_call_token(
            token,
            self.jwks.document(kid if isinstance(kid, str) else None),
            audience=self.plugin_id,
            issuer=self.issuer,
            now=self._clock(),
            leeway=self.leeway,
        )

    def verify_authorization(self, header: str | None) -> CallIdentity:
        """Verify an ``Authorization: Bearer <call token>`` header value."""
        match = _BEARER.fullmatch((header or "").strip())
        if match is None:
            raise TokenInvalid("missing bearer token")
        return self.verify(match.group(1))
