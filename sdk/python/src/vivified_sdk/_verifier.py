"""``TokenVerifier``: verifies the plugin tokens callers present, from snapshots only.

``verify()`` reads the current keys and revocation list and checks the token; it never does
network I/O and never waits on a lock held across a fetch. URL sources are refreshed by a
background thread started with ``start()`` (or ``with`` / ``async with`` the verifier). Until
the first revocation list is loaded, and once it is older than its limit, every token is
refused with ``VerifierUnavailable`` (fail closed; see ``_sources``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import httpx

from . import contract as c
from ._env import first, optional
from ._errors import TokenInvalid
from ._refresh import Refresher, Refreshing
from ._sources import (
    JwksFile,
    JwksSource,
    JwksUrl,
    RevocationFile,
    RevocationSource,
    RevocationUrl,
    all_jwks,
    all_revocations,
    polled_parts,
)
from ._token import UnknownKey, VerifiedToken, bearer_token, check_token_shape, verify_plugin_token

__all__ = ["TokenVerifier"]

#: An ``Authorization`` header longer than this cannot hold a token we would accept.


def _utc_now() -> datetime:
    return datetime.now(UTC)


class TokenVerifier(Refreshing):
    """Verifies incoming plugin tokens. Thread-safe; usable from sync and async code."""

    def __init__(
        self,
        jwks: JwksSource,
        *,
        audience: str = c.DEFAULT_AUDIENCE,
        issuer: str = c.DEFAULT_ISSUER,
        revocations: RevocationSource | None = None,
        leeway: int = 30,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.jwks = jwks
        self.audience = audience
        self.issuer = issuer
        self.revocations = revocations
        self.leeway = leeway
        self._clock = clock
        self._refresher = Refresher(polled_parts(jwks, revocations))

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        clock: Callable[[], datetime] = _utc_now,
        revocations_refresh_seconds: float = 15.0,
        revocations_max_stale_seconds: float = 300.0,
        http: httpx.Client | None = None,
    ) -> TokenVerifier:
        """From the variables the operator sets (``vivified_sdk.contract``): keys from
        ``VIVIFIED_JWKS_FILE`` (default: the mounted ``jwks.json``) and/or
        ``VIVIFIED_JWKS_URL``; revocations from ``VIVIFIED_REVOCATIONS_FILE`` and/or
        ``VIVIFIED_REVOCATIONS_URL`` (both: a jti in either is revoked, either unusable refuses
        every token); issuer and audience from ``VIVIFIED_TOKEN_ISSUER``/``TOKEN_ISSUER`` and
        ``VIVIFIED_TOKEN_AUDIENCE``/``TOKEN_AUDIENCE``. Call ``start()`` to fetch URLs."""
        env = os.environ if environ is None else environ
        jwks_url = optional(env, c.ENV_JWKS_URL)
        jwks_file = optional(env, c.ENV_JWKS_FILE)
        if jwks_file is None and jwks_url is None:
            jwks_file = c.DEFAULT_JWKS_FILE
        keys: list[JwksSource] = []
        if jwks_file is not None:
            keys.append(JwksFile(jwks_file))
        if jwks_url is not None:
            keys.append(JwksUrl(jwks_url, http=http))
        lists: list[RevocationSource] = []
        revocations_file = optional(env, c.ENV_REVOCATIONS_FILE)
        if revocations_file is not None:
            lists.append(RevocationFile(revocations_file))
        revocations_url = optional(env, c.ENV_REVOCATIONS_URL)
        if revocations_url is not None:
            lists.append(
                RevocationUrl(
                    revocations_url,
                    refresh_seconds=revocations_refresh_seconds,
                    max_stale_seconds=revocations_max_stale_seconds,
                    http=http,
                )
            )
        return cls(
            all_jwks(*keys),
            audience=first(env, (c.ENV_AUDIENCE, c.ENV_AUDIENCE_ALIAS), c.DEFAULT_AUDIENCE),
            issuer=first(env, (c.ENV_ISSUER, c.ENV_ISSUER_ALIAS), c.DEFAULT_ISSUER),
            revocations=all_revocations(*lists),
            clock=clock,
        )

    # -- background refresh ----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """Whether the background refresh thread runs (False when nothing needs fetching)."""
        return self._refresher.running

    # -- verification ----------------------------------------------------------------------------
    def verify(self, token: object) -> VerifiedToken:
        """Every check of docs/tokens.md. Raises only ``TokenInvalid`` (reason safe to log);
        ``VerifierUnavailable`` (a subclass) when keys or revocations cannot be trusted."""
        shaped = check_token_shape(token)
        revoked = self.revocations.jtis() if self.revocations is not None else ()
        try:
            return verify_plugin_token(
                shaped,
                self.jwks.document(),
                audience=self.audience,
                issuer=self.issuer,
                revoked_jtis=revoked,
                now=self._clock(),
                leeway=self.leeway,
            )
        except UnknownKey as unknown:
            self.jwks.missing(unknown.kid)  # non-blocking: wakes the refresher
            raise TokenInvalid(unknown.reason) from None

    def verify_authorization(self, header: object) -> VerifiedToken:
        """Verify an ``Authorization: Bearer <token>`` header value (``None`` = absent)."""
        return self.verify(bearer_token(header))
