"""Keeping credentials out of records: an allowlist for headers, a scrubber for strings.

Headers are kept only if named here (a denylist misses the next ``X-Vendor-Key``); every
string that reaches a record is scrubbed of anything shaped like a JWT or an HTTP credential,
because a token can hide in a reason, a header value or a user agent just as well.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

#: Request/response headers a ``detailed`` record may keep. None of them carries a credential.
HEADER_ALLOWLIST: Final = frozenset(
    {
        "accept",
        "content-encoding",
        "content-length",
        "content-type",
        "traceparent",
        "tracestate",
        "user-agent",
        "x-request-id",
        "ce-id",
        "ce-type",
        "ce-source",
        "ce-specversion",
    }
)

MAX_STRING: Final = 512
REDACTED: Final = "[redacted]"

# Three base64url segments, the first a JSON header ("eyJ" = '{"'): JWS compact serialisation.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*")
# An HTTP credential written out in a string: "Bearer xyz", "Basic xyz", "token=xyz".
_CREDENTIAL = re.compile(
    r"(?i)\b(bearer|basic|digest|negotiate)\s+[A-Za-z0-9._~+/=-]+"
    r"|\b(access_token|id_token|refresh_token|token|password|passwd|secret|api[_-]?key|jwt)"
    r"\s*[=:]\s*[^\s&;,]+"
)


#: Short strings already found clean (action names, plugin ids, methods, user agents repeat
#: on every record): scrubbing one costs two regex passes, a hit one dict lookup. Only clean
#: strings are remembered, so no credential is kept in memory by it; cleared when full.
_CLEAN: dict[str, None] = {}
_CLEAN_MAX_ENTRIES: Final = 4096
_CLEAN_MAX_LENGTH: Final = 256


def scrub(text: str) -> str:
    """``text`` with JWT-shaped runs and written-out credentials replaced, and length capped."""
    if text in _CLEAN:
        return text
    cleaned = _scrub(text)
    if cleaned == text and len(text) <= _CLEAN_MAX_LENGTH:
        if len(_CLEAN) >= _CLEAN_MAX_ENTRIES:
            _CLEAN.clear()
        _CLEAN[text] = None
    return cleaned


def _scrub(text: str) -> str:
    cleaned = _CREDENTIAL.sub(REDACTED, _JWT.sub(REDACTED, text))
    if not cleaned.isascii():  # lone surrogates cannot be encoded: replace them
        cleaned = cleaned.encode("utf-8", "replace").decode("utf-8")
    if len(cleaned) > MAX_STRING:
        cleaned = cleaned[: MAX_STRING - 3] + "..."
        cleaned = _JWT.sub(REDACTED, cleaned)
    return cleaned


def select_headers(headers: object) -> dict[str, str]:
    """The allowlisted headers (lower-cased names), values scrubbed; everything else dropped."""
    if not isinstance(headers, Mapping):
        return {}
    kept: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str | int):
            continue
        lowered = name.lower()
        if lowered in HEADER_ALLOWLIST:
            kept[lowered] = scrub(str(value))
    return dict(sorted(kept.items()))
