"""A real chained file trail that can be switched off: the audit outage in unit and
integration tests (like a NATS that went away), without stopping a server."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from vivified.dataplane.audit.file import FileSink
from vivified.dataplane.audit.sink import SinkUnavailable


class SwitchableSink(FileSink):
    """Set ``down = True`` and every append and ping raises :class:`SinkUnavailable`."""

    down = False

    async def append(self, records: Sequence[Mapping[str, object]], payload: bytes) -> None:
        if self.down:
            raise SinkUnavailable("switched off")
        await super().append(records, payload)

    async def ping(self) -> None:
        if self.down:
            raise SinkUnavailable("switched off")
