"""Who is asking: ``Proxy-Authorization`` → a verified plugin identity (or why not).

``Bearer <JWT>``, or ``Basic base64(<plugin id>:<JWT>)`` for clients (Java, .NET, curl's
``-U``) that only speak Basic to proxies. With Basic the user name must be the token's plugin.
Verified tokens are cached briefly (keyed by a digest, never the token) so a burst of tunnels
costs one signature check; the cache lifetime bounds how late a revocation is seen.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from .verifier import TokenInvalid, VerifiedToken, Verifier

__all__ = ["AuthFailure", "Authenticator", "parse_proxy_authorization"]

MAX_CACHE_ENTRIES = 4096


@dataclass(frozen=True)
class AuthFailure:
    """Why identity failed: ``credentials_missing`` (challenge) or ``token_invalid`` etc."""

    reason: str
    message: str


def parse_proxy_authorization(value: str | None) -> tuple[str | None, str] | AuthFailure:
    """(basic user or None, token) from the header value, or the failure."""
    if value is None or not value.strip():
        return AuthFailure("credentials_missing", "Proxy-Authorization is required")
    scheme, _, rest = value.strip().partition(" ")
    rest = rest.strip()
    if scheme.lower() == "bearer" and rest:
        return None, rest
    if scheme.lower() == "basic" and rest:
        try:
            decoded = base64.b64decode(rest, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return AuthFailure("credentials_malformed", "Basic credentials are not base64 text")
        user, sep, password = decoded.partition(":")
        if not sep or not password:
            return AuthFailure(
                "credentials_malformed", "Basic credentials need the plugin id and the token"
            )
        return user, password
    return AuthFailure("credentials_malformed", "use Bearer <token> or Basic <plugin:token>")


class Authenticator:
    """Verifies tokens off the event loop, with a short cache."""

    def __init__(
        self,
        verifier: Verifier,
        *,
        cache_seconds: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._verifier = verifier
        self._cache_seconds = cache_seconds
        self._monotonic = monotonic
        self._cache: OrderedDict[bytes, tuple[float, VerifiedToken]] = OrderedDict()
        self._inflight: dict[bytes, asyncio.Future[VerifiedToken | AuthFailure]] = {}

    async def identify(self, header: str | None) -> VerifiedToken | AuthFailure:
        parsed = parse_proxy_authorization(header)
        if isinstance(parsed, AuthFailure):
            return parsed
        user, token = parsed
        verified = await self._verify(token)
        if isinstance(verified, AuthFailure):
            return verified
        if user is not None and user != verified.plugin_id:
            return AuthFailure(
                "credentials_mismatch", "the Basic user name is not the token's plugin id"
            )
        return verified

    async def _verify(self, token: str) -> VerifiedToken | AuthFailure:
        key = hashlib.sha256(token.encode("utf-8", "replace")).digest()
        now = self._monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        pending = self._inflight.get(key)
        if pending is not None:  # a burst with one token costs one verification
            return await asyncio.shield(pending)
        future: asyncio.Future[VerifiedToken | AuthFailure] = (
            asyncio.get_running_loop().create_future()
        )
        self._inflight[key] = future
        try:
            result = await self._verify_now(key, token, now)
            future.set_result(result)
            return result
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: waiters see it, nobody logs "never retrieved"
            raise
        finally:
            del self._inflight[key]

    async def _verify_now(self, key: bytes, token: str, now: float) -> VerifiedToken | AuthFailure:
        try:
            # The SDK verifier may fetch JWKS/revocations over HTTP: keep it off the loop.
            verified = await asyncio.to_thread(self._verifier.verify, token)
        except TokenInvalid as error:
            return AuthFailure("token_invalid", f"token rejected: {error}")
        remaining = verified.expires_at.timestamp() - time.time()
        self._cache[key] = (now + min(self._cache_seconds, max(remaining, 0.0)), verified)
        self._cache.move_to_end(key)
        while len(self._cache) > MAX_CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return verified
