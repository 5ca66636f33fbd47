"""Strict JSON for untrusted bodies: a size cap, UTF-8 only, no NaN/Infinity, no duplicate keys.

Python's ``json`` accepts ``NaN`` and silently keeps the last of two equal keys; two parsers
reading the same body differently is how smuggling bugs start, so both are refused here.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["DEFAULT_MAX_JSON_BYTES", "StrictJSONError", "loads_strict"]

DEFAULT_MAX_JSON_BYTES = 1024 * 1024


class StrictJSONError(ValueError):
    """The document is not strict JSON; the message never quotes more than 40 characters."""


def _reject_constant(name: str) -> Any:
    raise StrictJSONError(f"{name} is not valid JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise StrictJSONError(f"duplicate key {key[:40]!r}")
        result[key] = value
    return result


def loads_strict(data: bytes | str, *, max_bytes: int = DEFAULT_MAX_JSON_BYTES) -> object:
    """Parse ``data``; ``StrictJSONError`` (a ``ValueError``) on anything not strict JSON."""
    if isinstance(data, str):
        try:
            data = data.encode("utf-8")
        except UnicodeEncodeError:
            raise StrictJSONError("document is not valid Unicode") from None
    if not isinstance(data, bytes | bytearray):
        raise StrictJSONError(f"expected bytes or str, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise StrictJSONError(f"document is larger than {max_bytes} bytes")
    try:
        text = bytes(data).decode("utf-8")
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except StrictJSONError:
        raise
    except UnicodeDecodeError:
        raise StrictJSONError("document is not UTF-8") from None
    except RecursionError:
        raise StrictJSONError("document is nested too deeply") from None
    except json.JSONDecodeError as error:
        raise StrictJSONError(f"not valid JSON: {error.msg} at position {error.pos}") from None
