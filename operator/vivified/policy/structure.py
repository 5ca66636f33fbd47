"""Structural validation: run pydantic, turn its errors into actionable ``Violation``s.

Field paths are dotted with list indices in brackets: ``security.data_classification[1]``,
``endpoints.user_info``. Unknown fields get a "did you mean" hint computed with difflib from
the fields allowed at that level, or from the section where that field actually belongs.
"""

from __future__ import annotations

import difflib
import functools
import re
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from vivified.violations import Violation

_SIMPLE_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ROOT_NAMES = {"PluginManifest": "the manifest", "PluginSpec": "'spec'"}


# --------------------------------------------------------------------------------------------
# Small helpers shared with the semantic rules
# --------------------------------------------------------------------------------------------


def did_you_mean(word: object, candidates: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest candidate, or ``""`` when nothing is close."""
    if not isinstance(word, str) or len(word) > 100:
        return ""
    pool = list(candidates)
    lowered = {c.lower(): c for c in pool}
    low = word.lower()
    if low in lowered and lowered[low] != word:
        return f"; did you mean {lowered[low]!r}?"
    # 'interval' -> 'interval_seconds', 'memory' -> 'memory_limit'
    prefixed = [c for c in pool if len(low) >= 4 and c.lower().startswith(low)]
    if len(prefixed) == 1:
        return f"; did you mean {prefixed[0]!r}?"
    matches = difflib.get_close_matches(low, list(lowered), n=1, cutoff=0.75)
    return f"; did you mean {lowered[matches[0]]!r}?" if matches else ""


def show(value: object, limit: int = 60) -> str:
    """A short, safe rendering of a user-supplied value for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and abs(value) >= 10**30:
        return "a very large number"  # str() of huge ints raises (int_max_str_digits)
    if isinstance(value, int | float):
        text = repr(value)
        return text if len(text) <= limit else text[: limit - 3] + "..."
    if isinstance(value, str):
        text = value if len(value) <= limit else value[: limit - 3] + "..."
        return repr(text)
    return f"a {type_name(value)}"


def type_name(value: object) -> str:
    """JSON-ish name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "list"
    return type(value).__name__


def key_text(key: object) -> str:
    """A mapping key as it appears in a field path (odd keys are quoted and shortened)."""
    if isinstance(key, str) and _SIMPLE_KEY.match(key):
        return key
    if isinstance(key, str):
        return show(key, 40)
    return f"<{type_name(key)} key {show(key, 40)}>"


def join_path(*parts: str | int) -> str:
    """Join path parts: strings with dots, ints as ``[i]``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "":
            continue
        elif out:
            out += f".{part}"
        else:
            out = part
    return out


def loc_to_path(loc: Sequence[str | int]) -> str:
    parts: list[str | int] = []
    for item in loc:
        if item == "[key]":
            continue
        if isinstance(item, int):
            parts.append(item)
        else:
            parts.append(key_text(item))
    return join_path(*parts)


# --------------------------------------------------------------------------------------------
# Model introspection (which model describes the object at a given location)
# --------------------------------------------------------------------------------------------


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        for arg in get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _item_type(annotation: Any) -> Any:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        for arg in get_args(annotation):
            if get_origin(arg) is list:
                return get_args(arg)[0]
    if origin is list:
        return get_args(annotation)[0]
    return None


def model_at(root: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class describing the object at ``loc`` below ``root`` (None if not a model)."""
    current: Any = root
    for item in loc:
        model = _model_in(current)
        if isinstance(item, int):
            current = _item_type(current)
            continue
        if model is None or item not in model.model_fields:
            return None
        current = model.model_fields[item].annotation
    return _model_in(current)


@functools.cache
def _field_homes(root: type[BaseModel]) -> dict[str, list[str]]:
    """field name -> dotted paths of every nested model section that defines it."""
    homes: dict[str, list[str]] = {}

    def walk(model: type[BaseModel], prefix: str, depth: int) -> None:
        for name, info in model.model_fields.items():
            path = join_path(prefix, name)
            homes.setdefault(name, []).append(path)
            sub = _model_in(info.annotation)
            if sub is not None and depth < 3:
                walk(sub, path, depth + 1)

    walk(root, "", 0)
    return homes


def unknown_field_message(
    root: type[BaseModel], parent_loc: Sequence[str | int], key: object
) -> str:
    """Message for an unknown field ``key`` found in the object at ``parent_loc``."""
    model = model_at(root, parent_loc)
    root_name = _ROOT_NAMES.get(root.__name__, "the top level")
    sections = [item for item in parent_loc if isinstance(item, str)]
    where = f"in {key_text(sections[-1])!r}" if sections else f"in {root_name}"
    base = f"unknown field {show(key, 60)} {where}"
    if model is None:
        return base
    allowed = list(model.model_fields)
    hint = did_you_mean(key, allowed)
    if not hint and isinstance(key, str):
        homes = _field_homes(root).get(key, [])
        parent = loc_to_path(parent_loc)
        elsewhere = [h for h in homes if h.rsplit(".", 1)[0] != parent or "." not in h]
        elsewhere = [h for h in elsewhere if h != join_path(parent, key)]
        if elsewhere:
            hint = f"; it belongs in another section: did you mean {elsewhere[0]!r}?"
    if hint:
        return f"{base}{hint}"
    return f"{base} (allowed fields: {', '.join(allowed)})"


# --------------------------------------------------------------------------------------------
# pydantic error -> Violation
# --------------------------------------------------------------------------------------------


def _got(value: object) -> str:
    if isinstance(value, str):
        return f"the string {show(value)}"
    if isinstance(value, bool):
        return f"the boolean {show(value)}"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return show(value)
    return f"a {type_name(value)}"


def _message(root: type[BaseModel], err: Mapping[str, Any]) -> str:
    kind = str(err.get("type", ""))
    loc: tuple[str | int, ...] = tuple(err.get("loc", ()))
    value = err.get("input")
    ctx: Mapping[str, Any] = err.get("ctx") or {}
    last = loc[-1] if loc else ""
    if kind == "missing":
        return f"required field {key_text(last)!r} is missing"
    if kind == "invalid_key":
        return f"field names must be strings; found the non-string key {show(last, 40)}"
    if kind == "extra_forbidden":
        return unknown_field_message(root, loc[:-1], last)
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be an object (a mapping of fields to values), not {_got(value)}"
    if kind == "list_type":
        return f"must be a list, not {_got(value)}"
    if kind == "string_type":
        if "[key]" in loc:
            return f"keys must be strings, not {_got(value)}"
        return f"must be a string, not {_got(value)}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        if isinstance(value, str):
            return f"must be a whole number, not {_got(value)} (remove the quotes)"
        return f"must be a whole number, not {_got(value)}"
    if kind in ("float_type", "float_parsing"):
        if isinstance(value, str):
            return f"must be a number, not {_got(value)} (remove the quotes)"
        return f"must be a number, not {_got(value)}"
    if kind == "finite_number":
        return "must be a finite number"
    if kind in ("bool_type", "bool_parsing"):
        return f"must be true or false, not {_got(value)}"
    if kind == "literal_error":
        expected = str(ctx.get("expected", ""))
        options = re.findall(r"'([^']*)'", expected)
        hint = did_you_mean(value, options)
        return f"must be one of {expected}, not {_got(value)}{hint}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        n = len(value) if isinstance(value, str) else "?"
        return f"is too long ({n} characters; the maximum is {ctx.get('max_length')})"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} item(s)"
    if kind == "too_long":
        return (
            f"has too many items ({ctx.get('actual_length')}; "
            f"the maximum is {ctx.get('max_length')})"
        )
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}, not {show(value)}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}, not {show(value)}"
    if kind == "string_pattern_mismatch":
        return f"{show(value)} has an invalid format (expected pattern {ctx.get('pattern')})"
    return str(err.get("msg", "is invalid"))


def structural_violations(
    model: type[BaseModel], raw: object, *, max_errors: int = 10_000
) -> tuple[BaseModel | None, list[Violation]]:
    """Validate ``raw`` with ``model``; return (instance or None, violations)."""
    try:
        return model.model_validate(raw), []
    except ValidationError as exc:
        out: list[Violation] = []
        for err in exc.errors(include_url=False)[:max_errors]:
            loc = tuple(err.get("loc", ()))
            path_loc = loc[:-1] if err.get("type") == "invalid_key" else loc
            out.append(Violation(loc_to_path(path_loc), _message(model, err)))
        return None, out
