"""The one place the proxy imports the SDK's token verifier from.

Issue 15 moves the verifier to ``vivified_sdk``; only the import below changes then.
"""

from __future__ import annotations

from typing import Protocol

from vivified.sdk.verify import TokenVerifier
from vivified.tokens import TokenInvalid, VerifiedToken

__all__ = ["TokenInvalid", "TokenVerifier", "VerifiedToken", "Verifier"]


class Verifier(Protocol):
    """What the proxy needs of a verifier (``TokenVerifier`` satisfies it)."""

    def verify(self, token: str) -> VerifiedToken:
        """Every check on the token; raises ``TokenInvalid`` with a reason safe to log."""
        ...
