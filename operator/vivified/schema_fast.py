"""A compiled "is ``data`` valid" check for event schemas, in front of ``jsonschema``.

Every publish validates ``data``; ``jsonschema`` (the reference implementation, which stays the
authority and writes every refusal message) takes ~30 µs for a small object here, the
``jsonschema-rs`` validator ~1 µs (bench numbers in docs/decisions.md). The fast check is used
only where the two cannot disagree on a *pass*:

- the schema uses only keywords whose 2020-12 meaning has no engine-specific corner
  (:data:`KEYWORDS`; no ``$ref``, ``multipleOf``, ``unevaluated*`` ...);
- every ``pattern`` is :func:`portable` (ASCII classes, anchors, groups, quantifiers, escaped
  punctuation: Python's ``re`` and Rust's regex read it alike);
- ``format`` is checked by ``jsonschema``'s own format functions, handed to the compiled
  validator, so a format means exactly what it means to ``jsonschema``.

A schema outside that gets no fast check (``compile_check`` returns None). When the fast check
says "invalid", ``jsonschema`` decides and explains, so its answer is the one that counts;
tests/unit/test_schema_fast.py checks with Hypothesis that both agree.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator

__all__ = ["KEYWORDS", "Check", "compile_check", "portable"]

Check = Callable[[object], bool]
"""True: ``data`` is valid (``jsonschema`` would say so too)."""

_FORMATS = Draft202012Validator.FORMAT_CHECKER

#: Keywords taking a subschema, a list of them, or a mapping of them.
_ONE = ("additionalProperties", "items", "not", "if", "then", "else", "contains", "propertyNames")
_MANY = ("allOf", "anyOf", "oneOf", "prefixItems")
_MAP = ("properties", "dependentSchemas")
#: Keywords whose value is data, not a subschema (annotations included).
_LEAF = (
    "type",
    "enum",
    "const",
    "required",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minContains",
    "maxContains",
    "dependentRequired",
    "pattern",
    "format",
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$comment",
)
KEYWORDS = frozenset((*_ONE, *_MANY, *_MAP, *_LEAF))

_PORTABLE = re.compile(r"(?:[A-Za-z0-9\[\]\-^$()?*+{},|_:/@#=~<>%&;' ]|\\[.\-+*?()\[\]{}|^$/\\])*")


def portable(pattern: str) -> bool:
    """A regex both engines read alike: no ``.``, no ``\\d``/``\\w``/``\\s`` (Unicode-dependent
    classes), no ``(?`` groups (flags, lookaround), only escaped punctuation."""
    return "(?" not in pattern and _PORTABLE.fullmatch(pattern) is not None


def _formats(schema: object, found: set[str]) -> bool:
    """Walk the schema: False if any part is outside the fast check; collect format names."""
    if isinstance(schema, bool):
        return True
    if not isinstance(schema, Mapping) or not set(schema) <= KEYWORDS:
        return False
    for key, value in schema.items():
        if key in _ONE and not _formats(value, found):
            return False
        if key in _MANY and not (
            isinstance(value, list) and all(_formats(v, found) for v in value)
        ):
            return False
        if key in _MAP and not (
            isinstance(value, Mapping) and all(_formats(v, found) for v in value.values())
        ):
            return False
        if key == "pattern" and not (isinstance(value, str) and portable(value)):
            return False
        if key == "format" and isinstance(value, str):
            found.add(value)
    return True


def _format_check(name: str) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        return bool(_FORMATS.conforms(value, name))

    return check


def compile_check(schema: Mapping[str, Any]) -> Check | None:
    """The fast check for ``schema``, or None where only ``jsonschema`` may decide."""
    names: set[str] = set()
    if not _formats(schema, names):
        return None
    try:
        validator = jsonschema_rs.Draft202012Validator(
            dict(schema),
            validate_formats=True,
            formats={name: _format_check(name) for name in names},
        )
    except (ValueError, TypeError):  # a pattern the compiled engine refuses, ...
        return None
    is_valid = validator.is_valid

    def check(data: object) -> bool:
        try:
            return bool(is_valid(data))
        except (ValueError, TypeError, OverflowError):  # e.g. an int beyond 64 bits
            return False  # jsonschema decides

    return check
