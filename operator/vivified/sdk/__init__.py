"""A small SDK for Python plugins: the plugin's own token, calls to the core, and
verification of the tokens callers present.

Import only this package in plugin code: it depends on PyJWT, cryptography and httpx, never
on kopf or the Kubernetes client, so a plugin image stays small. See docs/sdk.md.

    from vivified.sdk import CoreClient, TokenVerifier

    verifier = TokenVerifier.from_env()          # VIVIFIED_JWKS_FILE, issuer, audience, ...
    caller = verifier.verify_authorization(request.headers.get("Authorization"))

    async with CoreClient.from_env() as core:    # VIVIFIED_CORE_URL + PLUGIN_TOKEN_FILE
        await core.get("/api/...")
"""

from __future__ import annotations

from vivified.tokens import TokenInvalid, VerifiedToken

from .calls import CallIdentity, CallVerifier
from .client import CoreClient, TokenAuth
from .config import (
    DEFAULT_AUDIENCE,
    DEFAULT_ISSUER,
    DEFAULT_JWKS_FILE,
    DEFAULT_TOKEN_FILE,
    ENV_CORE_URL,
    ENV_HEARTBEAT_URL,
    ENV_JWKS_FILE,
    ENV_JWKS_URL,
    ENV_REVOCATIONS_FILE,
    ENV_REVOCATIONS_URL,
    ENV_TOKEN_FILE,
)
from .token_file import TokenFile, TokenFileError
from .verify import (
    JwksCache,
    RevocationFile,
    RevocationSource,
    RevocationUrl,
    StaticRevocations,
    TokenVerifier,
)

__all__ = [
    "DEFAULT_AUDIENCE",
    "DEFAULT_ISSUER",
    "DEFAULT_JWKS_FILE",
    "DEFAULT_TOKEN_FILE",
    "ENV_CORE_URL",
    "ENV_HEARTBEAT_URL",
    "ENV_JWKS_FILE",
    "ENV_JWKS_URL",
    "ENV_REVOCATIONS_FILE",
    "ENV_REVOCATIONS_URL",
    "ENV_TOKEN_FILE",
    "CallIdentity",
    "CallVerifier",
    "CoreClient",
    "JwksCache",
    "RevocationFile",
    "RevocationSource",
    "RevocationUrl",
    "StaticRevocations",
    "TokenAuth",
    "TokenFile",
    "TokenFileError",
    "TokenInvalid",
    "TokenVerifier",
    "VerifiedToken",
]
