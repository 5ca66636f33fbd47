"""Pydantic models of the Vivified plugin manifest (the seed's field names, verbatim).

These models are the *structural* truth: field names, types, defaults, simple bounds and the
human-readable descriptions that become ``kubectl explain`` text through the generated CRD.
Cross-field rules (trait registry, PHI/PII consistency, domain vetting, ...) live in
:mod:`vivified.policy`; call :func:`vivified.policy.validate_manifest` rather than
``PluginManifest.model_validate`` when you want every problem reported with a helpful message.

Every model forbids unknown fields. Numbers are strict: ``"512"`` or ``true`` is not a number.
Bounds are declared once here (module constants) and reused by the policy's messages.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from vivified.names import normalize_domain
from vivified_sdk import contract

# --------------------------------------------------------------------------------------------
# Limits (single source for the models, the CRD schema and the policy's error messages)
# --------------------------------------------------------------------------------------------

#: A plugin id becomes ``metadata.name`` and the prefix of child object names such as
#: ``<id>-token``. Service names must be DNS-1035 labels (<= 63 chars), so the id leaves room
#: for a suffix of up to 13 characters.
PLUGIN_ID_MAX_LENGTH = 50
#: Lowercase letters, digits and single hyphens; starts with a letter, ends with a letter or
#: digit. RE2-compatible (it is also used as the CRD ``pattern``).
PLUGIN_ID_PATTERN = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"

#: Semantic Versioning 2.0.0 (https://semver.org), pre-release and build metadata allowed.
SEMVER_PATTERN = (
    r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(-((0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)"
    r"(\.(0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(\+([0-9a-zA-Z-]+(\.[0-9a-zA-Z-]+)*))?$"
)
VERSION_MAX_LENGTH = 128

#: HIPAA control citations: numbers, a dot, numbers, then one or more parenthesised
#: subsections, e.g. ``164.312(a)`` or ``164.312(a)(2)(iv)``.
HIPAA_CONTROL_PATTERN = r"^[0-9]{1,4}\.[0-9]{1,4}(\([a-zA-Z0-9]{1,8}\))+$"

NAME_MAX_LENGTH = 128
HIPAA_CONTROL_MAX_LENGTH = 64
DESCRIPTION_MAX_LENGTH = 2048
TRAIT_MAX_LENGTH = 64
DOMAIN_MAX_LENGTH = 253
ENDPOINT_NAME_MAX_LENGTH = 63
ENDPOINT_PATH_MAX_LENGTH = 512

MAX_CONTRACTS = 8
MAX_TRAITS = 32
MAX_DEPENDENCIES = 64
MAX_ALLOWED_DOMAINS = 100
MAX_ENDPOINTS = 64
MAX_DATA_CLASSIFICATIONS = 8
MAX_HIPAA_CONTROLS = 64

#: Event lane (Vivified's extension): type names such as ``UserCreated`` or
#: ``acme.InvoicePaid``; a CloudEvents ``type`` and a NATS subject token (no spaces, ``*``, ``>``).
EVENT_TYPE_MAX_LENGTH = 128
EVENT_TYPE_PATTERN = r"^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)*$"
MAX_EVENT_TYPES = 64
#: The ``endpoints`` key naming the path the core POSTs deliveries to.
EVENTS_ENDPOINT = "events"

MEMORY_LIMIT_MIN_MB = 64
MEMORY_LIMIT_MAX_MB = 8192
CPU_LIMIT_MIN = 0.1
CPU_LIMIT_MAX = 8.0

#: HIPAA's six-year documentation rule rounded up to seven years, as the seed requires.
PHI_MIN_RETENTION_DAYS = 2555
RETENTION_MAX_DAYS = 36500

PORT_MIN = 1
PORT_MAX = 65535
DEFAULT_HEALTH_PATH = "/health"
DEFAULT_INTERVAL_SECONDS = 30
DEFAULT_TIMEOUT_SECONDS = 5
DEFAULT_FAILURE_THRESHOLD = 3
INTERVAL_MAX_SECONDS = 3600
TIMEOUT_MAX_SECONDS = 300
FAILURE_THRESHOLD_MAX = 100

# --------------------------------------------------------------------------------------------
# Enumerations
# --------------------------------------------------------------------------------------------

Contract = Literal["CommunicationPlugin", "StoragePlugin", "IdentityPlugin"]
CONTRACTS: tuple[str, ...] = ("CommunicationPlugin", "StoragePlugin", "IdentityPlugin")

DataClassification = Literal["public", "internal", "confidential", "pii", "phi"]
DATA_CLASSIFICATIONS: tuple[str, ...] = ("public", "internal", "confidential", "pii", "phi")

AuditLevel = Literal["none", "basic", "detailed", "complete"]
AUDIT_LEVELS: tuple[str, ...] = ("none", "basic", "detailed", "complete")

HealthCheckType = Literal["http", "tcp", "custom"]
HEALTH_CHECK_TYPES: tuple[str, ...] = ("http", "tcp", "custom")


_Trait = Annotated[str, Field(max_length=TRAIT_MAX_LENGTH)]
_PluginRef = Annotated[str, Field(max_length=PLUGIN_ID_MAX_LENGTH)]
_Domain = Annotated[str, Field(max_length=DOMAIN_MAX_LENGTH)]
_HipaaControl = Annotated[str, Field(max_length=HIPAA_CONTROL_MAX_LENGTH)]
_EndpointPath = Annotated[str, Field(max_length=ENDPOINT_PATH_MAX_LENGTH)]
_EventType = Annotated[str, Field(max_length=EVENT_TYPE_MAX_LENGTH)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=False)


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


class Security(_Model):
    """Security settings. The platform refuses plugins whose endpoints are unauthenticated."""

    authentication_required: StrictBool = Field(
        description=(
            "Whether the plugin's endpoints require an authenticated caller. Must be true: "
            "Vivified rejects plugins that expose unauthenticated APIs."
        ),
    )
    data_classification: list[DataClassification] = Field(
        max_length=MAX_DATA_CLASSIFICATIONS,
        description=(
            "Sensitivity levels of the data the plugin handles; at least one of public, "
            "internal, confidential, pii, phi. 'pii' requires the handles_pii trait and "
            "'phi' requires the handles_phi trait (and vice versa)."
        ),
    )
    allowed_domains: list[_Domain] = Field(
        default_factory=list,
        max_length=MAX_ALLOWED_DOMAINS,
        description=(
            "External host names the plugin may contact (same meaning as the top-level "
            "allowed_domains; the plugin's domains are the union of both lists). Plain DNS "
            "names only: no scheme, port, path, wildcard or IP address."
        ),
    )
    network_isolation: StrictBool = Field(
        default=True,
        description=(
            "Run the plugin network-isolated: default-deny network policy, traffic only with "
            "the platform, DNS and the allowed domains. Defaults to true; false is reported "
            "as a warning."
        ),
    )


class Compliance(_Model):
    """Compliance and regulatory requirements (HIPAA controls, audit depth, retention)."""

    hipaa_controls: list[_HipaaControl] = Field(
        default_factory=list,
        max_length=MAX_HIPAA_CONTROLS,
        description=(
            "HIPAA Security Rule controls the plugin implements, as citations like "
            "'164.312(a)' or '164.312(a)(1)'. Required (non-empty) for plugins with the "
            "handles_phi trait; every listed control must have this format."
        ),
    )
    audit_level: AuditLevel = Field(
        description=(
            "How much of the plugin's activity the platform audits: none, basic, detailed or "
            "complete. Plugins with the audit_required trait cannot use 'none'."
        ),
    )
    data_retention_days: StrictInt | None = Field(
        default=None,
        ge=1,
        le=RETENTION_MAX_DAYS,
        description=(
            "How many days the plugin retains the data it handles. Plugins with the "
            f"handles_phi trait must set at least {PHI_MIN_RETENTION_DAYS} (seven years)."
        ),
    )


class HealthCheck(_Model):
    """How the platform probes the plugin's health (readiness/liveness in Kubernetes)."""

    type: HealthCheckType = Field(
        default="http",
        description=(
            "Probe kind: 'http' (GET path, expects 200; the default), 'tcp' (connect to the "
            "port) or 'custom' (the plugin reports health itself via heartbeats; not probed)."
        ),
    )
    port: StrictInt | None = Field(
        default=None,
        ge=PORT_MIN,
        le=PORT_MAX,
        description=(
            "Port to probe, 1-65535. Defaults to the plugin's service port (spec.port, else 8000)."
        ),
    )
    path: str | None = Field(
        default=None,
        max_length=ENDPOINT_PATH_MAX_LENGTH,
        description=(
            f"HTTP path to GET for 'http' checks; must start with '/'. Defaults to "
            f"'{DEFAULT_HEALTH_PATH}'. Ignored for 'tcp' and 'custom'."
        ),
    )
    interval_seconds: StrictInt = Field(
        default=DEFAULT_INTERVAL_SECONDS,
        ge=1,
        le=INTERVAL_MAX_SECONDS,
        description=(
            f"Seconds between two probes (1-{INTERVAL_MAX_SECONDS}, default "
            f"{DEFAULT_INTERVAL_SECONDS}). Must be greater than timeout_seconds."
        ),
    )
    timeout_seconds: StrictInt = Field(
        default=DEFAULT_TIMEOUT_SECONDS,
        ge=1,
        le=TIMEOUT_MAX_SECONDS,
        description=(
            f"Seconds before a probe counts as failed (1-{TIMEOUT_MAX_SECONDS}, default "
            f"{DEFAULT_TIMEOUT_SECONDS}). Must be less than interval_seconds."
        ),
    )
    failure_threshold: StrictInt = Field(
        default=DEFAULT_FAILURE_THRESHOLD,
        ge=1,
        le=FAILURE_THRESHOLD_MAX,
        description=(
            "Consecutive failed probes after which the plugin is unhealthy (fewer failures "
            f"make it degraded). 1-{FAILURE_THRESHOLD_MAX}, default "
            f"{DEFAULT_FAILURE_THRESHOLD}."
        ),
    )

    @property
    def effective_path(self) -> str:
        """The HTTP path to probe (``path`` or ``/health``)."""
        return self.path if self.path is not None else DEFAULT_HEALTH_PATH


