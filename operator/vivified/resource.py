"""The ``VivifiedPlugin`` custom resource: names, the ``spec`` model and the ``status`` model.

``PluginSpec`` is what users write; ``PluginStatus`` is what the operator reports. Both are the
source of the generated CRD schema (:mod:`vivified.crd`). Status fields are camelCase on the
wire (Kubernetes convention) and snake_case in Python::

    PluginStatus(phase="Active", ready_replicas=1).model_dump(by_alias=True, exclude_none=True)

Use :func:`vivified.policy.validate_spec` to validate a spec with every rule applied.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StrictBool, StrictInt
from pydantic.alias_generators import to_camel

from vivified.manifest import PORT_MAX, PORT_MIN, PluginManifest
from vivified_sdk import contract

GROUP = "vivified.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "VivifiedPlugin"
PLURAL = "vivifiedplugins"
SINGULAR = "vivifiedplugin"
SHORT_NAMES = ["vp", "vplugin"]
CATEGORIES = ["vivified"]
CRD_NAME = f"{PLURAL}.{GROUP}"
#: The operator's finalizer: added at admission by the mutating webhook (or by kopf, when the
#: webhook is not installed), removed by clean-up once the plugin's token is revoked.
FINALIZER = f"{GROUP}/finalizer"

DEFAULT_PORT = 8000
MAX_REPLICAS = 20
MAX_ENV_VARS = 64
ENV_VALUE_MAX_LENGTH = 32768
IMAGE_MAX_LENGTH = 512

#: Environment variables the operator sets itself; users may not override them.
RESERVED_ENV_NAMES = frozenset(
    {contract.ENV_PLUGIN_ID, contract.ENV_TOKEN_FILE, contract.ENV_CORE_URL}
)
RESERVED_ENV_PREFIX = contract.RESERVED_ENV_PREFIX

ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"

#: An OCI image reference: [registry[:port]/]path[:tag][@digest] (distribution grammar,
#: simplified; RE2-compatible).
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
IMAGE_PATTERN = (
    rf"^(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*(?::{_TAG})?(?:@{_DIGEST})?$"
)


class EnvVar(BaseModel):
    """An extra environment variable for the plugin container."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1,
        max_length=256,
        pattern=ENV_NAME_PATTERN,
        description=(
            "Variable name (letters, digits and '_', not starting with a digit). "
            f"{contract.ENV_PLUGIN_ID}, {contract.ENV_TOKEN_FILE} and names starting with "
            f"{contract.RESERVED_ENV_PREFIX} are set by the operator and cannot be used."
        ),
    )
    value: str = Field(
        default="",
        max_length=ENV_VALUE_MAX_LENGTH,
        description="Variable value (a string; quote numbers and booleans in YAML).",
    )


class PluginSpec(BaseModel):
    """Desired state of a Vivified plugin: its manifest and how to run it."""

    model_config = ConfigDict(extra="forbid")

    manifest: PluginManifest = Field(
        description=(
            "The plugin manifest, verbatim as in the Vivified documentation (snake_case "
            "keys). Validated against the platform's security policy; its id must equal "
            "metadata.name."
        ),
    )
    image: str = Field(
        min_length=1,
        max_length=IMAGE_MAX_LENGTH,
        pattern=IMAGE_PATTERN,
        description=(
            "Container image of the plugin, e.g. 'ghcr.io/acme/user-management:1.0.0'. Pin a "
            "tag or digest."
        ),
    )
    replicas: StrictInt = Field(
        default=1,
        ge=0,
        le=MAX_REPLICAS,
        description=f"Number of plugin pods, 0-{MAX_REPLICAS} (default 1).",
    )
    enabled: StrictBool = Field(
        default=True,
        description=(
            "Whether the plugin is active. false disables it: no pods run, its token is "
            "revoked, the resource is kept."
        ),
    )
    port: StrictInt | None = Field(
        default=None,
        ge=PORT_MIN,
        le=PORT_MAX,
        description=(
            f"Port the plugin listens on (1-65535). Defaults to manifest.health_check.port, "
            f"else {DEFAULT_PORT}."
        ),
    )
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=MAX_ENV_VARS,
        description="Extra environment variables for the plugin container (name and value).",
    )

    @property
    def effective_port(self) -> int:
        """``port``, else ``manifest.health_check.port``, else 8000."""
        if self.port is not None:
            return self.port
        hc = self.manifest.health_check
        if hc is not None and hc.port is not None:
            return hc.port
        return DEFAULT_PORT


# --------------------------------------------------------------------------------------------
# Status
# --------------------------------------------------------------------------------------------

Phase = Literal["Pending", "Active", "Disabled", "Invalid"]
Health = Literal["unknown", "healthy", "degraded", "unhealthy"]
ConditionStatus = Literal["True", "False", "Unknown"]

_DATE_TIME: dict[str, JsonValue] = {"format": "date-time"}


