"""Tokens the lane needs: verifying a publisher's plugin token, minting a delivery's call token.

Verification goes through the SDK verifier (one import here, so its move to ``vivified_sdk``
touches one line). Minting call tokens is the core's job (issue 16): the lane only needs the
small :class:`CallTokenMinter` protocol; :class:`FakeCallTokenMinter` is for tests.
"""

from __future__ import annotations

import secrets
from typing import Protocol

from vivified.tokens import TokenInvalid, VerifiedToken

__all__ = ["Authenticator", "CallTokenMinter", "FakeCallTokenMinter", "TokenInvalid"]


class Authenticator(Protocol):
    """``vivified.sdk.verify.TokenVerifier`` satisfies this."""

    def verify(self, token: str) -> VerifiedToken: ...


class CallTokenMinter(Protocol):
    """Mints the short-lived token a delivery carries: aud = subscriber, sub = publisher."""

    def mint_call_token(self, *, target: str, caller: str) -> str: ...


class FakeCallTokenMinter:
    """Opaque random tokens, remembered so tests can check what a subscriber received."""

    def __init__(self) -> None:
        self.minted: dict[str, tuple[str, str]] = {}

    def mint_call_token(self, *, target: str, caller: str) -> str:
        token = secrets.token_urlsafe(24)
        self.minted[token] = (target, caller)
        return token
