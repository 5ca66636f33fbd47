"""The operator's side of the trail: lifecycle entries, emitted from its Event recorder.

The auditor is opened lazily from the operator's environment on the first lifecycle change
(``role`` ``operator``: its own chain), so the operator shell needs one call and no wiring,
plus :func:`close` at shutdown (kopf's cleanup, ``Runtime.stop``): it writes what is queued
or held and the final checkpoint, without which the trail's last records would be covered by
the chain only. Auditing must never stop reconciliation: failures are logged and counted, not
raised.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from typing import Any

from vivified.audit.hook import Auditor, AuditUnavailable
from vivified.audit.lifecycle import lifecycle_entry
from vivified.dataplane.audit.auditor import ChainAuditor

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


async def close() -> None:
    """Flush and close the auditor if one was opened (held records are written if the sink
    answers; ``ChainAuditor.close`` logs any it could not); the next entry opens it again."""
    async with _lock:
        auditor, _state["auditor"] = _state["auditor"], None
    if isinstance(auditor, ChainAuditor):
        try:
            await auditor.close()
        except Exception:  # shutdown goes on whatever the sink does
            logger.exception("audit: closing the operator's trail failed")


async def audit_lifecycle(
    plugin: Mapping[str, Any],
    reason: str,
    message: str,
    facts: Mapping[str, str] | None = None,
) -> None:
    """Record the lifecycle change an operator Event announces (if it is one)."""
    entry = lifecycle_entry(plugin, reason, message, facts)
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
