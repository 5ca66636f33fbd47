"""Environment variables the operator sets in plugin containers, and their defaults.

``VIVIFIED_*`` names are reserved for the operator (``spec.env`` cannot set them); where a
plugin owner may need to override a value through ``spec.env``, an unreserved alias is read
as a fallback (``TOKEN_ISSUER``, ``TOKEN_AUDIENCE``).
"""

from __future__ import annotations

from collections.abc import Mapping

ENV_TOKEN_FILE = "PLUGIN_TOKEN_FILE"  # noqa: S105 - a variable name
ENV_CORE_URL = "VIVIFIED_CORE_URL"
ENV_JWKS_FILE = "VIVIFIED_JWKS_FILE"
ENV_JWKS_URL = "VIVIFIED_JWKS_URL"
ENV_REVOCATIONS_FILE = "VIVIFIED_REVOCATIONS_FILE"
ENV_REVOCATIONS_URL = "VIVIFIED_REVOCATIONS_URL"
ENV_HEARTBEAT_URL = "VIVIFIED_HEARTBEAT_URL"
ENV_ISSUER = ("VIVIFIED_TOKEN_ISSUER", "TOKEN_ISSUER")
ENV_AUDIENCE = ("VIVIFIED_TOKEN_AUDIENCE", "TOKEN_AUDIENCE")

DEFAULT_TOKEN_FILE = "/var/run/vivified/token"  # noqa: S105 - a path
DEFAULT_JWKS_FILE = "/var/run/vivified/jwks.json"
DEFAULT_ISSUER = "vivified-operator"
DEFAULT_AUDIENCE = "vivified-platform"


def first(environ: Mapping[str, str], names: tuple[str, ...], default: str) -> str:
    """The first of ``names`` set to a non-empty value, else ``default``."""
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return value
    return default


def optional(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None
