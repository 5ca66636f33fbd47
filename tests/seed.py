"""The seed document's example manifests, verbatim, shared by the tests that start from them."""

from __future__ import annotations

import copy
from typing import Any

#: "Manifest Details": the User Management plugin's manifest, as in the plugin's code.
_USER_MANAGEMENT: dict[str, Any] = {
    "id": "user-management",
    "name": "User Management Plugin",
    "version": "1.0.0",
    "description": "Manages user profiles and extended attributes",
    "contracts": ["IdentityPlugin"],
    "traits": ["handles_pii", "audit_required"],
    "dependencies": [],
    "allowed_domains": [],
    "endpoints": {"health": "/health", "user_info": "/api/users/{id}"},
    "security": {"authentication_required": True, "data_classification": ["pii", "internal"]},
    "compliance": {"hipaa_controls": ["164.312(a)", "164.312(d)"], "audit_level": "detailed"},
}


def user_management_manifest(**extra: Any) -> dict[str, Any]:
    """A fresh copy of the seed's user-management manifest, with ``extra`` top-level keys."""
    return {**copy.deepcopy(_USER_MANAGEMENT), **copy.deepcopy(extra)}
