"""The safe file reader behind `vivified validate` and `vivified render`."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from vivified.loader import (
    MAX_BYTES,
    MAX_DEPTH,
    STDIN_LABEL,
    Document,
    LoadError,
    load,
    parse_documents,
)


def _error(source: str, text: str) -> str:
    with pytest.raises(LoadError) as info:
        parse_documents(source, text)
    return info.value.message


def test_single_yaml_document_keeps_plain_source() -> None:
    assert parse_documents("a.yaml", "id: x\n") == [Document("a.yaml", {"id": "x"})]


def test_multi_document_sources_are_numbered_from_one_skipping_empty_documents() -> None:
    text = "---\na: 1\n---\n---\n# only a comment\n---\nb: 2\n---\n"
    docs = parse_documents("f.yaml", text)
    assert docs == [Document("f.yaml#1", {"a": 1}), Document("f.yaml#2", {"b": 2})]


def test_json_by_suffix_and_by_sniffing() -> None:
    assert parse_documents("m.json", '{"id": "x"}')[0].data == {"id": "x"}
    assert parse_documents("noext", '  {"id": "x"}')[0].data == {"id": "x"}
    # .yaml files are parsed as YAML even when they hold JSON (JSON is valid YAML)
    assert parse_documents("m.yaml", '{"id": "x"}')[0].data == {"id": "x"}


def test_invalid_json_names_line_and_column() -> None:
    message = _error("m.json", '{\n  "id": "x",\n  "name": \n}')
    assert message.startswith("invalid JSON at line 4, column 1")


def test_invalid_yaml_names_line_and_column() -> None:
    message = _error("m.yaml", "id: x\nsecurity: {a: 1\n")
    assert message.startswith("invalid YAML at line 3, column 1")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: &anchor [1]\nb: 2\n", "line 1, column 4: anchors (&name) are not allowed"),
        ("a: [1]\nb: *x\n", "aliases (*name) are not allowed"),
        ("<<: {a: 1}\nb: 2\n", "merge keys (<<) are not allowed"),
    ],
)
def test_yaml_anchors_aliases_and_merge_keys_are_rejected(text: str, expected: str) -> None:
    assert expected in _error("m.yaml", text)


def test_billion_laughs_is_rejected_before_expansion() -> None:
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    ]
    assert "anchors (&name) are not allowed" in _error("bomb.yaml", "\n".join(lines))


def test_duplicate_yaml_key_is_rejected_with_both_lines() -> None:
    text = "id: x\ntraits: [audit_required]\nname: n\ntraits: [admin]\n"
    assert _error("m.yaml", text) == (
        "invalid YAML at line 4, column 1: duplicate key 'traits' (first defined on line 2)"
    )


def test_duplicate_nested_yaml_key_is_rejected() -> None:
    assert "duplicate key 'a'" in _error("m.yaml", "spec:\n  x:\n    a: 1\n    a: 2\n")


def test_duplicate_json_key_is_rejected() -> None:
    assert _error("m.json", '{"traits": ["a"], "traits": ["admin"]}') == (
        "invalid JSON: duplicate key 'traits'"
    )


def test_python_tags_are_not_constructed() -> None:
    message = _error("m.yaml", "a: !!python/object/apply:os.system ['true']\n")
    assert "could not determine a constructor" in message


def test_timestamps_stay_strings_like_kubernetes() -> None:
    assert parse_documents("m.yaml", "d: 2024-01-01\n")[0].data == {"d": "2024-01-01"}


@pytest.mark.parametrize("source", ["deep.yaml", "deep.json"])
def test_deep_nesting_is_refused(source: str) -> None:
    depth = MAX_DEPTH + 5
    message = _error(source, "[" * depth + "]" * depth)
    assert "nest" in message


def test_very_deep_json_does_not_overflow_the_stack() -> None:
    assert "nested too deeply" in _error("deep.json", "[" * 100_000 + "]" * 100_000)


@pytest.mark.parametrize("text", ["", "   \n", "# just a comment\n", "---\n---\n"])
def test_empty_inputs_are_unusable(text: str) -> None:
    with pytest.raises(LoadError):
        parse_documents("e.yaml", text)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="no such file"):
        load(str(tmp_path / "nope.yaml"))


def test_directory_is_unusable(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="is a directory"):
        load(str(tmp_path))


def test_oversized_file_is_refused_without_parsing(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"a: " + b"x" * MAX_BYTES + b"\n")
    with pytest.raises(LoadError, match="larger than 1024 KiB"):
        load(str(big))


def test_binary_file_is_unusable(tmp_path: Path) -> None:
    blob = tmp_path / "blob.yaml"
    blob.write_bytes(b"id: \xff\xfe\x00")
    with pytest.raises(LoadError, match="not UTF-8"):
        load(str(blob))


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    file = tmp_path / "bom.json"
    file.write_bytes(b'\xef\xbb\xbf{"id": "x"}')
    assert load(str(file))[0].data == {"id": "x"}


def test_stdin_is_labelled() -> None:
    docs = load("-", io.BytesIO(b"id: x\n"))
    assert docs == [Document(STDIN_LABEL, {"id": "x"})]
