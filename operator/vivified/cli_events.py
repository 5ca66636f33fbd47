"""``vivified events list``: the installation's event-type registry (text or JSON)."""

from __future__ import annotations

import argparse
import json
from typing import Any, Protocol, TextIO


class _Streams(Protocol):
    out: TextIO
    err: TextIO


def add_events_parser(sub: Any) -> None:
    events = sub.add_parser("events", help="the event lane: list the registered event types")
    events_sub = events.add_subparsers(dest="events_command", required=True, metavar="COMMAND")
    lst = events_sub.add_parser(
        "list",
        help="print the event-type registry",
        description=(
            "Print the event types manifests may declare: packaged ones plus the file named "
            "by $VIVIFIED_EVENT_TYPES_FILE (or --file), with classification and schema."
        ),
    )
    lst.add_argument("--file", metavar="PATH", help="installation's extra event types (YAML)")
    lst.add_argument("-o", "--output", choices=("text", "json"), default="text")
    lst.set_defaults(func=cmd_events_list)


def cmd_events_list(args: argparse.Namespace, streams: _Streams) -> int:
    from vivified.event_types import EventTypeError, load_registry, registry_from_env  # noqa: PLC0415

    try:
        registry = load_registry(args.file) if args.file else registry_from_env()
    except EventTypeError as exc:
        streams.err.write(f"error: {exc}\n")
        return 2
    types = [registry.types[name] for name in registry.names()]
    if args.output == "json":
        streams.out.write(json.dumps([t.summary() for t in types], indent=2) + "\n")
        return 0
    width = max(len(t.name) for t in types)
    for t in types:
        required = t.schema.get("required", [])
        fields = ", ".join(str(x) for x in required) if isinstance(required, list) else ""
        origin = "" if t.packaged else "  (installation)"
        streams.out.write(
            f"{t.name:<{width}}  {t.classification:<12}  data: {fields or '-'}{origin}\n"
            f"{'':<{width}}  {t.description}\n"
        )
    return 0
