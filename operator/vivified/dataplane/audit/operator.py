"""The operator's side of the trail: lifecycle entries, emitted from its Event recorder.

The auditor is opened lazily from the operator's environment on the first lifecycle change
(``role`` ``operator``: its own chain), so the operator shell needs one call and no wiring.
Auditing must never stop reconciliation: failures are logged and counted, not raised.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from typing import Any

from vivified.audit.hook import Auditor, AuditUnavailable
from vivified.audit.lifecycle import lifecycle_entry

logger = logging.getLogger(__name__)

_state: dict[str, Any] = {"auditor": None, "lost": 0}
_lock = asyncio.Lock()


def configure(auditor: Auditor | None) -> None:
    """Use ``auditor`` for lifecycle entries (tests; None = open from the environment again)."""
    _state["auditor"] = auditor


def lost() -> int:
    """Lifecycle entries that could not be recorded (logged as errors)."""
    return int(_state["lost"])


async def _auditor() -> Auditor:
    async with _lock:
        if _state["auditor"] is None:
            from vivified.dataplane.audit.setup import AuditSettings, open_auditor  # noqa: PLC0415

            settings = AuditSettings.from_env(os.environ, role="operator")
            _state["auditor"] = await open_auditor(settings)
        auditor: Auditor = _state["auditor"]
        return auditor


async def audit_lifecycle(plugin: Mapping[str, Any], reason: str, message: str) -> None:
    """Record the lifecycle change an operator Event announces (if it is one)."""
    entry = lifecycle_entry(plugin, reason, message)
    if entry is None:
        return
    try:
        await (await _auditor()).record(entry)
    except AuditUnavailable as exc:
        _state["lost"] += 1
        logger.error("lifecycle audit entry %s not recorded: %s", entry.action, exc)
    except Exception:  # auditing must never break reconciliation
        _state["lost"] += 1
        logger.exception("lifecycle audit entry %s not recorded", entry.action)
