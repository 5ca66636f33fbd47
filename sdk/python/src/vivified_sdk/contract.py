"""The operator <-> plugin contract: every name both sides must spell the same way.

This module is the single home of these names. The operator imports them to render a plugin's
Deployment, token Secret and tokens; the SDK reads them inside the plugin. Nothing else may
spell them again (the operator's test suite greps for it), so renaming one here changes both
sides at once.

``PROTOCOL_VERSION`` is versioned apart from the package: its major number is the core's API
path prefix (``/v1``), a minor bump only adds names. Only constants live here (no I/O, no
imports beyond the standard library), so the module can be read by anything.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "API_PREFIX",
    "CALL_TOKEN_TYPE",
    "CLAIM_AUDIENCE",
    "CLAIM_DATA_CLASSIFICATION",
    "CLAIM_EXPIRES_AT",
    "CLAIM_ISSUED_AT",
    "CLAIM_ISSUER",
    "CLAIM_JTI",
    "CLAIM_NOT_BEFORE",
    "CLAIM_PLUGIN_ID",
    "CLAIM_SUBJECT",
    "CLAIM_TRAITS",
    "CLAIM_TYPE",
    "CLAIM_VERSION",
    "CLOUDEVENTS_CONTENT_TYPE",
    "CORE_EVENTS_PATH",
    "CORE_EVENTS_STATUS_PATH",
    "CORE_HEARTBEAT_PATH",
    "CORE_HTTP_PORT",
    "CORE_HTTP_PORT_NAME",
    "CORE_INVOKE_PATH",
    "CORE_JWKS_PATH",
    "CORE_PLUGINS_PATH",
    "CORE_PROXY_ALLOWLISTS_PATH",
    "CORE_PROXY_PORT",
    "CORE_PROXY_PORT_NAME",
    "CORE_REVOCATIONS_PATH",
    "CORE_SERVICE_NAME",
    "DEFAULT_AUDIENCE",
    "DEFAULT_CORE_ISSUER",
    "DEFAULT_ISSUER",
    "DEFAULT_JWKS_FILE",
    "DEFAULT_TOKEN_FILE",
    "ENV_AUDIENCE",
    "ENV_AUDIENCE_ALIAS",
    "ENV_CORE_ISSUER",
    "ENV_CORE_URL",
    "ENV_HEARTBEAT_URL",
    "ENV_HTTPS_PROXY",
    "ENV_HTTP_PROXY",
    "ENV_ISSUER",
    "ENV_ISSUER_ALIAS",
    "ENV_JWKS_FILE",
    "ENV_JWKS_URL",
    "ENV_NO_PROXY",
    "ENV_PLUGIN_ID",
    "ENV_PLUGIN_PORT",
    "ENV_PROXY_NAMES",
    "ENV_REVOCATIONS_FILE",
    "ENV_REVOCATIONS_URL",
    "ENV_TOKEN_FILE",
    "EVENT_ATTEMPT_HEADER",
    "EVENT_DELIVERY_OPERATION",
    "EVENT_SOURCE_PREFIX",
    "JWKS_FILE_NAME",
    "MOUNT_DIR",
    "OPERATOR_AUDIENCE",
    "OPERATOR_SUBJECT",
    "OPERATOR_TOKEN_MAX_TTL_SECONDS",
    "OPERATOR_TOKEN_TYPE",
    "PROTOCOL_VERSION",
    "PROXY_REASON_HEADER",
    "REQUIRED_CLAIMS",
    "RESERVED_ENV_PREFIX",
    "REVOCATIONS_FILE_NAME",
    "REVOCATIONS_FORMAT_VERSION",
    "SIGNING_ALGORITHM",
    "SUBJECT_PREFIX",
    "TOKEN_FILE_NAME",
    "TOKEN_TYPE",
]

#: The protocol's version, not the package's: major = the core's path prefix.
PROTOCOL_VERSION: Final = "1.0"
API_PREFIX: Final = "/v" + PROTOCOL_VERSION.split(".", 1)[0]

# -- environment variables the operator sets in every plugin container ---------------------------
#: ``VIVIFIED_*`` names are reserved for the operator: ``spec.env`` cannot set them.
RESERVED_ENV_PREFIX: Final = "VIVIFIED_"
ENV_PLUGIN_ID: Final = "PLUGIN_ID"
ENV_PLUGIN_PORT: Final = "VIVIFIED_PLUGIN_PORT"
ENV_CORE_URL: Final = "VIVIFIED_CORE_URL"
ENV_HEARTBEAT_URL: Final = "VIVIFIED_HEARTBEAT_URL"
ENV_TOKEN_FILE: Final = "PLUGIN_TOKEN_FILE"  # noqa: S105 - a variable name
ENV_JWKS_FILE: Final = "VIVIFIED_JWKS_FILE"
ENV_JWKS_URL: Final = "VIVIFIED_JWKS_URL"
ENV_REVOCATIONS_FILE: Final = "VIVIFIED_REVOCATIONS_FILE"
ENV_REVOCATIONS_URL: Final = "VIVIFIED_REVOCATIONS_URL"
#: Issuer and audience the plugin's verifier expects. The unreserved aliases let a plugin owner
#: override them through ``spec.env`` (which cannot set ``VIVIFIED_*``).
ENV_ISSUER: Final = "VIVIFIED_TOKEN_ISSUER"
ENV_ISSUER_ALIAS: Final = "TOKEN_ISSUER"
ENV_AUDIENCE: Final = "VIVIFIED_TOKEN_AUDIENCE"
ENV_AUDIENCE_ALIAS: Final = "TOKEN_AUDIENCE"
#: The proxy lane (issue 9): the standard proxy variables, set for ``external_service`` plugins
#: only. The proxy URLs point at the core's ``proxy`` port and carry no credential (the token
#: rotates; clients send it in ``Proxy-Authorization``). ``NO_PROXY`` names the core itself.
ENV_HTTPS_PROXY: Final = "HTTPS_PROXY"
ENV_HTTP_PROXY: Final = "HTTP_PROXY"
ENV_NO_PROXY: Final = "NO_PROXY"
#: Every name the operator sets, both cases: curl reads only lower-case ``http_proxy``, Go and
#: .NET read upper case, Python reads both.
ENV_PROXY_NAMES: Final[tuple[str, ...]] = (
    ENV_HTTPS_PROXY,
    ENV_HTTP_PROXY,
    ENV_NO_PROXY,
    ENV_HTTPS_PROXY.lower(),
    ENV_HTTP_PROXY.lower(),
    ENV_NO_PROXY.lower(),
)

# -- the token Secret, mounted as a directory (never subPath, so re-minted tokens appear) --------
MOUNT_DIR: Final = "/var/run/vivified"
TOKEN_FILE_NAME: Final = "token"  # noqa: S105 - a file name
JWKS_FILE_NAME: Final = "jwks.json"
#: The revocation list document: ``{"revoked": {jti: RFC 3339 expiry}, "version": 1}``.
REVOCATIONS_FILE_NAME: Final = "revoked.json"
REVOCATIONS_FORMAT_VERSION: Final = 1
DEFAULT_TOKEN_FILE: Final = MOUNT_DIR + "/" + TOKEN_FILE_NAME
DEFAULT_JWKS_FILE: Final = MOUNT_DIR + "/" + JWKS_FILE_NAME

# -- the core (DESIGN.md "The core's interfaces"); paths are relative to VIVIFIED_CORE_URL ------
CORE_SERVICE_NAME: Final = "vivified-core"
CORE_HTTP_PORT: Final = 8080
CORE_HTTP_PORT_NAME: Final = "http"
CORE_PROXY_PORT: Final = 3128
CORE_PROXY_PORT_NAME: Final = "proxy"
CORE_HEARTBEAT_PATH: Final = API_PREFIX + "/heartbeat"
CORE_JWKS_PATH: Final = API_PREFIX + "/jwks"
CORE_REVOCATIONS_PATH: Final = API_PREFIX + "/revocations"
CORE_PLUGINS_PATH: Final = API_PREFIX + "/plugins"
#: ``{METHOD} /v1/invoke/{target}/{operation}[/{rest}]``
CORE_INVOKE_PATH: Final = API_PREFIX + "/invoke"
#: ``POST /v1/events`` with a CloudEvents 1.0 structured JSON body.
CORE_EVENTS_PATH: Final = API_PREFIX + "/events"
#: The proxy lane's published state (per plugin: generation, domains; the mode): the operator
#: reads it for the ``EgressEnforced`` condition. Never a token.
CORE_PROXY_ALLOWLISTS_PATH: Final = API_PREFIX + "/proxy/allowlists"
#: Every plugin's event-lane counts (pending, dead-lettered) in one document: the operator
#: reads it for ``status.events``. Like the allowlists above, only for the operator's token.
CORE_EVENTS_STATUS_PATH: Final = API_PREFIX + "/events/status"
#: Every proxy refusal names its machine-readable reason in this response header (and in the
#: problem+json body), so a denial never looks like a TLS or network error.
PROXY_REASON_HEADER: Final = "X-Vivified-Reason"

# -- the event lane (docs/events.md) -------------------------------------------------------------
#: Content type of a published event and of a delivery (CloudEvents structured mode).
CLOUDEVENTS_CONTENT_TYPE: Final = "application/cloudevents+json"
#: The ``source`` the core sets on every event: this prefix + the publisher's plugin id.
EVENT_SOURCE_PREFIX: Final = "vivified://plugins/"
#: The ``operation`` claim of the call token a delivery carries. ``:`` cannot appear in an
#: ``endpoints`` key, so no operator-lane call token can ever carry it.
EVENT_DELIVERY_OPERATION: Final = "event:deliver"
#: Which attempt a delivery is (1 = first); a receiver may log it.
EVENT_ATTEMPT_HEADER: Final = "Vivified-Delivery-Attempt"

# -- plugin identity tokens (docs/tokens.md) -----------------------------------------------------
SIGNING_ALGORITHM: Final = "ES256"
DEFAULT_ISSUER: Final = "vivified-operator"
DEFAULT_AUDIENCE: Final = "vivified-platform"
TOKEN_TYPE: Final = "plugin"  # noqa: S105 - the type claim's value
#: The ``type`` claim of the call tokens the core mints for a call's target (operator lane).
CALL_TOKEN_TYPE: Final = "call"  # noqa: S105 - a claim value
#: The ``iss`` (and ``act.sub``) of call tokens: the core's name; plugins may override it with
#: ``VIVIFIED_CORE_ISSUER`` when a platform runs the core under another name.
DEFAULT_CORE_ISSUER: Final = CORE_SERVICE_NAME
ENV_CORE_ISSUER: Final = "VIVIFIED_CORE_ISSUER"
SUBJECT_PREFIX: Final = "plugin:"

# -- the operator's own token (docs/tokens.md "The operator token") ------------------------------
#: The operator reads the core's operator-only routes (``CORE_PROXY_ALLOWLISTS_PATH``,
#: ``CORE_EVENTS_STATUS_PATH``) with a short-lived token it signs with the same key ring as
#: plugin tokens (so the core trusts it through the JWKS it already reads). Its ``type``,
#: ``sub`` and ``aud`` can never be a plugin token's: ``:`` cannot appear in a plugin id (a DNS
#: label), and the audience is not ``DEFAULT_AUDIENCE``. No ``plugin_id`` claim.
OPERATOR_TOKEN_TYPE: Final = "operator"  # noqa: S105 - a claim value
OPERATOR_SUBJECT: Final = "vivified:operator"
OPERATOR_AUDIENCE: Final = "vivified-core:operator-api"
#: The core refuses an operator token whose ``exp - iat`` is longer than this (seconds), so a
#: leaked one is worth minutes whatever the operator was configured to mint.
OPERATOR_TOKEN_MAX_TTL_SECONDS: Final = 900
CLAIM_ISSUER: Final = "iss"
CLAIM_SUBJECT: Final = "sub"
CLAIM_AUDIENCE: Final = "aud"
CLAIM_ISSUED_AT: Final = "iat"
CLAIM_NOT_BEFORE: Final = "nbf"
CLAIM_EXPIRES_AT: Final = "exp"
CLAIM_JTI: Final = "jti"
CLAIM_PLUGIN_ID: Final = "plugin_id"
CLAIM_TYPE: Final = "type"
CLAIM_TRAITS: Final = "traits"
CLAIM_DATA_CLASSIFICATION: Final = "data_classification"
CLAIM_VERSION: Final = "version"
REQUIRED_CLAIMS: Final[tuple[str, ...]] = (
    CLAIM_ISSUER,
    CLAIM_SUBJECT,
    CLAIM_AUDIENCE,
    CLAIM_ISSUED_AT,
    CLAIM_NOT_BEFORE,
    CLAIM_EXPIRES_AT,
    CLAIM_JTI,
    CLAIM_PLUGIN_ID,
    CLAIM_TYPE,
)
