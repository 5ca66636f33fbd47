"""The SDK's exceptions. ``TokenInvalid`` is the only one ``verify`` ever raises."""

from __future__ import annotations

__all__ = ["TokenInvalid", "VerifierUnavailable"]


class TokenInvalid(Exception):  # noqa: N818 - name fixed by the design
    """A token was refused. ``reason`` is safe to log: it never contains the token."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class VerifierUnavailable(TokenInvalid):
    """Refused because the verifier cannot check right now (keys or revocation list never
    loaded, or too old): fail closed. A server may answer 503 instead of 401."""
