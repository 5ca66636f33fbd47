"""``loads_strict``: what plugins and the operator parse untrusted bodies with."""

from __future__ import annotations

import pytest

from vivified_sdk import StrictJSONError, loads_strict


def test_plain_json() -> None:
    assert loads_strict(b'{"a": [1, 2.5, "x", true, null]}') == {"a": [1, 2.5, "x", True, None]}
    assert loads_strict('"é"') == "é"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"a": NaN}', "NaN is not valid JSON"),
        (b"[Infinity]", "Infinity is not valid JSON"),
        (b"-Infinity", "-Infinity is not valid JSON"),
        (b'{"a": 1, "a": 2}', "duplicate key 'a'"),
        (b"\xff", "not UTF-8"),
        ("\udcff", "not valid Unicode"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"{", "not valid JSON"),
        (b"", "not valid JSON"),
    ],
)
def test_refusals(data: bytes | str, message: str) -> None:
    with pytest.raises(StrictJSONError, match=message):
        loads_strict(data)


def test_size_cap() -> None:
    assert loads_strict(b"[1]", max_bytes=3) == [1]
    with pytest.raises(StrictJSONError, match="larger than 3 bytes"):
        loads_strict(b"[12]", max_bytes=3)
    with pytest.raises(StrictJSONError, match="larger than"):
        loads_strict(b" " * (1024 * 1024 + 1))


def test_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        loads_strict('{"k": 1, "k": 1}')
    with pytest.raises(StrictJSONError, match="expected bytes or str"):
        loads_strict(1)  # type: ignore[arg-type]
