"""What the auditor needs from storage: resume a chain, append a record, publish a checkpoint."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol


class SinkUnavailable(Exception):  # noqa: N818 - a state, like AuditUnavailable
    """The sink did not confirm the write (down, slow, full): the record is not stored."""


class Sink(Protocol):
    """Durable, append-only storage of one or more writers' chains."""

    async def last(self, writer: str) -> Mapping[str, object] | None:
        """The last stored record of ``writer`` (to resume its chain), None for a new chain."""
        ...

    async def append(self, records: Sequence[Mapping[str, object]], payload: bytes) -> None:
        """Store ``payload`` (the records' canonical lines, joined by newlines) as one unit,
        and return only once it is durable."""
        ...

    async def checkpoint(self, checkpoint: Mapping[str, object], line: bytes) -> None:
        """Publish a signed checkpoint where the trail's writers cannot rewrite it."""
        ...

    async def ping(self) -> None:
        """Return if the sink can take writes now, raise :class:`SinkUnavailable` if not."""
        ...

    async def close(self) -> None: ...
