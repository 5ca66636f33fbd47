"""The development sink: JSON Lines files, one for records and one for checkpoints.

The checkpoint file sits beside the trail only for convenience; in production checkpoints go
to a separate stream (or ConfigMap) that the writers' credentials cannot rewrite.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from vivified.dataplane.audit.sink import SinkUnavailable


def checkpoints_path(trail: Path) -> Path:
    """Where a trail file's checkpoints are kept by default: ``TRAIL.checkpoints``."""
    return trail.with_name(trail.name + ".checkpoints")


def iter_lines(path: Path) -> Iterator[bytes]:
    """The non-empty lines of ``path`` (raw bytes: a flipped byte must reach the verifier)."""
    with path.open("rb") as handle:
        for line in handle:
            stripped = line.rstrip(b"\n")
            if stripped:
                yield stripped


class FileSink:
    """Appends records to ``path`` and checkpoints to ``path.checkpoints``; fsync optional."""

    def __init__(self, path: Path, *, checkpoints: Path | None = None, fsync: bool = False) -> None:
        self.path = path
        self.checkpoints_path = checkpoints or checkpoints_path(path)
        self._fsync = fsync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._records = self.path.open("ab")
        self._checkpoints = self.checkpoints_path.open("ab")

    async def last(self, writer: str) -> Mapping[str, object] | None:
        if not self.path.exists():
            return None
        found: Mapping[str, object] | None = None
        for line in iter_lines(self.path):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict) and value.get("writer") == writer:
                found = value
        return found

    def _write(self, handle: BinaryIO, line: bytes) -> None:
        try:
            handle.write(line + b"\n")
            handle.flush()
            if self._fsync:
                os.fsync(handle.fileno())
        except (OSError, ValueError) as exc:
            raise SinkUnavailable(f"audit file {self.path}: {exc}") from exc

    async def append(self, records: Sequence[Mapping[str, object]], payload: bytes) -> None:
        self._write(self._records, payload)

    async def checkpoint(self, checkpoint: Mapping[str, object], line: bytes) -> None:
        self._write(self._checkpoints, line)

    async def ping(self) -> None:
        if self._records.closed or not self.path.parent.is_dir():
            raise SinkUnavailable(f"audit file {self.path} is not writable")

    async def close(self) -> None:
        self._records.close()
        self._checkpoints.close()
