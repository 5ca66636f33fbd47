"""Who is asking: ``Proxy-Authorization`` → a verified plugin identity (or why not).

``Bearer <JWT>``, or ``Basic base64(<plugin id>:<JWT>)`` for clients (Java, .NET, curl's
``-U``) that only speak Basic to proxies. With Basic the user name must be the token's plugin.
The token itself is checked by the core's verifier (:mod:`.verifier`), like on every lane.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from .verifier import CoreAuthFailure, TokenInvalid, VerifiedToken, Verifier

__all__ = ["PROXY_AUTH_STATUS", "AuthFailure", "Authenticator", "parse_proxy_authorization"]

PROXY_AUTH_STATUS = 407


@dataclass(frozen=True)
class AuthFailure:
    """Why identity failed: ``credentials_missing`` (challenge), ``invalid_token``,
    ``token_revoked`` ... (407), or ``core_not_ready`` (503)."""

    reason: str
    message: str
    status: int = PROXY_AUTH_STATUS


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
    """Parses the header, then asks the core's verifier (which caches verified signatures per
    trust-document version, so a burst of tunnels costs one signature check and a revocation
    is seen on the next request)."""

    def __init__(self, verifier: Verifier) -> None:
        self._verifier = verifier

    def identify(self, header: str | None) -> VerifiedToken | AuthFailure:
        parsed = parse_proxy_authorization(header)
        if isinstance(parsed, AuthFailure):
            return parsed
        user, token = parsed
        try:
            verified = self._verifier.verify(token)
        except CoreAuthFailure as failure:
            # invalid_token, token_revoked (401 on the HTTP lanes, 407 here); core_not_ready
            # stays 503: the client should retry, not re-authenticate.
            status = PROXY_AUTH_STATUS if failure.status == 401 else failure.status
            return AuthFailure(failure.reason, failure.detail, status)
        except TokenInvalid as invalid:
            return AuthFailure("invalid_token", f"invalid token: {invalid.reason}")
        if user is not None and user != verified.plugin_id:
            return AuthFailure(
                "credentials_mismatch", "the Basic user name is not the token's plugin id"
            )
        return verified
