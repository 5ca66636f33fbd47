"""The action vocabulary of the trail: stable dotted names, each belonging to one lane.

Names are data that users query (``vivified audit query --action``) and that the FHIR mapping
keys on, so they never change once released; new ones are added.
"""

from __future__ import annotations

from typing import Final

INVOKE: Final = "invoke"
INVOKE_RESULT: Final = "invoke.result"
EGRESS_DECISION: Final = "egress.decision"
EGRESS_CLOSE: Final = "egress.close"
EVENT_PUBLISH: Final = "event.publish"
EVENT_DELIVER: Final = "event.deliver"
EVENT_DEAD_LETTER: Final = "event.dead_letter"
HEARTBEAT: Final = "heartbeat"

LIFECYCLE_CREATED: Final = "lifecycle.created"
LIFECYCLE_VALIDATED: Final = "lifecycle.validated"
LIFECYCLE_INVALID: Final = "lifecycle.invalid"
LIFECYCLE_ENABLED: Final = "lifecycle.enabled"
LIFECYCLE_DISABLED: Final = "lifecycle.disabled"
LIFECYCLE_DELETED: Final = "lifecycle.deleted"
LIFECYCLE_TOKEN_MINTED: Final = "lifecycle.token_minted"  # noqa: S105 - an action name
LIFECYCLE_TOKEN_REVOKED: Final = "lifecycle.token_revoked"  # noqa: S105 - an action name
LIFECYCLE_KEY_ROTATED: Final = "lifecycle.key_rotated"

UI_PREFIX: Final = "ui."
LIFECYCLE_PREFIX: Final = "lifecycle."

LANES: Final[dict[str, str]] = {
    INVOKE: "operator",
    INVOKE_RESULT: "operator",
    EGRESS_DECISION: "proxy",
    EGRESS_CLOSE: "proxy",
    EVENT_PUBLISH: "event",
    EVENT_DELIVER: "event",
    EVENT_DEAD_LETTER: "event",
    HEARTBEAT: "heartbeat",
}

KNOWN: Final = frozenset(
    {
        *LANES,
        LIFECYCLE_CREATED,
        LIFECYCLE_VALIDATED,
        LIFECYCLE_INVALID,
        LIFECYCLE_ENABLED,
        LIFECYCLE_DISABLED,
        LIFECYCLE_DELETED,
        LIFECYCLE_TOKEN_MINTED,
        LIFECYCLE_TOKEN_REVOKED,
        LIFECYCLE_KEY_ROTATED,
    }
)


def lane_of(action: str) -> str:
    """The lane an action belongs to: a data lane, ``lifecycle``, ``ui`` or ``other``."""
    if action in LANES:
        return LANES[action]
    if action.startswith(LIFECYCLE_PREFIX):
        return "lifecycle"
    if action.startswith(UI_PREFIX):
        return "ui"
    return "other"


def is_platform_action(action: str) -> bool:
    """Lifecycle and Admin UI actions: the platform's own acts, kept whatever the level."""
    return lane_of(action) in ("lifecycle", "ui")
