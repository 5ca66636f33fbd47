"""The call token a delivery carries: minted by the core, for the subscriber only.

Same token as the operator lane's (``vivified.tokens.mint_call_token``, signed with the core's
key in ``ctx.trust``, published in ``GET /v1/jwks``): ``aud`` = the subscriber, ``sub`` /
``caller`` = the publisher, ``act`` = the core, ``operation`` =
``contract.EVENT_DELIVERY_OPERATION`` (a value no ``endpoints`` key can take, so a receiver
tells a delivery from an operator-lane call). Subscribers verify it with the SDK's
``CallVerifier`` (``EventReceiver`` does).

Signing costs about as much as the POST itself, so a token is reused for the same
(subscriber, publisher) until half its lifetime has passed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from vivified import tokens
from vivified.dataplane.context import CoreContext
from vivified_sdk import contract

__all__ = ["DeliveryTokens"]


class DeliveryTokens:
    def __init__(self, ctx: CoreContext) -> None:
        self._ctx = ctx
        self._cache: dict[tuple[str, str, str], tuple[datetime, str]] = {}

    def token(self, *, subscriber: str, publisher: str) -> str:
        ctx = self._ctx
        now = ctx.clock()
        key = ctx.trust.core_key
        cache_key = (key.kid, subscriber, publisher)
        cached = self._cache.get(cache_key)
        if cached is not None and now < cached[0]:
            return cached[1]
        record = ctx.directory.get(publisher)
        ttl = ctx.settings.call_token_ttl_seconds
        minted = tokens.mint_call_token(
            key.private_key,
            key.kid,
            caller=publisher,
            caller_traits=tuple(record.manifest.traits) if record is not None else (),
            target=subscriber,
            operation=contract.EVENT_DELIVERY_OPERATION,
            issuer=ctx.settings.call_token_issuer,
            ttl_seconds=ttl,
            now=now,
        )
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[cache_key] = (now + timedelta(seconds=ttl / 2), minted)
        return minted
