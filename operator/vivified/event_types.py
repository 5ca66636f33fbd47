"""The event-type registry: which event types exist, how sensitive each is, its `data` schema.

Configuration, not code: the packaged defaults (``vivified/data/event_types.yaml``) plus an
installation's own types (the chart's ``events.types`` value, mounted as a YAML file named by
``VIVIFIED_EVENT_TYPES_FILE``). An installation may add types but not redefine a packaged one,
so a type's classification cannot be quietly downgraded (e.g. ``UserCreated`` to public).

Schemas are JSON Schema 2020-12, checked when the registry loads (a broken schema is a
configuration error, not a runtime refusal) and evaluated with the ``jsonschema`` library
(behind a compiled check that answers the common "valid" at once: ``vivified.schema_fast``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from vivified import manifest as m
from vivified.schema_fast import Check, compile_check

ENV_EVENT_TYPES_FILE = "VIVIFIED_EVENT_TYPES_FILE"
_TYPE_RE = re.compile(m.EVENT_TYPE_PATTERN)
_FORMATS = Draft202012Validator.FORMAT_CHECKER


class EventTypeError(ValueError):
    """The registry configuration is unusable; the message lists every problem."""


@dataclass(frozen=True)
class EventType:
    name: str
    classification: str
    schema: Mapping[str, Any]
    description: str = ""
    packaged: bool = True
    _validator: Draft202012Validator = field(repr=False, compare=False, default=None)  # type: ignore[assignment]
    #: The compiled check in front of ``_validator`` (vivified.schema_fast), None = none.
    _fast: Check | None = field(repr=False, compare=False, default=None)

    def data_errors(self, data: object, limit: int = 5) -> list[str]:
        """Why ``data`` does not match the schema (``path: message``), empty when it does."""
        fast = self._fast
        if fast(data) if fast is not None else self._validator.is_valid(data):
            return []  # the common case, without collecting errors
        out: list[str] = []
        for err in sorted(self._validator.iter_errors(data), key=lambda e: list(e.path)):
            where = "data" + "".join(
                f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in err.path
            )
            out.append(f"{where}: {err.message[:200]}")
            if len(out) >= limit:
                break
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "type": self.name,
            "classification": self.classification,
            "description": self.description,
            "origin": "packaged" if self.packaged else "installation",
            "schema": dict(self.schema),
        }


@dataclass(frozen=True)
class EventTypeRegistry:
    types: Mapping[str, EventType]

    def get(self, name: str) -> EventType | None:
        return self.types.get(name)

    def names(self) -> list[str]:
        return sorted(self.types)

    def extended(self, raw: object, source: str) -> EventTypeRegistry:
        """This registry plus an installation's types; raises EventTypeError on any problem."""
        extra = parse_types(raw, source, packaged=False)
        clash = sorted(set(extra) & set(self.types))
        if clash:
            raise EventTypeError(
                f"{source}: {', '.join(clash)} already defined by Vivified's packaged registry; "
                "installations may add event types, not redefine them (use a new name)"
            )
        return EventTypeRegistry({**self.types, **extra})


def parse_types(raw: object, source: str, *, packaged: bool) -> dict[str, EventType]:
    """Parse ``{Name: {classification, schema, description}}``; every problem at once."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise EventTypeError(f"{source}: must be a mapping of event type name to definition")
    problems: list[str] = []
    out: dict[str, EventType] = {}
    for name, spec in raw.items():
        where = f"{source}: {name}"
        if (
            not isinstance(name, str)
            or len(name) > m.EVENT_TYPE_MAX_LENGTH
            or not _TYPE_RE.match(name)
        ):
            problems.append(f"{where}: name must be like 'UserCreated' or 'acme.InvoicePaid'")
            continue
        if not isinstance(spec, Mapping):
            problems.append(f"{where}: must be a mapping with classification and schema")
            continue
        unknown = sorted(set(spec) - {"classification", "schema", "description"})
        if unknown:
            problems.append(f"{where}: unknown keys {unknown}")
        cls = spec.get("classification")
        if cls not in m.DATA_CLASSIFICATIONS:
            problems.append(
                f"{where}: classification must be one of {', '.join(m.DATA_CLASSIFICATIONS)}"
            )
        schema = spec.get("schema")
        if not isinstance(schema, Mapping):
            problems.append(f"{where}: schema must be a JSON Schema object")
            continue
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            problems.append(f"{where}: schema is not valid JSON Schema 2020-12: {exc.message}")
            continue
        description = spec.get("description", "")
        out[name] = EventType(
            name=name,
            classification=str(cls),
            schema=schema,
            description=description if isinstance(description, str) else "",
            packaged=packaged,
            _validator=Draft202012Validator(schema, format_checker=_FORMATS),
            _fast=compile_check(schema),
        )
    if problems:
        raise EventTypeError("; ".join(problems))
    return out


@lru_cache(maxsize=1)
def packaged_registry() -> EventTypeRegistry:
    text = resources.files("vivified").joinpath("data/event_types.yaml").read_text("utf-8")
    return EventTypeRegistry(parse_types(yaml.safe_load(text), "event_types.yaml", packaged=True))


def load_registry(extra_file: str | Path | None = None) -> EventTypeRegistry:
    """Packaged types plus ``extra_file`` (YAML), if given."""
    base = packaged_registry()
    if extra_file is None:
        return base
    path = Path(extra_file)
    try:
        raw = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise EventTypeError(f"{path}: cannot read event types ({exc})") from None
    return base.extended(raw, str(path))


def registry_from_env(environ: Mapping[str, str] | None = None) -> EventTypeRegistry:
    """The installation's registry: packaged + ``$VIVIFIED_EVENT_TYPES_FILE`` when set."""
    env = os.environ if environ is None else environ
    return load_registry(env.get(ENV_EVENT_TYPES_FILE) or None)
