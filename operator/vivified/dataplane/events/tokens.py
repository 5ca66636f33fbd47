"""The call token a delivery carries: minted by the core, for the subscriber only.

Same token as the operator lane's (``vivified.tokens.mint_call_token``, signed with the core's
key in ``ctx.trust``, published in ``GET /v1/jwks``), through the same reuse cache
(:class:`~vivified.dataplane.call_tokens.CallTokenCache`: one signature per (publisher,
subscriber) while the token is young): ``aud`` = the subscriber, ``sub`` / ``caller`` = the
publisher, ``act`` = the core, ``operation`` = ``contract.EVENT_DELIVERY_OPERATION`` (a value
no ``endpoints`` key can take, so a receiver tells a delivery from an operator-lane call).
Subscribers verify it with the SDK's ``CallVerifier`` (``EventReceiver`` does).
"""

from __future__ import annotations

from vivified.dataplane.call_tokens import CallTokenCache
from vivified.dataplane.context import CoreContext
from vivified_sdk import contract

__all__ = ["DeliveryTokens"]


class DeliveryTokens:
    def __init__(self, ctx: CoreContext) -> None:
        self._ctx = ctx
        self.cache = CallTokenCache(
            issuer=ctx.settings.call_token_issuer,
            ttl_seconds=ctx.settings.call_token_ttl_seconds,
        )

    def token(self, *, subscriber: str, publisher: str) -> str:
        ctx = self._ctx
        key = ctx.trust.core_key
        record = ctx.directory.get(publisher)
        return self.cache.token(
            key.private_key,
            key.kid,
            caller=publisher,
            caller_traits=tuple(record.manifest.traits) if record is not None else (),
            target=subscriber,
            operation=contract.EVENT_DELIVERY_OPERATION,
            now=ctx.clock(),
        )