class Resources(_Model):
    """Resource limits for the plugin's container."""

    memory_limit: StrictInt | None = Field(
        default=None,
        ge=MEMORY_LIMIT_MIN_MB,
        le=MEMORY_LIMIT_MAX_MB,
        description=(
            f"Memory limit in megabytes (MiB), a whole number from {MEMORY_LIMIT_MIN_MB} to "
            f"{MEMORY_LIMIT_MAX_MB}. Becomes the container's memory limit ('<n>Mi')."
        ),
    )
    cpu_limit: float | None = Field(
        default=None,
        strict=True,
        ge=CPU_LIMIT_MIN,
        le=CPU_LIMIT_MAX,
        description=(
            f"CPU limit in cores, a number from {CPU_LIMIT_MIN} to {CPU_LIMIT_MAX:g} "
            "(0.5 = half a core). Becomes the container's CPU limit."
        ),
    )


class Events(_Model):
    """Vivified's extension (not in the seed): the event types a plugin publishes and receives."""

    publishes: list[_EventType] = Field(
        default_factory=list,
        max_length=MAX_EVENT_TYPES,
        description=(
            "Event types the plugin may publish to the core's POST "
            + contract.CORE_EVENTS_PATH
            + ", from the installation's event-type registry (`vivified events list`), "
            "e.g. 'UserCreated'. A pii/phi-classified type needs the handles_pii/handles_phi trait."
        ),
    )
    subscribes: list[_EventType] = Field(
        default_factory=list,
        max_length=MAX_EVENT_TYPES,
        description=(
            "Event types the core delivers to the plugin (HTTP POST to endpoints.events, which "
            "is then required). A pii/phi-classified type needs the handles_pii/handles_phi "
            "trait."
        ),
    )


