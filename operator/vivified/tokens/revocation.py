"""Revoked token ids, kept until the token would have expired anyway.

Stored in the ``revocations_configmap`` ConfigMap under ``revoked.json``::

    {"revoked": {"<jti>": "<expires_at RFC3339>", ...}, "version": 1}

The JSON is canonical (sorted keys, no whitespace) so re-applying an unchanged list is a
no-op for server-side apply.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType

from vivified_sdk import RevocationListError, parse_revocations
from vivified_sdk import contract as c

from .timeutil import format_rfc3339, require_aware

__all__ = [
    "REVOCATIONS_CONFIGMAP_KEY",
    "RevocationList",
    "RevocationListError",
    "merge_revocations",
    "prune_revocations",
    "revocations_from_configmap_data",
    "revocations_to_configmap_data",
    "revoke",
]

REVOCATIONS_CONFIGMAP_KEY = c.REVOCATIONS_FILE_NAME
_FORMAT_VERSION = c.REVOCATIONS_FORMAT_VERSION


@dataclass(frozen=True)
class RevocationList(Mapping[str, datetime]):
    """Immutable mapping ``jti -> expires_at`` (UTC). ``jti in revocations`` is the check."""

    entries: Mapping[str, datetime] = field(default_factory=dict)

    def __post_init__(self) -> None:
        normalised = {
            jti: require_aware(expires_at, "expires_at")
            for jti, expires_at in sorted(self.entries.items())
        }
        object.__setattr__(self, "entries", MappingProxyType(normalised))

    def __getitem__(self, jti: str) -> datetime:
        return self.entries[jti]

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __hash__(self) -> int:
        return hash(tuple(self.entries.items()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RevocationList):
            return dict(self.entries) == dict(other.entries)
        return NotImplemented

    def __repr__(self) -> str:
        return f"RevocationList({len(self.entries)} entries)"

    @property
    def jtis(self) -> frozenset[str]:
        return frozenset(self.entries)


def revoke(revocations: RevocationList, jti: str, expires_at: datetime) -> RevocationList:
    """Add ``jti``; if already present the later expiry wins."""
    if not jti:
        raise ValueError("jti must not be empty")
    expires_at = require_aware(expires_at, "expires_at")
    current = revocations.entries.get(jti)
    if current is not None and current >= expires_at:
        return revocations
    return RevocationList({**revocations.entries, jti: expires_at})


def merge_revocations(*lists: RevocationList) -> RevocationList:
    """Every jti of every list, the latest expiry winning.

    Two replicas (or a replica and its own stale memory) each hold a list; writing either one
    alone would drop the other's revocations, so a writer merges with what is stored first.
    """
    merged: dict[str, datetime] = {}
    for revocations in lists:
        for jti, expires_at in revocations.entries.items():
            if jti not in merged or merged[jti] < expires_at:
                merged[jti] = expires_at
    return RevocationList(merged)


def prune_revocations(
    revocations: RevocationList, now: datetime, *, grace_seconds: int = 60
) -> RevocationList:
    """Drop entries whose token expired more than ``grace_seconds`` before ``now``.

    ``grace_seconds`` must be at least the verifiers' leeway: a token within leeway of its
    expiry is still accepted, so its revocation must still be listed.
    """
    cutoff = require_aware(now) - timedelta(seconds=grace_seconds)
    kept = {jti: exp for jti, exp in revocations.entries.items() if exp > cutoff}
    if len(kept) == len(revocations):
        return revocations
    return RevocationList(kept)


def revocations_to_configmap_data(revocations: RevocationList) -> dict[str, str]:
    document = {
        "revoked": {jti: format_rfc3339(exp) for jti, exp in revocations.entries.items()},
        "version": _FORMAT_VERSION,
    }
    return {REVOCATIONS_CONFIGMAP_KEY: json.dumps(document, sort_keys=True, separators=(",", ":"))}


def revocations_from_configmap_data(data: Mapping[str, str] | None) -> RevocationList:
    """Inverse of ``revocations_to_configmap_data``; a missing ConfigMap/key is empty."""
    if not data or REVOCATIONS_CONFIGMAP_KEY not in data:
        return RevocationList()
    try:
        document = json.loads(data[REVOCATIONS_CONFIGMAP_KEY])
    except (ValueError, TypeError):
        raise RevocationListError(f"{REVOCATIONS_CONFIGMAP_KEY} is not valid JSON") from None
    return RevocationList(parse_revocations(document))  # the SDK's parser: one reading
