"""The compiled check agrees with ``jsonschema`` (the authority) on every packaged event schema
and on installation-style schemas, for data Hypothesis builds near each schema's edges."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from vivified.event_types import packaged_registry
from vivified.schema_fast import compile_check, portable

FORMATS = Draft202012Validator.FORMAT_CHECKER

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["", "USD", "usd", "US", "1.25", "1.12345", "0", "-1", "a@b", "x\n"]),
    st.sampled_from(["2026-12-02T10:00:00Z", "2026-12-02", "not a date", "u1@example.org"]),
    st.sampled_from(["succeeded", "failed", "ok", "a" * 64, "a" * 65, "a" * 129, "é" * 3]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)


def near(schema: dict[str, Any]) -> st.SearchStrategy[object]:
    """Objects with the schema's own property names (some missing, some extra)."""
    names = sorted(schema.get("properties", {})) or ["a"]
    keys = st.sampled_from([*names, "extra"])
    return st.one_of(json_values, st.dictionaries(keys, json_values, max_size=len(names) + 1))


def agree(schema: dict[str, Any], data: object) -> None:
    check = compile_check(schema)
    assert check is not None
    expected = Draft202012Validator(schema, format_checker=FORMATS).is_valid(data)
    assert check(data) == expected, (schema, data)


PACKAGED = sorted(packaged_registry().types.items())


@pytest.mark.parametrize(("name", "event_type"), PACKAGED, ids=[n for n, _ in PACKAGED])
def test_every_packaged_schema_has_a_fast_check(name: str, event_type: Any) -> None:
    assert event_type._fast is not None, name


@pytest.mark.parametrize(("name", "event_type"), PACKAGED, ids=[n for n, _ in PACKAGED])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_fast_check_agrees_with_jsonschema_on_packaged_schemas(
    name: str, event_type: Any, data: st.DataObject
) -> None:
    schema = dict(event_type.schema)
    agree(schema, data.draw(near(schema)))


INSTALLATION_STYLE = [
    {"type": "object", "additionalProperties": False, "properties": {"n": {"type": "integer"}}},
    {"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "number"}},
    {"anyOf": [{"type": "string", "maxLength": 2}, {"type": "integer", "maximum": 3}]},
    {"oneOf": [{"type": "number"}, {"type": "integer"}]},
    {"not": {"const": 0}, "enum": [0, 1, 1.0, True, "1", None, [1], {"a": 1}]},
    {"type": "object", "dependentRequired": {"a": ["b"]}, "minProperties": 1},
    {"if": {"type": "string"}, "then": {"minLength": 2}, "else": {"type": "null"}},
    {"type": "array", "contains": {"type": "boolean"}, "minContains": 2},
    {"type": "object", "propertyNames": {"maxLength": 2}},
    {"type": "string", "format": "email"},
    {"type": "string", "format": "date"},
    {"exclusiveMinimum": 0, "exclusiveMaximum": 10},
]


@pytest.mark.parametrize("schema", INSTALLATION_STYLE, ids=range(len(INSTALLATION_STYLE)))
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_the_fast_check_agrees_on_installation_style_schemas(
    schema: dict[str, Any], data: st.DataObject
) -> None:
    agree(schema, data.draw(near(schema)))


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "#/$defs/x", "$defs": {"x": {"type": "string"}}},
        {"type": "number", "multipleOf": 0.1},
        {"type": "object", "unevaluatedProperties": False},
        {"type": "string", "pattern": "^\\d+$"},  # \d: Unicode digits to Python
        {"type": "string", "pattern": "^a.b$"},
        {"type": "string", "pattern": "(?i)abc"},
        {"type": "object", "patternProperties": {"^a": {}}},
        {"properties": {"a": {"pattern": "\\w"}}},
    ],
)
def test_schemas_outside_the_safe_part_get_no_fast_check(schema: dict[str, Any]) -> None:
    assert compile_check(schema) is None


@pytest.mark.parametrize(
    ("pattern", "ok"),
    [("^[A-Z]{3}$", True), ("^[0-9]+(\\.[0-9]{1,4})?$", True), ("a.b", False), ("\\s", False)],
)
def test_portable_patterns(pattern: str, ok: bool) -> None:
    assert portable(pattern) is ok


def test_refusals_still_come_from_jsonschema_with_every_message() -> None:
    payment = packaged_registry().get("PaymentReceived")
    assert payment is not None
    errors = payment.data_errors({"amount": "1.123456", "currency": "usd"})
    assert len(errors) >= 2
    assert any("amount" in e for e in errors)
    assert any("currency" in e for e in errors)