# --------------------------------------------------------------------------------------------
# The manifest
# --------------------------------------------------------------------------------------------


class PluginManifest(_Model):
    """A Vivified plugin manifest: what the plugin is, what it handles and what it needs."""

    id: str = Field(
        min_length=1,
        max_length=PLUGIN_ID_MAX_LENGTH,
        pattern=PLUGIN_ID_PATTERN,
        description=(
            "Unique plugin identifier: lowercase letters, digits and single hyphens, starting "
            f"with a letter, at most {PLUGIN_ID_MAX_LENGTH} characters (e.g. "
            "'user-management'). Must equal metadata.name of the VivifiedPlugin."
        ),
    )
    name: str = Field(
        min_length=1,
        max_length=NAME_MAX_LENGTH,
        description="Human-readable display name, e.g. 'User Management Plugin'.",
    )
    version: str = Field(
        max_length=VERSION_MAX_LENGTH,
        pattern=SEMVER_PATTERN,
        description=(
            "Plugin version in semantic versioning form MAJOR.MINOR.PATCH, optionally with "
            "pre-release and build metadata (e.g. '1.0.0', '2.1.0-rc.1')."
        ),
    )
    description: str | None = Field(
        default=None,
        max_length=DESCRIPTION_MAX_LENGTH,
        description="Short description of what the plugin does (optional, recommended).",
    )
    contracts: list[Contract] = Field(
        min_length=1,
        max_length=MAX_CONTRACTS,
        description=(
            "Interface contracts the plugin implements; at least one of "
            "CommunicationPlugin, StoragePlugin, IdentityPlugin."
        ),
    )
    traits: list[_Trait] = Field(
        min_length=1,
        max_length=MAX_TRAITS,
        description=(
            "Traits describing the plugin's capabilities, data handling and requirements, "
            "from the platform's trait registry (e.g. handles_pii, audit_required, "
            "external_service). At least one; reserved traits such as admin, system and root "
            "are rejected."
        ),
    )
    dependencies: list[_PluginRef] = Field(
        default_factory=list,
        max_length=MAX_DEPENDENCIES,
        description=(
            "Ids of other plugins this plugin needs (same format as id). A plugin cannot "
            "depend on itself."
        ),
    )
    allowed_domains: list[_Domain] = Field(
        default_factory=list,
        max_length=MAX_ALLOWED_DOMAINS,
        description=(
            "External host names the plugin may contact, e.g. 'api.stripe.com'. Plain DNS "
            "names only: no scheme, port, path, wildcard or IP address; internal, loopback "
            "and blocked names are rejected. Merged with security.allowed_domains."
        ),
    )
    endpoints: dict[str, _EndpointPath] = Field(
        default_factory=dict,
        max_length=MAX_ENDPOINTS,
        description=(
            "Named HTTP endpoints the plugin serves: name -> absolute path starting with '/', "
            "e.g. {health: /health, user_info: /api/users/{id}}."
        ),
    )
    security: Security = Field(
        description="Security settings: authentication and data classification (required).",
    )
    compliance: Compliance = Field(
        description="Compliance settings: HIPAA controls, audit level, data retention.",
    )
    health_check: HealthCheck | None = Field(
        default=None,
        description=(
            "How the platform checks the plugin's health (optional): probe type, port, path, "
            "interval, timeout and failure threshold."
        ),
    )
    resources: Resources | None = Field(
        default=None,
        description=(
            "Memory (MB) and CPU (cores) limits for the plugin's container. When omitted, "
            "operator defaults apply."
        ),
    )

    events: Events | None = Field(
        default=None,
        description=(
            "Vivified's event-lane extension (optional): event types the plugin publishes and "
            "subscribes to. Subscribing requires endpoints.events."
        ),
    )

    @property
    def all_allowed_domains(self) -> tuple[str, ...]:
        """The plugin's domains: union of ``allowed_domains`` and ``security.allowed_domains``.

        Names are normalised (IDNA A-labels, lowercase) and de-duplicated, in first-seen order.
        Entries that are not valid host names are skipped (the policy reports them).
        """
        seen: dict[str, None] = {}
        for raw in (*self.allowed_domains, *self.security.allowed_domains):
            name = normalize_domain(raw)
            if name is not None:
                seen.setdefault(name, None)
        return tuple(seen)
