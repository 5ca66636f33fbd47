"""How the proxy checks a token: the core's own checks, shared with every lane.

The proxy parses ``Proxy-Authorization`` itself (Bearer or Basic, :mod:`.auth`); the token
inside goes through :meth:`vivified.dataplane.auth.Authenticator.verify` — the same call the
operator lane makes (ES256, published ``kid``, ``iss``, ``aud``, ``exp``/``nbf``, type, ``jti``
against the live revocation list, fail closed until the trust documents are loaded). In the
core that is ``ctx.authenticator``; it never waits on the network (the trust documents come
from the watch), so the proxy calls it on the event loop.
"""

from __future__ import annotations

from typing import Protocol

from vivified.dataplane.auth import AuthFailure as CoreAuthFailure
from vivified.tokens import TokenInvalid, VerifiedToken

__all__ = ["CoreAuthFailure", "TokenInvalid", "VerifiedToken", "Verifier"]


class Verifier(Protocol):
    """What the proxy needs of a verifier (``CoreContext.authenticator`` satisfies it)."""

    def verify(self, token: str) -> VerifiedToken:
        """Every check on the token; raises the core's ``AuthFailure`` (or ``TokenInvalid``)
        with a reason safe to show."""
        ...
