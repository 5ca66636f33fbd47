"""Recent records about one plugin, newest first: what the Admin UI's detail page shows.

Implements the UI's ``AuditReader`` seam (issue 12). Reads backwards from the end of the trail
and stops after ``scan`` records, so a page view costs a bounded number of reads however long
the trail is; older records are for ``vivified audit query``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vivified.audit.query import plugins_of


def _matching(lines: Sequence[bytes], plugin_id: str, limit: int) -> list[Mapping[str, object]]:
    found: list[Mapping[str, object]] = []
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and plugin_id in plugins_of(record):
            found.append(record)
            if len(found) >= limit:
                break
    return found


class FileTrailReader:
    """Over a file trail (development)."""

    def __init__(self, path: Path, scan: int = 5000) -> None:
        self.path = path
        self.scan = scan

    async def recent(
        self, namespace: str, plugin_id: str, limit: int
    ) -> Sequence[Mapping[str, object]]:
        if not self.path.is_file():
            return []
        from collections import deque  # noqa: PLC0415

        with self.path.open("rb") as handle:
            tail = deque((line.rstrip(b"\n") for line in handle if line.strip()), self.scan)
        return _matching(list(tail), plugin_id, limit)


class StreamTrailReader:
    """Over the JetStream trail: the last ``scan`` messages (each a batch of records)."""

    def __init__(self, js: Any, stream: str = "VIVIFIED_AUDIT", scan: int = 500) -> None:
        self._js = js
        self.stream = stream
        self.scan = scan

    async def recent(
        self, namespace: str, plugin_id: str, limit: int
    ) -> Sequence[Mapping[str, object]]:
        import nats.js.errors  # noqa: PLC0415

        info = await self._js.stream_info(self.stream)
        found: list[Mapping[str, object]] = []
        seq = info.state.last_seq
        while seq >= max(info.state.first_seq, 1) and seq > info.state.last_seq - self.scan:
            try:
                msg = await self._js.get_msg(self.stream, seq)
            except nats.js.errors.NotFoundError:
                seq -= 1
                continue
            lines = [line for line in (msg.data or b"").split(b"\n") if line]
            found.extend(_matching(lines, plugin_id, limit - len(found)))
            if len(found) >= limit:
                break
            seq -= 1
        return found


def trail_reader(auditor: object) -> FileTrailReader | StreamTrailReader | None:
    """The reader over the trail ``auditor`` writes (None when auditing is off), so the UI reads
    exactly where the core writes."""
    from vivified.dataplane.audit.auditor import ChainAuditor  # noqa: PLC0415
    from vivified.dataplane.audit.file import FileSink  # noqa: PLC0415
    from vivified.dataplane.audit.jetstream import JetStreamSink  # noqa: PLC0415

    if not isinstance(auditor, ChainAuditor):
        return None
    if isinstance(auditor.sink, FileSink):
        return FileTrailReader(auditor.sink.path)
    if isinstance(auditor.sink, JetStreamSink):
        return StreamTrailReader(auditor.sink.jetstream, auditor.sink.settings.stream)
    return None
