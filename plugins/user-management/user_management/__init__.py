"""The seed's User Management plugin (an IdentityPlugin), made real.

Stores extended profile attributes per user in SQLite and serves them to callers that present
a valid platform-issued plugin token. ``GET /health`` is the only unauthenticated endpoint.
"""

from __future__ import annotations

MANIFEST = {
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
    # Not in the seed's Phase 1 code; the seed's docs recommend adding it.
    "health_check": {"type": "http", "port": 8000, "path": "/health"},
    # Vivified's event-lane extension: UserCreated is published when a profile is created.
    "events": {"publishes": ["UserCreated"]},
}

__all__ = ["MANIFEST"]
