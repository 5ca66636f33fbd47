"""Reusing call tokens: one ES256 signature per (caller, target, operation) and key, not per call.

Signing is the largest single cost of a lane call (about a third of the core's CPU per call in
``bench/gateway.py``). A call token names caller, target, operation and the caller's traits,
and nothing about the request, so the same token may serve every call of that triple while it
is young: it is reused until half its lifetime is gone, then a fresh one is minted. The key id
and the traits are part of the cache key, so a key rotation or a trait change mints anew.
Revoking a caller does not need this cache: the core refuses a revoked caller before it gets
here, and a target sees at most the same ``ttl`` a fresh token would give it.

The cache is bounded (least recently used out first): hostile traffic cannot grow it past
``max_entries``, because only authenticated, policy-allowed triples reach it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from vivified import tokens

__all__ = ["CallTokenCache"]

_Key = tuple[str, str, str, str, tuple[str, ...], str]


@dataclass(frozen=True)
class _Minted:
    token: str
    renew_after: datetime


class CallTokenCache:
    """``token(...)`` → a call token with at least half of ``ttl_seconds`` left."""

    def __init__(self, *, issuer: str, ttl_seconds: int, max_entries: int = 4096) -> None:
        if ttl_seconds <= 0 or max_entries <= 0:
            raise ValueError("ttl_seconds and max_entries must be positive")
        self.issuer = issuer
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._minted: OrderedDict[_Key, _Minted] = OrderedDict()
        self.signatures = 0

    def __len__(self) -> int:
        return len(self._minted)

    def token(
        self,
        private_key: Any,
        kid: str,
        *,
        caller: str,
        caller_traits: tuple[str, ...],
        target: str,
        operation: str,
        now: datetime,
    ) -> str:
        key: _Key = (kid, caller, target, operation, caller_traits, self.issuer)
        found = self._minted.get(key)
        if found is not None and now < found.renew_after:
            self._minted.move_to_end(key)
            return found.token
        minted = tokens.mint_call_token(
            private_key,
            kid,
            caller=caller,
            caller_traits=caller_traits,
            target=target,
            operation=operation,
            issuer=self.issuer,
            ttl_seconds=self.ttl_seconds,
            now=now,
        )
        self.signatures += 1
        # The token's iat is ``now`` truncated to the second: renew from that instant.
        issued = now.replace(microsecond=0)
        self._minted[key] = _Minted(minted, issued + timedelta(seconds=self.ttl_seconds / 2))
        self._minted.move_to_end(key)
        while len(self._minted) > self.max_entries:
            self._minted.popitem(last=False)
        return minted
