"""The hash chain: each record carries its writer, sequence, the previous hash and its own.

One chain per writer (a core replica or the operator): writers never coordinate, and a
verifier checks each chain on its own. ``hash`` is SHA-256 over the RFC 8785 canonical JSON of
the record without ``hash``, so any edit changes it, and ``prev`` ties it to the record before,
so a deletion or a swap breaks the link. Cutting off the tail leaves a valid chain: signed
checkpoints (:mod:`vivified.audit.checkpoint`) catch that.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

import rfc8785

GENESIS: Final = "0" * 64
_MAX_SAFE: Final = 2**53 - 1
#: One encoder for every record (``json.dumps`` with options builds a new one per call).
_ENCODER: Final = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
)


def _plain(value: object) -> bool:
    """Whether ``json.dumps`` writes ``value`` exactly as RFC 8785 does.

    True for what records hold: ASCII keys (so code-point order is UTF-16 order), ints within
    2^53, and non-integral floats in [1e-4, 1e16) (where Python's shortest repr and
    ECMAScript's Number-to-String agree). Strings are escaped identically by both.
    """
    if isinstance(value, str) or value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -_MAX_SAFE <= value <= _MAX_SAFE
    if isinstance(value, float):
        return math.isfinite(value) and 1e-4 <= abs(value) < 1e16 and not value.is_integer()
    if isinstance(value, dict):
        return all(isinstance(k, str) and k.isascii() and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return False


def canonical(value: Mapping[str, object], *, trusted: bool = False) -> bytes:
    """RFC 8785 (JCS) bytes: one byte string per JSON value, whatever wrote it.

    Records take a fast path through the standard library's encoder (4-5x quicker than the
    pure-Python ``rfc8785``); anything else goes to ``rfc8785``, the reference. A property
    test holds the two equal on the fast path. ``trusted``: the caller built ``value`` within
    that domain (:func:`vivified.audit.record.build_body` guarantees it), so the check is
    skipped; a verifier never passes it.
    """
    plain = dict(value)
    if trusted or _plain(plain):
        try:
            return _ENCODER.encode(plain).encode()
        except UnicodeEncodeError:  # a lone surrogate: let the reference decide
            pass
    return rfc8785.dumps(cast("dict[str, Any]", plain))


def digest(value: Mapping[str, object], *, trusted: bool = False) -> str:
    """The record hash: SHA-256 of the canonical JSON of everything but ``hash``."""
    unsigned = {k: v for k, v in value.items() if k != "hash"}
    return hashlib.sha256(canonical(unsigned, trusted=trusted)).hexdigest()


def body_digest(data: bytes) -> str:
    """SHA-256 of a request or response body, as ``complete`` records keep it."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Head:
    """Where a writer's chain ends: its last sequence and hash (``seq`` 0 = empty)."""

    writer: str
    seq: int = 0
    hash: str = GENESIS


def seal(
    body: Mapping[str, object], head: Head, *, trusted: bool = False
) -> tuple[dict[str, object], Head]:
    """Append ``body`` to the chain at ``head``: the full record and the new head."""
    record: dict[str, object] = {
        **body,
        "writer": head.writer,
        "seq": head.seq + 1,
        "prev": head.hash,
    }
    record["hash"] = digest(record, trusted=trusted)
    return record, Head(head.writer, head.seq + 1, str(record["hash"]))


def seal_line(body: Mapping[str, object], head: Head) -> tuple[dict[str, object], bytes, Head]:
    """:func:`seal` for a trusted body, and the stored line, with one encoding instead of two.

    The line is the canonical JSON of the record without ``hash``, with ``hash`` appended as
    the last member: valid JSON a verifier parses, not itself canonical (it need not be).
    """
    record: dict[str, object] = {
        **body,
        "writer": head.writer,
        "seq": head.seq + 1,
        "prev": head.hash,
    }
    unsigned = canonical(record, trusted=True)
    hashed = hashlib.sha256(unsigned).hexdigest()
    record["hash"] = hashed
    line = unsigned[:-1] + b',"hash":"' + hashed.encode() + b'"}'
    return record, line, Head(head.writer, head.seq + 1, hashed)


def head_of(record: Mapping[str, object]) -> Head:
    """The head a stored record leaves its chain at (to resume writing after a restart)."""
    return Head(str(record["writer"]), int(str(record["seq"])), str(record["hash"]))
