"""``vivified audit verify|query|export|keygen``: read a trail from a file or from JetStream.

Kept out of ``vivified.cli`` so the top-level command stays light: nats-py is imported only
when a stream is read. Exit codes as everywhere: 0 ok (intact), 1 tampered, 2 unusable input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Protocol

from vivified.audit.record import format_time

EXIT_OK, EXIT_TAMPERED, EXIT_UNUSABLE = 0, 1, 2
_RELATIVE = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class _Streams(Protocol):
    out: IO[str]
    err: IO[str]


class UnusableError(Exception):
    """The input cannot be read as a trail at all (exit 2)."""


@dataclass(frozen=True)
class Trail:
    records: list[bytes]
    checkpoints: list[bytes]
    source: str


def parse_time(text: str, now: datetime | None = None) -> str:
    """``--since``/``--until``: RFC 3339, a date, or an age such as ``90m``, ``24h``, ``7d``."""
    now = now or datetime.now(UTC)
    match = _RELATIVE.fullmatch(text.strip())
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return format_time(now - delta)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a time or age: {text!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return format_time(moment)


def _file_lines(path: Path) -> list[bytes]:
    from vivified.dataplane.audit.file import iter_lines  # noqa: PLC0415

    return list(iter_lines(path))


def load_trail(args: argparse.Namespace) -> Trail:
    """Records and checkpoints from ``--file`` (and its ``.checkpoints``) or ``--nats``."""
    if args.file is not None:
        path = Path(args.file)
        if not path.is_file():
            raise UnusableError(f"{path}: no such file")
        cp_path = Path(args.checkpoints) if args.checkpoints else None
        if cp_path is None:
            from vivified.dataplane.audit.file import checkpoints_path  # noqa: PLC0415

            cp_path = checkpoints_path(path)
        elif not cp_path.is_file():
            raise UnusableError(f"{cp_path}: no such file")
        try:
            checkpoints = _file_lines(cp_path) if cp_path.is_file() else []
            return Trail(_file_lines(path), checkpoints, str(path))
        except OSError as exc:
            raise UnusableError(str(exc)) from exc
    return asyncio.run(_load_stream(args))


async def _load_stream(args: argparse.Namespace) -> Trail:
    import nats  # noqa: PLC0415
    import nats.errors  # noqa: PLC0415
    import nats.js.errors  # noqa: PLC0415

    from vivified.dataplane.audit.jetstream import read_stream  # noqa: PLC0415

    async def quiet(error: Exception) -> None:
        return None

    try:
        nc = await nats.connect(
            args.nats,
            connect_timeout=3,
            allow_reconnect=False,
            max_reconnect_attempts=1,
            reconnect_time_wait=0.2,
            error_cb=quiet,
        )
    except (OSError, nats.errors.Error) as exc:
        raise UnusableError(f"cannot connect to {args.nats}: {exc!r}") from exc
    try:
        js = nc.jetstream(timeout=10)
        try:
            records = await read_stream(js, args.stream)
        except nats.js.errors.NotFoundError as exc:
            raise UnusableError(f"stream {args.stream} not found at {args.nats}") from exc
        try:
            checkpoints = await read_stream(js, args.checkpoint_stream)
        except nats.js.errors.NotFoundError:
            checkpoints = []
        return Trail(records, checkpoints, f"{args.nats} stream {args.stream}")
    finally:
        await nc.close()


def _records(trail: Trail) -> Iterator[dict[str, object]]:
    from vivified.audit.verify import parse_line  # noqa: PLC0415

    for line in trail.records:
        parsed = parse_line(line)
        if isinstance(parsed, dict):
            yield parsed


def cmd_verify(args: argparse.Namespace, streams: _Streams) -> int:
    from vivified.audit.checkpoint import load_public_key  # noqa: PLC0415
    from vivified.audit.verify import verify_trail  # noqa: PLC0415

    key = None
    if args.public_key:
        try:
            key = load_public_key(Path(args.public_key).read_bytes())
        except (OSError, ValueError) as exc:
            print(f"vivified: error: public key: {exc}", file=streams.err)
            return EXIT_UNUSABLE
    try:
        trail = load_trail(args)
    except UnusableError as exc:
        print(f"vivified: error: {exc}", file=streams.err)
        return EXIT_UNUSABLE
    report = verify_trail(trail.records, trail.checkpoints, key)
    if args.output == "json":
        payload: dict[str, Any] = {
            "source": trail.source,
            "intact": report.intact,
            "records": report.records,
            "checkpoints": report.checkpoints,
            "writers": {w: {"seq": h.seq, "head": h.hash} for w, h in report.heads.items()},
            "problems": [vars(p) for p in report.problems],
            "warnings": report.warnings,
        }
        json.dump(payload, streams.out, indent=2)
        streams.out.write("\n")
    else:
        for warning in report.warnings:
            print(f"warning: {warning}", file=streams.err)
        if report.intact:
            chains = ", ".join(f"{w} to seq {h.seq}" for w, h in sorted(report.heads.items()))
            print(
                f"intact: {report.records} records, {report.checkpoints} checkpoints"
                + (f" ({chains})" if chains else ""),
                file=streams.out,
            )
        else:
            print(f"TAMPERED: first broken {report.problems[0]}", file=streams.out)
            for problem in report.problems[1:]:
                print(f"  also {problem}", file=streams.out)
    return EXIT_OK if report.intact else EXIT_TAMPERED


def _text_line(record: dict[str, object]) -> str:
    agent = record.get("agent")
    who = agent.get("id") if isinstance(agent, dict) else "?"
    entity = record.get("entity")
    what = " ".join(f"{k}={v}" for k, v in entity.items()) if isinstance(entity, dict) else ""
    reason = f" ({record['reason']})" if record.get("reason") else ""
    return (
        f"{record.get('time')} {record.get('writer')}#{record.get('seq')} "
        f"{record.get('action')} {record.get('outcome')}{reason} by {who}: {what}"
    )


def cmd_query(args: argparse.Namespace, streams: _Streams) -> int:
    from vivified.audit.fhir import to_audit_event  # noqa: PLC0415
    from vivified.audit.query import Query, select  # noqa: PLC0415

    try:
        trail = load_trail(args)
    except UnusableError as exc:
        print(f"vivified: error: {exc}", file=streams.err)
        return EXIT_UNUSABLE
    query = Query(
        plugin=args.plugin,
        since=args.since,
        until=args.until,
        actions=tuple(args.action or ()),
        outcome=args.outcome,
    )
    found = list(select(_records(trail), query))
    if args.output == "json":
        json.dump(found, streams.out, indent=2)
        streams.out.write("\n")
    elif args.output == "fhir":
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(found),
            "entry": [{"resource": to_audit_event(r)} for r in found],
        }
        json.dump(bundle, streams.out, indent=2)
        streams.out.write("\n")
    else:
        for record in found:
            print(_text_line(dict(record)), file=streams.out)
    return EXIT_OK


def cmd_export(args: argparse.Namespace, streams: _Streams) -> int:
    from vivified.audit.fhir import to_audit_event  # noqa: PLC0415

    try:
        trail = load_trail(args)
    except UnusableError as exc:
        print(f"vivified: error: {exc}", file=streams.err)
        return EXIT_UNUSABLE
    target = Path(args.to)
    target.parent.mkdir(parents=True, exist_ok=True)
    if args.format == "fhir":
        with target.open("w") as out:  # FHIR bulk data: NDJSON, one AuditEvent a line
            for record in _records(trail):
                out.write(json.dumps(to_audit_event(record), separators=(",", ":")) + "\n")
    else:
        target.write_bytes(b"".join(line + b"\n" for line in trail.records))
        target.with_name(target.name + ".checkpoints").write_bytes(
            b"".join(line + b"\n" for line in trail.checkpoints)
        )
    print(
        f"exported {len(trail.records)} records from {trail.source} to {target}", file=streams.out
    )
    return EXIT_OK


def cmd_keygen(args: argparse.Namespace, streams: _Streams) -> int:
    from vivified.audit.checkpoint import Signer  # noqa: PLC0415

    signer = Signer.generate()
    target = Path(args.out)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        print(f"vivified: error: {exc}", file=streams.err)
        return EXIT_UNUSABLE
    with os.fdopen(fd, "wb") as handle:
        handle.write(signer.private_pem())
    streams.out.write(signer.public_pem().decode())
    return EXIT_OK


def _source(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--file", metavar="PATH", help="a trail file (JSON Lines) or an export")
    group.add_argument(
        "--nats",
        metavar="URL",
        nargs="?",
        const=os.environ.get("VIVIFIED_AUDIT_NATS_URL", "nats://127.0.0.1:4222"),
        help="read the JetStream trail (default $VIVIFIED_AUDIT_NATS_URL)",
    )
    parser.add_argument(
        "--checkpoints", metavar="PATH", help="checkpoints file (default: FILE.checkpoints)"
    )
    parser.add_argument("--stream", default="VIVIFIED_AUDIT", help="records stream name")
    parser.add_argument(
        "--checkpoint-stream", default="VIVIFIED_AUDIT_CHECKPOINTS", help="checkpoints stream"
    )


def add_parser(sub: Any) -> None:
    """Register ``vivified audit ...`` on the top-level subparsers."""
    audit = sub.add_parser("audit", help="verify, query and export the audit trail")
    commands = audit.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")

    verify = commands.add_parser(
        "verify",
        help="check the hash chains and signed checkpoints",
        description="Exit 0 intact, 1 tampered (the first broken record is named), 2 unusable.",
    )
    _source(verify)
    verify.add_argument("--public-key", metavar="PEM", help="the checkpoint key (Ed25519)")
    verify.add_argument("-o", "--output", choices=("text", "json"), default="text")
    verify.set_defaults(func=cmd_verify)

    query = commands.add_parser("query", help="select records")
    _source(query)
    query.add_argument("--plugin", metavar="ID", help="records by or about this plugin")
    query.add_argument("--since", type=parse_time, help="RFC 3339 time or an age (24h, 7d)")
    query.add_argument("--until", type=parse_time, help="RFC 3339 time or an age")
    query.add_argument(
        "--action", action="append", metavar="ACTION", help="e.g. invoke, lifecycle (repeatable)"
    )
    query.add_argument("--outcome", choices=("allowed", "refused", "error"))
    query.add_argument("-o", "--output", choices=("text", "json", "fhir"), default="text")
    query.set_defaults(func=cmd_query)

    export = commands.add_parser("export", help="write the trail to a file (JSONL or FHIR NDJSON)")
    _source(export)
    export.add_argument("--to", required=True, metavar="PATH")
    export.add_argument("--format", choices=("jsonl", "fhir"), default="jsonl")
    export.set_defaults(func=cmd_export)

    keygen = commands.add_parser("keygen", help="create an Ed25519 checkpoint key")
    keygen.add_argument("--out", required=True, metavar="PATH", help="private key (mode 0600)")
    keygen.set_defaults(func=cmd_keygen)
