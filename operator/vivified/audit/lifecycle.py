"""Operator lifecycle changes as audit entries: one mapping from the operator's Events.

The operator already posts a Kubernetes Event for every lifecycle change it makes (and only
then), so its Event recorder is the one place that emits lifecycle entries too; this
module decides which Event means which action. Events that restate another (``PhaseInvalid``
after ``ValidationFailed``) map to nothing.

Two kinds of object are concerned: a plugin (the entity names it) and the operator's signing
key ring (the Event is about its Secret; the entity names the Secret and the key ids, which
are public JWKS members, never key material).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from vivified.audit import actions
from vivified.audit.hook import AuditEntry

OPERATOR_AGENT: Final = "system:vivified-operator"

#: The Events of the two-step key rotation (``tokens.keyring``); all are ``key_rotated``
#: records, told apart by ``entity.step``: every change of the keys verifiers trust is kept.
KEY_EVENTS: Final = {
    "SigningKeyCreated": "created",
    "SigningKeyStaged": "staged",
    "SigningKeyRotated": "rotated",
}

_BY_REASON: Final = {
    "PhasePending": actions.LIFECYCLE_VALIDATED,
    "PhaseActive": actions.LIFECYCLE_ENABLED,
    "PhaseDisabled": actions.LIFECYCLE_DISABLED,
    "ValidationFailed": actions.LIFECYCLE_INVALID,
    "TokenIssued": actions.LIFECYCLE_TOKEN_MINTED,
    "TokenRevoked": actions.LIFECYCLE_TOKEN_REVOKED,
    "PluginDeleted": actions.LIFECYCLE_DELETED,
    **dict.fromkeys(KEY_EVENTS, actions.LIFECYCLE_KEY_ROTATED),
}


def lifecycle_entry(
    involved: Mapping[str, Any],
    reason: str,
    message: str,
    facts: Mapping[str, str] | None = None,
) -> AuditEntry | None:
    """The entry for an operator Event about ``involved``, or None if it is no lifecycle change.

    ``facts`` are fields the Event's text does not carry in a queryable form (key ids, the
    deleted object's uid, the revoked token's id); they join the entity.
    """
    action = _BY_REASON.get(reason)
    if action is None and reason == "ChildrenApplied" and "Deployment" in message:
        action = actions.LIFECYCLE_CREATED if " created" in message else None
    if action is None:
        return None
    metadata = involved.get("metadata") or {}
    invalid = action == actions.LIFECYCLE_INVALID
    if action == actions.LIFECYCLE_KEY_ROTATED:
        entity = {
            "secret": str(metadata.get("name", "")),
            "namespace": str(metadata.get("namespace", "")),
            "step": KEY_EVENTS[reason],
        }
    else:
        entity = {
            "plugin": str(metadata.get("name", "")),
            "namespace": str(metadata.get("namespace", "")),
            "generation": str(metadata.get("generation", "")),
        }
    entity.update({str(k): str(v) for k, v in (facts or {}).items() if v})
    entity["message"] = message
    return AuditEntry(
        action=action,
        agent=OPERATOR_AGENT,
        outcome="refused" if invalid else "allowed",
        reason="manifest_invalid" if invalid else "",
        entity=entity,
        # Held through a sink outage, never refused: the operator cannot answer 503 to a
        # change already made, and a refused lifecycle entry would simply be lost.
        audit_level="basic",
    )
