"""The Vivified plugin SDK: the platform contract, token verification, calls to the core.

Depends on PyJWT (with cryptography) and httpx only. The public surface is what ``__all__``
lists (pinned by a test); modules starting with ``_`` are private and may change.

    from vivified_sdk import CoreClient, TokenVerifier

    verifier = TokenVerifier.from_env()      # the variables the operator sets
    verifier.start()                         # background refresh of JWKS/revocation URLs
    caller = verifier.verify_authorization(request.headers.get("Authorization"))

    async with CoreClient.from_env() as core:  # VIVIFIED_CORE_URL + the mounted token
        await core.heartbeat("healthy")
        await publish(core, "UserCreated", {"user_id": "u1"})  # the event lane

    async with async_egress_client() as http:  # external_service: through the core's proxy
        await http.get("https://api.partner.test/v1/charges")

Where the lanes' client functions go: ``_invoke`` (operator lane), ``_events`` (event lane),
``_egress`` (proxy lane); each is re-exported here.
"""

from __future__ import annotations

from . import contract
from ._client import CoreClient, TokenAuth
from ._egress import (
    AsyncEgressTransport,
    EgressNotConfigured,
    EgressTransport,
    async_egress_client,
    egress_client,
    proxy_url_from_env,
    refusal_reason,
)
from ._errors import TokenInvalid, VerifierUnavailable
from ._events import EventHandler, EventReceiver, PublishRefused, SeenEvents, publish
from ._invoke import CallIdentity, CallVerifier, verify_call_token
from ._revocations import RevocationListError, parse_revocations
from ._sources import (
    JwksFile,
    JwksSource,
    JwksUrl,
    RevocationFile,
    RevocationSource,
    RevocationUrl,
    StaticJwks,
    StaticRevocations,
)
from ._strict_json import StrictJSONError, loads_strict
from ._token import VerifiedToken, subject_for, verify_plugin_token
from ._token_file import TokenFile, TokenFileError
from ._verifier import TokenVerifier
from .contract import PROTOCOL_VERSION

__version__ = "0.1.0"

__all__ = [
    "PROTOCOL_VERSION",
    "AsyncEgressTransport",
    "CallIdentity",
    "CallVerifier",
    "CoreClient",
    "EgressNotConfigured",
    "EgressTransport",
    "EventHandler",
    "EventReceiver",
    "JwksFile",
    "JwksSource",
    "JwksUrl",
    "PublishRefused",
    "RevocationFile",
    "RevocationListError",
    "RevocationSource",
    "RevocationUrl",
    "SeenEvents",
    "StaticJwks",
    "StaticRevocations",
    "StrictJSONError",
    "TokenAuth",
    "TokenFile",
    "TokenFileError",
    "TokenInvalid",
    "TokenVerifier",
    "VerifiedToken",
    "VerifierUnavailable",
    "__version__",
    "async_egress_client",
    "contract",
    "egress_client",
    "loads_strict",
    "parse_revocations",
    "proxy_url_from_env",
    "publish",
    "refusal_reason",
    "subject_for",
    "verify_call_token",
    "verify_plugin_token",
]
