"""Operator lifecycle changes as audit entries: one mapping from the operator's Events.

The operator already posts a Kubernetes Event for every lifecycle change it makes (and only
then), so its Event recorder is the one place that emits lifecycle audit entries too; this
module decides which Event means which action. Events that restate another (``PhaseInvalid``
after ``ValidationFailed``) map to nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from vivified.audit import actions
from vivified.audit.hook import AuditEntry

OPERATOR_AGENT: Final = "system:vivified-operator"

_BY_REASON: Final = {
    "PhasePending": actions.LIFECYCLE_VALIDATED,
    "PhaseActive": actions.LIFECYCLE_ENABLED,
    "PhaseDisabled": actions.LIFECYCLE_DISABLED,
    "ValidationFailed": actions.LIFECYCLE_INVALID,
    "TokenIssued": actions.LIFECYCLE_TOKEN_MINTED,
    "TokenRevoked": actions.LIFECYCLE_TOKEN_REVOKED,
    "PluginDeleted": actions.LIFECYCLE_DELETED,
    "SigningKeyRotated": actions.LIFECYCLE_KEY_ROTATED,
}


def lifecycle_entry(plugin: Mapping[str, Any], reason: str, message: str) -> AuditEntry | None:
    """The entry for an operator Event about ``plugin``, or None if it is not a lifecycle change."""
    action = _BY_REASON.get(reason)
    if action is None and reason == "ChildrenApplied" and "Deployment" in message:
        action = actions.LIFECYCLE_CREATED if " created" in message else None
    if action is None:
        return None
    metadata = plugin.get("metadata") or {}
    invalid = action == actions.LIFECYCLE_INVALID
    return AuditEntry(
        action=action,
        agent=OPERATOR_AGENT,
        outcome="refused" if invalid else "allowed",
        reason="manifest_invalid" if invalid else "",
        entity={
            "plugin": str(metadata.get("name", "")),
            "namespace": str(metadata.get("namespace", "")),
            "generation": str(metadata.get("generation", "")),
            "message": message,
        },
        # Held through a sink outage, never refused: the operator cannot answer 503 to a
        # change already made, and a refused lifecycle entry would simply be lost.
        audit_level="basic",
    )
