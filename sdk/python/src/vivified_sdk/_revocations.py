"""Parsing the revocation list document the operator publishes (``revoked.json``).

``{"revoked": {"<jti>": "<expires_at RFC 3339>", ...}, "version": 1}`` — the operator writes
it (``vivified.tokens``), verifiers read it here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from . import contract
from .timestamps import parse_rfc3339

__all__ = ["RevocationListError", "parse_revocations", "revoked_jtis"]


class RevocationListError(ValueError):
    """The revocation list document is unreadable."""


def parse_revocations(document: object) -> dict[str, datetime]:
    """``jti -> expires_at`` (UTC) from a parsed ``revoked.json`` document."""
    if not isinstance(document, Mapping) or (
        document.get("version") != contract.REVOCATIONS_FORMAT_VERSION
    ):
        raise RevocationListError(f"{contract.REVOCATIONS_FILE_NAME} has an unsupported format")
    revoked = document.get("revoked")
    if not isinstance(revoked, Mapping):
        raise RevocationListError("revoked must be an object of jti -> RFC 3339 expiry")
    entries: dict[str, datetime] = {}
    for jti, exp in revoked.items():
        if not isinstance(jti, str) or not jti or not isinstance(exp, str):
            raise RevocationListError(f"revoked entry {str(jti)[:40]!r} is malformed")
        try:
            entries[jti] = parse_rfc3339(exp)
        except ValueError:
            raise RevocationListError(f"revoked entry {jti[:40]!r} has a bad expiry") from None
    return entries


def revoked_jtis(document: object) -> frozenset[str]:
    """Revoked jtis from a ``revoked.json`` document, or from a plain JSON list of jtis."""
    if isinstance(document, list):
        if not all(isinstance(j, str) for j in document):
            raise RevocationListError("revocation list must contain strings")
        return frozenset(document)
    return frozenset(parse_revocations(document))
