"""The hash chain: each record carries its writer, sequence, the previous hash and its own.

One chain per writer (a core replica or the operator): writers never coordinate, and a
verifier checks each chain on its own. ``hash`` is SHA-256 over the RFC 8785 canonical JSON of
the record without ``hash``, so any edit changes it, and ``prev`` ties it to the record before,
so a deletion or a swap breaks the link. Cutting off the tail leaves a valid chain: signed
checkpoints (:mod:`vivified.audit.checkpoint`) catch that.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

import rfc8785

GENESIS: Final = "0" * 64


def canonical(value: Mapping[str, object]) -> bytes:
    """RFC 8785 (JCS) bytes: one byte string per JSON value, whatever wrote it."""
    return rfc8785.dumps(cast("dict[str, Any]", dict(value)))


def digest(value: Mapping[str, object]) -> str:
    """The record hash: SHA-256 of the canonical JSON of everything but ``hash``."""
    unsigned = {k: v for k, v in value.items() if k != "hash"}
    return hashlib.sha256(canonical(unsigned)).hexdigest()


def body_digest(data: bytes) -> str:
    """SHA-256 of a request or response body, as ``complete`` records keep it."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Head:
    """Where a writer's chain ends: its last sequence and hash (``seq`` 0 = empty)."""

    writer: str
    seq: int = 0
    hash: str = GENESIS


def seal(body: Mapping[str, object], head: Head) -> tuple[dict[str, object], Head]:
    """Append ``body`` to the chain at ``head``: the full record and the new head."""
    record: dict[str, object] = {
        **body,
        "writer": head.writer,
        "seq": head.seq + 1,
        "prev": head.hash,
    }
    record["hash"] = digest(record)
    return record, Head(head.writer, head.seq + 1, str(record["hash"]))


def head_of(record: Mapping[str, object]) -> Head:
    """The head a stored record leaves its chain at (to resume writing after a restart)."""
    return Head(str(record["writer"]), int(str(record["seq"])), str(record["hash"]))
