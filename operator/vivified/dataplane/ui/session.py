"""The session cookie: the user's Kubernetes token sealed with AES-256-GCM, never stored here.

The server keeps no session table: the cookie *is* the session, encrypted and authenticated, so
a forged or altered cookie fails to open, and one older than its expiry is refused even if the
browser still sends it. The CSRF token lives inside the sealed payload, so a form token is only
valid together with the session it was issued for. An anonymous session (no token) carries the
CSRF token of the sign-in form.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field, replace

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

AAD = b"vivified-ui-session/v1"
NONCE_BYTES = 12
#: Browsers keep cookies up to 4096 bytes; sealing and base64 grow the payload by about 4/3.
MAX_TOKEN_CHARS = 2600


class SessionInvalid(Exception):  # noqa: N818 - reads as a state, like TokenInvalid
    """The cookie could not be opened: forged, altered, sealed with another key, or expired."""


@dataclass(frozen=True)
class Session:
    """What the cookie holds once opened."""

    csrf: str
    expires: int
    token: str | None = None
    username: str = ""
    groups: tuple[str, ...] = field(default_factory=tuple)
    namespace: str = ""

    @property
    def signed_in(self) -> bool:
        return self.token is not None

    def __repr__(self) -> str:  # never print the token
        return f"Session(username={self.username!r}, signed_in={self.signed_in})"

    def csrf_matches(self, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(self.csrf, candidate)


def anonymous(lifetime: int, now: float | None = None) -> Session:
    """A fresh session for the sign-in form (a CSRF token and nothing else)."""
    return Session(csrf=secrets.token_urlsafe(24), expires=int(now or time.time()) + lifetime)


def signed_in(
    *,
    token: str,
    username: str,
    groups: tuple[str, ...],
    namespace: str,
    lifetime: int,
    now: float | None = None,
) -> Session:
    """A new session after sign-in: a new CSRF token, so nothing from before carries over."""
    return replace(
        anonymous(lifetime, now),
        token=token,
        username=username,
        groups=groups,
        namespace=namespace,
    )


def seal(session: Session, key: bytes) -> str:
    payload = {
        "c": session.csrf,
        "e": session.expires,
        "t": session.token,
        "u": session.username,
        "g": list(session.groups),
        "n": session.namespace,
    }
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, json.dumps(payload).encode(), AAD)
    return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def unseal(cookie: str, key: bytes, now: float | None = None) -> Session:
    """Open a cookie; raises :class:`SessionInvalid` saying why not."""
    try:
        raw = base64.urlsafe_b64decode(cookie + "=" * (-len(cookie) % 4))
        plain = AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], AAD)
        payload = json.loads(plain)
        session = Session(
            csrf=str(payload["c"]),
            expires=int(payload["e"]),
            token=None if payload["t"] is None else str(payload["t"]),
            username=str(payload["u"]),
            groups=tuple(str(g) for g in payload["g"]),
            namespace=str(payload["n"]),
        )
    except (InvalidTag, ValueError, KeyError, TypeError, binascii.Error) as error:
        raise SessionInvalid("the session cookie is not one this server sealed") from error
    if session.expires <= (now or time.time()):
        raise SessionInvalid("the session has expired")
    return session