class _StatusModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Condition(_StatusModel):
    """A standard Kubernetes condition (Ready summarises the others)."""

    type: str = Field(description="Condition type, e.g. Ready, ManifestValid, TokenIssued.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str | None = Field(default=None, description="CamelCase reason for the status.")
    message: str | None = Field(default=None, description="Human-readable details.")
    last_transition_time: str | None = Field(
        default=None,
        json_schema_extra=_DATE_TIME,
        description="When the status last changed (RFC 3339).",
    )
    observed_generation: int | None = Field(
        default=None, description="metadata.generation the condition was computed from."
    )


class ValidationErrorItem(_StatusModel):
    """One policy violation of the spec."""

    field: str = Field(description="Dotted path of the offending field, e.g. spec.manifest.id.")
    message: str = Field(description="What is wrong and how to fix it.")


class TokenStatus(_StatusModel):
    """The plugin's current JWT (the token itself is only in the Secret)."""

    secret_name: str | None = Field(default=None, description="Secret holding the token.")
    key_id: str | None = Field(default=None, description="kid of the signing key.")
    expires_at: str | None = Field(
        default=None, json_schema_extra=_DATE_TIME, description="Token expiry (RFC 3339)."
    )
    jti: str | None = Field(default=None, description="Token id (jti claim).")


class EventsStatus(_StatusModel):
    """The plugin's event-lane permissions and counts (docs/events.md)."""

    publishes: list[str] = Field(
        default_factory=list, description="Event types it may publish (events.publishes)."
    )
    subscribes: list[str] = Field(
        default_factory=list, description="Event types delivered to it (events.subscribes)."
    )
    pending: int | None = Field(
        default=None, description="Events stored for it and not yet acknowledged by it."
    )
    dead_lettered: int | None = Field(
        default=None, description="Its events in the dead-letter stream (delivery gave up)."
    )


class PermissionsStatus(_StatusModel):
    """Whom the plugin may call and who may call it, through the core's operator lane.

    Computed by the operator from the same pure policy the core enforces
    (``vivified.policy.invoke.effective_permissions``): the static rules only (dependency,
    data-classification traits). At call time both must also be Active and the target not
    unhealthy, and the operation must be declared.
    """

    may_call: list[str] = Field(
        default_factory=list, description="Plugin ids this plugin may call (sorted)."
    )
    callable_by: list[str] = Field(
        default_factory=list, description="Plugin ids that may call this plugin (sorted)."
    )


class PluginStatus(_StatusModel):
    """Observed state of the plugin, written by the operator."""

    observed_generation: int | None = Field(
        default=None, description="metadata.generation last processed by the operator."
    )
    phase: Phase | None = Field(
        default=None, description="Lifecycle phase: Pending, Active, Disabled or Invalid."
    )
    health: Health | None = Field(
        default=None, description="Health: unknown, healthy, degraded or unhealthy."
    )
    ready: str | None = Field(
        default=None, description="Ready pods out of desired, e.g. '1/1' (for kubectl get)."
    )
    ready_replicas: int | None = Field(default=None, description="Pods ready to serve.")
    conditions: list[Condition] = Field(
        default_factory=list, description="Current conditions; Ready is the summary."
    )
    validation_errors: list[ValidationErrorItem] = Field(
        default_factory=list,
        description="Every policy violation of the spec (empty when the spec is valid).",
    )
    token: TokenStatus | None = Field(default=None, description="The plugin's current token.")
    events: EventsStatus | None = Field(
        default=None, description="Event lane: effective permissions, pending, dead-lettered."
    )
    permissions: PermissionsStatus | None = Field(
        default=None,
        description="Operator-lane permissions: whom it may call, who may call it.",
    )
    consecutive_failures: int | None = Field(
        default=None, description="Consecutive failed health probes."
    )
    last_error: str | None = Field(default=None, description="Last health or reconcile error.")
    last_probe_time: str | None = Field(
        default=None, json_schema_extra=_DATE_TIME, description="Time of the last health probe."
    )
    last_heartbeat_time: str | None = Field(
        default=None, json_schema_extra=_DATE_TIME, description="Time of the last heartbeat."
    )
    metrics: dict[str, Any] | None = Field(
        default=None, description="Free-form metrics reported by the plugin's health endpoint."
    )


def status_patch_body(**fields: Any) -> dict[str, Any]:
    """What a status writer sends: ``PluginStatus`` built by field name, dumped by alias.

    Only the fields given are in the result (a ``None`` given stays: in a merge patch it removes
    the field), so the model that generates the CRD is the one every writer goes through; a
    field it does not know fails here instead of being pruned by the API server in silence.
    """
    unknown = set(fields) - set(PluginStatus.model_fields)
    if unknown:
        raise ValueError(f"not status fields: {sorted(unknown)}")
    return PluginStatus.model_validate(fields).model_dump(
        mode="json", by_alias=True, exclude_unset=True
    )
