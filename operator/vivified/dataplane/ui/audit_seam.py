"""Recent audit records on the detail page: the seam the audit store plugs into.

SEAM (issue 11): the audit sinks and their query API are not on main yet. ``create_ui_app``
takes an optional :class:`AuditReader`; until one is passed the detail page says that audit
records are not available here (and where they are: the core's audit sink and the Kubernetes
audit log), instead of showing an empty list that would read as "nothing happened".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol


class AuditReader(Protocol):
    """Recent audit records about one plugin, newest first."""

    async def recent(
        self, namespace: str, plugin_id: str, limit: int
    ) -> Sequence[Mapping[str, object]]: ...
