"""Input rules for user ids and profile attributes. Every byte here came from a caller.

A profile is a flat JSON object: at most ``MAX_ATTRIBUTES`` keys named like identifiers,
values that are strings (bounded, no control characters other than tab and newline),
booleans, integers within the exactly representable range, or finite floats. No nulls,
no nesting, no duplicate keys, no NaN/Infinity.
"""

from __future__ import annotations

import math
import re

from vivified_sdk import StrictJSONError, loads_strict

__all__ = [
    "MAX_ATTRIBUTES",
    "MAX_BODY_BYTES",
    "MAX_STRING_LENGTH",
    "InvalidInput",
    "parse_attributes",
    "validate_user_id",
]

MAX_BODY_BYTES = 16 * 1024
MAX_ATTRIBUTES = 64
MAX_STRING_LENGTH = 1024
MAX_INT = 2**53

USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
ATTRIBUTE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

Attribute = str | int | float | bool


class InvalidInput(ValueError):  # noqa: N818 - reads better at the call sites
    """The request is well-formed HTTP but its content breaks a rule (→ 422)."""


class MalformedJson(ValueError):  # noqa: N818
    """The body is not strict JSON (→ 400)."""


def validate_user_id(user_id: str) -> str:
    """Letters, digits and ``. _ @ + -``, starting with a letter or digit, 1-128 chars."""
    if not USER_ID.match(user_id):
        raise InvalidInput(
            "user id must be 1-128 characters: letters, digits and . _ @ + -, "
            "starting with a letter or digit"
        )
    return user_id


def _check_value(name: str, value: object) -> Attribute:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_INT:
            raise InvalidInput(f"attribute {name!r}: integer out of range (|n| <= 2^53)")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(f"attribute {name!r}: number must be finite")
        return value
    if isinstance(value, str):
        if len(value) > MAX_STRING_LENGTH:
            raise InvalidInput(
                f"attribute {name!r}: string longer than {MAX_STRING_LENGTH} characters"
            )
        if any(not (c.isprintable() or c in "\t\n") for c in value):
            raise InvalidInput(f"attribute {name!r}: string contains control characters")
        return value
    raise InvalidInput(
        f"attribute {name!r}: value must be a string, number or boolean (not "
        f"{'null' if value is None else type(value).__name__})"
    )


def parse_attributes(body: bytes) -> dict[str, Attribute]:
    """Strictly parse and validate a PUT body; raises ``MalformedJson``/``InvalidInput``."""
    if len(body) > MAX_BODY_BYTES:
        raise InvalidInput(f"body larger than {MAX_BODY_BYTES} bytes")
    try:
        document = loads_strict(body, max_bytes=MAX_BODY_BYTES)  # the SDK's strict JSON
    except StrictJSONError as error:
        raise MalformedJson(str(error)) from None
    if not isinstance(document, dict):
        raise InvalidInput("body must be a JSON object of attribute names to values")
    if len(document) > MAX_ATTRIBUTES:
        raise InvalidInput(f"at most {MAX_ATTRIBUTES} attributes")
    clean: dict[str, Attribute] = {}
    for name, value in document.items():
        if not ATTRIBUTE_NAME.match(name):
            raise InvalidInput(
                f"attribute name {name[:64]!r} must be 1-64 characters: lowercase letters, "
                "digits and '_', starting with a letter"
            )
        clean[name] = _check_value(name, value)
    return clean
