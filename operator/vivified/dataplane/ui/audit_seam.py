"""Recent audit records on the detail page: the seam the audit trail plugs into.

``create_ui_app`` takes an optional :class:`AuditReader`; the core passes the reader over the
trail it writes (``vivified.dataplane.audit.reader.trail_reader``: the file or the JetStream
stream). Without one (auditing off, or the UI run alone) the detail page says that audit
records are not available here, and where they are, instead of showing an empty list that
would read as "nothing happened".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol


class AuditReader(Protocol):
    """Recent audit records about one plugin, newest first."""

    async def recent(
        self, namespace: str, plugin_id: str, limit: int
    ) -> Sequence[Mapping[str, object]]: ...
