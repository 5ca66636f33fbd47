"""Read manifest and VivifiedPlugin files safely, for the CLI.

Files come from plugin authors and CI pipelines, so the reader is defensive: a size cap, a
YAML loader that refuses anchors/aliases (no "billion laughs"), merge keys and duplicate keys
(a second ``traits:`` must not silently replace the first), a nesting cap, and every failure
turned into one :class:`LoadError` line that names the file and, where known, line and column.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml
from yaml.constructor import ConstructorError
from yaml.error import Mark, MarkedYAMLError, YAMLError
from yaml.events import AliasEvent, CollectionStartEvent, ScalarEvent
from yaml.nodes import MappingNode, Node

#: Largest input accepted; manifests are a few KiB, so 1 MiB is generous yet bounded.
MAX_BYTES = 1024 * 1024
#: Deepest nesting accepted; a manifest is about 4 levels deep, a CR about 6.
MAX_DEPTH = 32
#: The path that means standard input, and the source label it gets in reports.
STDIN = "-"
STDIN_LABEL = "<stdin>"

_YAML_SUFFIXES = frozenset({".yaml", ".yml"})
_JSON_SUFFIXES = frozenset({".json"})


class LoadError(Exception):
    """The input cannot be used at all (missing, unreadable, not JSON/YAML, empty)."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.message = message


@dataclass(frozen=True)
class Document:
    """One parsed document; ``source`` is ``path`` or ``path#N`` in multi-document files."""

    source: str
    data: object


class _StrictComposer(yaml.SafeLoader):
    """SafeLoader that refuses anchors, aliases, merge keys, duplicate keys and deep nesting."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, AliasEvent):
            raise _marked("aliases (*name) are not allowed", event.start_mark)
        if isinstance(event, ScalarEvent | CollectionStartEvent) and event.anchor is not None:
            raise _marked("anchors (&name) are not allowed", event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _marked(f"nesting deeper than {MAX_DEPTH} levels", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: dict[object, Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _marked("merge keys (<<) are not allowed", key_node.start_mark)
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                raise _marked("a mapping key must be a plain value", key_node.start_mark)
            if key in seen:
                first = seen[key]
                raise _marked(
                    f"duplicate key {key!r} (first defined on line {first.line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


# Keep timestamps as strings, as Kubernetes' YAML-to-JSON conversion does: a date-like value
# must reach the validator as text, and stay printable as JSON.
_StrictComposer.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _marked(problem: str, mark: Any) -> ConstructorError:
    return ConstructorError(None, None, problem, mark)


def _reject_duplicate_json_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateJSONKeyError(key)
        result[key] = value
    return result


class _DuplicateJSONKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(f"duplicate key {key!r}")


def source_label(path: str) -> str:
    """How reports name an input: the path as given, ``<stdin>`` for ``-``."""
    return STDIN_LABEL if path == STDIN else path


def read_text(path: str, stdin: IO[bytes] | None = None) -> str:
    """Return the decoded text of ``path`` (``-`` = stdin), enforcing :data:`MAX_BYTES`."""
    label = source_label(path)
    try:
        if path == STDIN:
            stream = stdin if stdin is not None else sys.stdin.buffer
            raw = stream.read(MAX_BYTES + 1)
        else:
            file = Path(path)
            if file.is_dir():
                raise LoadError(label, "is a directory (pass the files in it, e.g. DIR/*.yaml)")
            with file.open("rb") as handle:
                raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise LoadError(label, "no such file") from None
    except PermissionError:
        raise LoadError(label, "permission denied") from None
    except OSError as exc:
        raise LoadError(label, f"cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise LoadError(label, f"larger than {MAX_BYTES // 1024} KiB; refusing to parse it")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LoadError(label, f"not UTF-8 text (invalid byte at offset {exc.start})") from None


def _looks_like_json(path: str, text: str) -> bool:
    suffix = Path(path).suffix.lower()
    if suffix in _JSON_SUFFIXES:
        return True
    if suffix in _YAML_SUFFIXES:
        return False
    return text.lstrip()[:1] in ("{", "[")


def _parse_json(source: str, text: str) -> list[object]:
    try:
        return [json.loads(text, object_pairs_hook=_reject_duplicate_json_keys)]
    except json.JSONDecodeError as exc:
        raise LoadError(
            source, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except _DuplicateJSONKeyError as exc:
        raise LoadError(source, f"invalid JSON: {exc}") from None
    except RecursionError:
        raise LoadError(source, "invalid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python will convert
        raise LoadError(source, f"invalid JSON: {exc}") from None


def _parse_yaml(source: str, text: str) -> list[object]:
    loader = _StrictComposer(text)
    try:
        docs: list[object] = []
        while loader.check_data():  # type: ignore[no-untyped-call]
            docs.append(loader.get_data())
        return docs
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "malformed YAML"
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise LoadError(source, f"invalid YAML{where}: {problem}") from None
    except YAMLError as exc:
        raise LoadError(source, f"invalid YAML: {exc}") from None
    except RecursionError:
        raise LoadError(source, "invalid YAML: nested too deeply") from None
    except ValueError as exc:
        raise LoadError(source, f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()


def _depth(value: object) -> int:
    """Nesting depth, computed without recursion so hostile input cannot overflow the stack."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            break
        if isinstance(item, dict):
            stack.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, level + 1) for child in item)
    return deepest


def parse_documents(source: str, text: str) -> list[Document]:
    """Parse JSON (one document) or YAML (a stream), dropping empty documents.

    JSON is chosen by a ``.json`` suffix, YAML by ``.yaml``/``.yml``; otherwise (stdin, other
    names) text starting with ``{`` or ``[`` is JSON. When more than one non-empty document
    remains, each source is ``PATH#N`` with N counting the non-empty documents from 1.
    """
    if not text.strip():
        raise LoadError(source, "empty input")
    if _looks_like_json(source, text):
        values = _parse_json(source, text)
    else:
        values = [doc for doc in _parse_yaml(source, text) if doc is not None]
    if not values:
        raise LoadError(source, "no documents (only comments or empty '---' sections)")
    for value in values:
        if _depth(value) > MAX_DEPTH:
            raise LoadError(source, f"nested deeper than {MAX_DEPTH} levels")
    if len(values) == 1:
        return [Document(source, values[0])]
    return [Document(f"{source}#{n}", value) for n, value in enumerate(values, start=1)]


def load(path: str, stdin: IO[bytes] | None = None) -> list[Document]:
    """Read and parse one input (``-`` = stdin); raises :class:`LoadError` if unusable."""
    return parse_documents(source_label(path), read_text(path, stdin))


def iter_loaded(
    paths: list[str], stdin: IO[bytes] | None = None
) -> Iterator[list[Document] | LoadError]:
    """Load each path in turn, yielding its documents or the error that made it unusable."""
    for path in paths:
        try:
            yield load(path, stdin)
        except LoadError as exc:
            yield exc
