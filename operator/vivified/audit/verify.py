"""Checking a trail: every chain intact, and nothing cut off before a signed checkpoint.

Streams over the records (memory grows with the number of checkpoints and writers, not with
the trail), and reports the first broken record by its position in the input, its writer and
sequence. Problems are tampering (exit 1 in the CLI); input that is not a trail at all is for
the caller to reject before calling this.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from vivified.audit.chain import GENESIS, Head, digest
from vivified.audit.checkpoint import signature_valid

MAX_PROBLEMS = 20


@dataclass(frozen=True)
class Problem:
    """One break: where in the input, which chain, what is wrong."""

    position: int
    writer: str | None
    seq: int | None
    message: str

    def __str__(self) -> str:
        where = f"record {self.position}"
        if self.writer is not None:
            where += f" (writer {self.writer}, seq {self.seq})"
        return f"{where}: {self.message}"


@dataclass
class VerifyReport:
    """What a verification found."""

    records: int = 0
    heads: dict[str, Head] = field(default_factory=dict)
    checkpoints: int = 0
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None


def parse_line(raw: bytes | str) -> dict[str, object] | str:
    """A record object, or the reason it is not one."""
    try:
        text = raw.decode() if isinstance(raw, bytes) else raw
        value = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"unreadable ({exc.__class__.__name__})"
    if not isinstance(value, dict):
        return "not a JSON object"
    for name, kind in (("writer", str), ("seq", int), ("prev", str), ("hash", str)):
        if not isinstance(value.get(name), kind) or isinstance(value.get(name), bool):
            return f"field {name!r} missing or not a {kind.__name__}"
    return value


def _index_checkpoints(
    checkpoints: Iterable[bytes | str], key: Ed25519PublicKey | None, report: VerifyReport
) -> dict[tuple[str, int], tuple[str, str]]:
    """(writer, seq) → (head, time) of every checkpoint that is signed (or unchecked)."""
    index: dict[tuple[str, int], tuple[str, str]] = {}
    for n, raw in enumerate(checkpoints, start=1):
        try:
            text = raw.decode() if isinstance(raw, bytes) else raw
            value = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError):
            value = None
        if not isinstance(value, dict) or not isinstance(value.get("writer"), str):
            report.problems.append(Problem(0, None, None, f"checkpoint {n} unreadable"))
            continue
        if key is not None and not signature_valid(value, key):
            report.problems.append(
                Problem(0, value["writer"], None, f"checkpoint {n} has an invalid signature")
            )
            continue
        seq, head = value.get("seq"), value.get("head")
        if isinstance(seq, int) and isinstance(head, str):
            index[(value["writer"], seq)] = (head, str(value.get("time", "")))
            report.checkpoints += 1
    if key is None and index:
        report.warnings.append(
            "checkpoint signatures not checked (no public key given): a cut-off tail "
            "cannot be ruled out"
        )
    if not index:
        report.warnings.append("no checkpoints: a cut-off tail cannot be detected")
    return index


def _check_record(
    position: int,
    record: Mapping[str, object],
    heads: dict[str, Head],
) -> str | None:
    writer, seq = str(record["writer"]), int(str(record["seq"]))
    if digest(record) != record["hash"]:
        return "content does not match its hash (edited)"
    last = heads.get(writer)
    if last is None:
        if seq != 1:
            return f"chain begins at seq {seq}: records 1..{seq - 1} missing"
        if record["prev"] != GENESIS:
            return "first record does not start from the genesis hash"
        return None
    if seq <= last.seq:
        return f"seq {seq} after seq {last.seq}: re-ordered or duplicated"
    if seq != last.seq + 1:
        return f"seq {seq} after seq {last.seq}: records {last.seq + 1}..{seq - 1} missing"
    if record["prev"] != last.hash:
        return "prev does not match the hash of the record before (re-ordered or replaced)"
    return None


def verify_trail(
    lines: Iterable[bytes | str],
    checkpoints: Iterable[bytes | str] = (),
    key: Ed25519PublicKey | None = None,
) -> VerifyReport:
    """Verify every chain in ``lines`` (records in storage order) against ``checkpoints``."""
    report = VerifyReport()
    index = _index_checkpoints(checkpoints, key, report)
    seen: set[tuple[str, int]] = set()
    for position, raw in enumerate(lines, start=1):
        if not (raw.strip() if isinstance(raw, bytes | str) else raw):
            continue
        report.records += 1
        parsed = parse_line(raw)
        if isinstance(parsed, str):
            report.problems.append(Problem(position, None, None, parsed))
            continue
        writer, seq = str(parsed["writer"]), int(str(parsed["seq"]))
        problem = _check_record(position, parsed, report.heads)
        if problem is None:
            anchor = index.get((writer, seq))
            if anchor is not None:
                seen.add((writer, seq))
                if anchor[0] != parsed["hash"]:
                    problem = f"differs from the checkpoint signed at {anchor[1]}"
        if problem is not None:
            report.problems.append(Problem(position, writer, seq, problem))
        last = report.heads.get(writer)
        if last is None or seq > last.seq:
            # Resume from here so one break is reported once, not for every later record.
            report.heads[writer] = Head(writer, seq, str(parsed["hash"]))
        if len(report.problems) >= MAX_PROBLEMS:
            break
    for (writer, seq), (_, at) in sorted(index.items()):
        if (writer, seq) in seen:
            continue
        last = report.heads.get(writer, Head(writer))
        if seq > last.seq:
            report.problems.append(
                Problem(
                    report.records + 1,
                    writer,
                    last.seq + 1,
                    f"missing: the trail ends at seq {last.seq} but a checkpoint signed at {at} "
                    f"covers seq {seq} (tail cut off)",
                )
            )
    return report
