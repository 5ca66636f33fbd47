"""Call tokens: what the core hands a target plugin for one forwarded call.

The caller's own plugin token never leaves the core. Instead the core signs a short-lived
token *for the target* (``aud`` = target plugin id) saying who called (``sub`` =
``plugin:<caller>``, ``caller``), which operation, and that the core vouches for it (``act`` =
``{"sub": <core issuer>}``, RFC 8693 actor claim). ``type`` is ``call``, so a call token can
never pass as a plugin token (and the reverse), and the audience pins it to one target, so a
target cannot replay it against another plugin.

Pure: no clock and no I/O; ``now`` is passed in. Minting stays here (the core signs);
verification is the SDK's (``vivified_sdk.verify_call_token``), the one verifier targets use.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import jwt

from vivified_sdk import CallIdentity, contract, verify_call_token

from .keys import ALGORITHM
from .plugin_token import subject_for
from .timeutil import require_aware, to_epoch

CALL_TOKEN_TYPE = contract.CALL_TOKEN_TYPE

__all__ = [
    "CALL_TOKEN_TYPE",
    "CallIdentity",
    "mint_call_token",
    "verify_call_token",
]


def mint_call_token(
    private_key: Any,
    kid: str,
    *,
    caller: str,
    caller_traits: tuple[str, ...],
    target: str,
    operation: str,
    issuer: str,
    ttl_seconds: int,
    now: datetime,
) -> str:
    """Sign a call token. ``private_key`` is an already-loaded EC key (loading is slow)."""
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    issued = require_aware(now).replace(microsecond=0)
    claims = {
        "iss": issuer,
        "sub": subject_for(caller),
        "aud": target,
        "iat": to_epoch(issued),
        "nbf": to_epoch(issued),
        "exp": to_epoch(issued + timedelta(seconds=ttl_seconds)),
        "jti": uuid.uuid4().hex,
        "type": CALL_TOKEN_TYPE,
        "caller": caller,
        "operation": operation,
        "traits": list(caller_traits),
        "act": {"sub": issuer},
    }
    return jwt.encode(claims, private_key, algorithm=ALGORITHM, headers={"kid": kid, "typ": "JWT"})
