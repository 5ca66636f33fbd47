"""Operator configuration: one frozen settings model, read from ``VIVIFIED_*`` variables.

``OperatorSettings`` is a pydantic-settings model: every field is declared once, with its type,
its constraints, its section and a docstring (meaning, unit, why this default) that
``vivified operator --print-settings``, docs/operator.md and the chart's schema test all read.
The environment is read in one place, ``OperatorSettings.from_env`` (the CLI passes
``os.environ``): one variable per field, ``VIVIFIED_`` + the field name in upper case, unset or
empty = the default. Constructing ``OperatorSettings(...)`` with keywords never looks at the
process environment. Every error is a ``SettingsError`` (a ``ValueError``) naming the variable
(or the field, for keywords).

The fields are grouped like kopf's settings (``settings.posting``, ``settings.watching``):
``SECTIONS`` lists the groups, each field names its group, and ``settings_by_section`` prints
them. They stay flat attributes (``settings.token_ttl_seconds``) so that the environment names,
the chart's values and every caller keep their spelling.

Decisions recorded here (and in docs/workloads.md):

* ``resource_request_fraction`` (default ``1.0``): requests equal limits, so every plugin pod
  runs in the Guaranteed QoS class. A plugin's declared ``resources`` become a reservation,
  not just a ceiling: the scheduler places it only where the budget really exists and the
  kubelet evicts it last under node pressure. Clusters that prefer density can lower the
  fraction (``0.5`` = requests at half the limits, Burstable QoS).
* ``core_port`` is the *container* port of the platform (core) pods, which is what a
  NetworkPolicy matches. ``0`` means "the port in ``core_url``" (or 80/443 by scheme); set it
  when the core Service maps a different port onto its pods.
* ``platform_namespace_selector`` left empty means ``{"kubernetes.io/metadata.name":
  operator_namespace}``. An empty selector would mean *every namespace*, which is never what
  "the platform" means, so it cannot be configured.
* Plugin pods carry ``app.kubernetes.io/part-of=vivified-plugins`` (not ``vivified``) and
  ``app.kubernetes.io/component=plugin``; a ``platform_pod_selector`` that plugin pods would
  satisfy is rejected, so a plugin can never be mistaken for the platform by a NetworkPolicy.
"""

from __future__ import annotations

import contextvars
import ipaddress
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    JsonValue,
    ValidationError,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

from vivified.names import is_dns1123_label, is_dns1123_subdomain, is_label_key, is_label_value
from vivified_sdk import contract

__all__ = [
    "ENV_PREFIX",
    "PLUGIN_COMMON_LABELS",
    "PLUGIN_ID_LABEL",
    "SECRET_SETTINGS",
    "SECTIONS",
    "DependencyPolicy",
    "OperatorSettings",
    "ProbeMode",
    "SettingsError",
    "env_var_name",
    "format_selector",
    "parse_selector",
    "settings_by_section",
    "split_host_port",
]

ENV_PREFIX = "VIVIFIED_"
#: The core's Service in the default release namespace (``vivified_sdk.contract``).
_DEFAULT_CORE_URL = (
    f"http://{contract.CORE_SERVICE_NAME}.vivified-system.svc:{contract.CORE_HTTP_PORT}"
)

DependencyPolicy = Literal["block", "warn"]
DEPENDENCY_POLICIES: tuple[DependencyPolicy, ...] = ("block", "warn")

#: How the health monitor reaches plugins (docs/health.md): ``direct`` dials the plugin's
#: Service (``<id>.<namespace>.svc``) unless ``probe_address_overrides`` names another
#: address; ``apiserver-proxy`` goes through the API server's service proxy; ``overrides``
#: probes only the plugins listed in ``probe_address_overrides`` (development and tests,
#: where Service DNS does not resolve and nothing else may be dialled).
ProbeMode = Literal["direct", "apiserver-proxy", "overrides"]
PROBE_MODES: tuple[ProbeMode, ...] = ("direct", "apiserver-proxy", "overrides")

#: Labels every plugin pod carries whatever its id. They are deliberately distinct from the
#: platform's own labels (``app.kubernetes.io/part-of=vivified``).
PLUGIN_COMMON_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "app.kubernetes.io/component": "plugin",
        "app.kubernetes.io/managed-by": "vivified-operator",
        "app.kubernetes.io/part-of": "vivified-plugins",
    }
)
#: Label key whose value is the plugin id; present on every plugin pod.
PLUGIN_ID_LABEL = "vivified.dev/plugin"

#: The groups of settings, in the order ``--print-settings`` shows them (kopf groups its own
#: settings the same way: ``settings.posting``, ``settings.watching``, ...).
SECTIONS: tuple[str, ...] = (
    "core",
    "tokens",
    "health",
    "probes",
    "network",
    "dependencies",
    "workloads",
    "peering",
    "webhook",
)
#: Settings whose values are credentials: shown masked. (None today: the settings name Secrets,
#: they never hold one; the set is here so that adding one cannot leak it.)
SECRET_SETTINGS: frozenset[str] = frozenset()


class SettingsError(ValueError):
    """A setting has an unusable value. ``name`` is the field or the environment variable."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


def env_var_name(field_name: str) -> str:
    """The environment variable that sets ``field_name`` (``VIVIFIED_`` + upper case)."""
    return ENV_PREFIX + field_name.upper()


def parse_selector(text: str) -> dict[str, str]:
    """Parse ``key=value,key2=value2`` (whitespace around items ignored) into a dict."""
    result: dict[str, str] = {}
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key:
            raise ValueError(f"expected key=value pairs separated by commas, got {item!r}")
        if key in result:
            raise ValueError(f"label key {key!r} appears twice")
        result[key] = value
    return result


def format_selector(selector: Mapping[str, str]) -> str:
    """The inverse of ``parse_selector`` (sorted by key)."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


# -- field types: parsing and validation declared once, used by the fields ------------------------
def _integer(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError(f"must be an integer, got {value!r}")
    if isinstance(value, str):
        try:
            return int(value.strip(), 10)
        except ValueError:
            raise ValueError(f"must be an integer, got {value!r}") from None
    if isinstance(value, float):
        raise ValueError(f"must be an integer, got {value!r}")
    return value


def _number(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError(f"must be a number, got {value!r}")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError(f"must be a number, got {value!r}") from None
    if isinstance(value, int | float) and not math.isfinite(float(value)):
        raise ValueError(f"must be a finite number, got {value!r}")
    return value


def _choice(options: tuple[str, ...]) -> BeforeValidator:
    def check(value: object) -> object:
        text = value.strip().lower() if isinstance(value, str) else value
        if text not in options:
            raise ValueError(f"must be one of {', '.join(options)}, got {value!r}")
        return text

    return BeforeValidator(check)


def _text(value: str) -> str:
    if not value or value.strip() != value:
        raise ValueError("must be a non-empty string without surrounding whitespace")
    return value


def _namespace(value: str) -> str:
    if not is_dns1123_label(value):
        raise ValueError(f"must be a Kubernetes namespace name (DNS-1123 label), got {value!r}")
    return value


def _object_name(value: str) -> str:
    if not is_dns1123_subdomain(value):
        raise ValueError(f"must be a Kubernetes object name (DNS-1123 subdomain), got {value!r}")
    return value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http:// or https:// URL with a host, got {value!r}")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError("has an invalid port") from None
    return value


def _mount_dir(value: str) -> str:
    ok = (
        value.startswith("/")
        and value.rstrip("/") not in ("", "/tmp")  # noqa: S108 - rejecting it
        and ".." not in value.split("/")
        and "," not in value
        and ":" not in value
    )
    if not ok:
        raise ValueError(f"must be an absolute directory other than / and /tmp, got {value!r}")
    return value


def _ip(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"must be an IP address to bind to, got {value!r}") from None
    return value


def _mapping(value: object) -> object:
    return parse_selector(value) if isinstance(value, str) else value


def _selector(value: Mapping[str, str]) -> Mapping[str, str]:
    for key, item in value.items():
        if not is_label_key(key):
            raise ValueError(f"{key!r} is not a valid label key")
        if not is_label_value(item):
            raise ValueError(f"{item!r} (for {key}) is not a valid label value")
    return MappingProxyType(dict(sorted(value.items())))


def _overrides(value: Mapping[str, str]) -> Mapping[str, str]:
    for key, address in value.items():
        namespace, slash, name = key.partition("/")
        if not (slash and is_dns1123_label(namespace) and is_dns1123_subdomain(name)):
            raise ValueError(f"{key!r} is not namespace/name")
        if split_host_port(address) is None:
            raise ValueError(f"{address!r} (for {key}) is not host:port (IPv6 as [addr]:port)")
    return MappingProxyType(dict(sorted(value.items())))


Int = Annotated[int, BeforeValidator(_integer)]
Positive = Annotated[int, BeforeValidator(_integer), Field(ge=1)]
Count = Annotated[int, BeforeValidator(_integer), Field(ge=0)]
Port = Annotated[int, BeforeValidator(_integer), Field(ge=0, le=65535)]
NonRootId = Annotated[int, BeforeValidator(_integer), Field(ge=1, le=2**31 - 1)]
Number = Annotated[float, BeforeValidator(_number)]
Text = Annotated[str, AfterValidator(_text)]
ObjectName = Annotated[str, AfterValidator(_object_name)]
Selector = Annotated[
    Mapping[str, str], NoDecode, BeforeValidator(_mapping), AfterValidator(_selector)
]
Overrides = Annotated[
    Mapping[str, str], NoDecode, BeforeValidator(_mapping), AfterValidator(_overrides)
]


def _in(section: str, default: Any = None, **constraints: Any) -> Any:
    """A field of ``section`` (its docstring, below it in the class, is its description)."""
    assert section in SECTIONS, section  # noqa: S101 - a programming error, caught by tests
    extra: dict[str, JsonValue] = {"section": section}
    if callable(default):
        return Field(default_factory=default, json_schema_extra=extra, **constraints)
    return Field(default=default, json_schema_extra=extra, **constraints)


def _frozen(items: Mapping[str, str]) -> Any:
    return lambda: MappingProxyType(dict(items))


#: The environment a ``from_env`` call reads (None: keywords only, never ``os.environ``).
_ENVIRON: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "vivified_settings_environ", default=None
)


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' own environment source, over a given mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            dict(self._environ), self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


class OperatorSettings(BaseSettings):
    """Operator configuration. ``OperatorSettings(...)`` with keywords, or ``from_env``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        env_ignore_empty=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
        validate_default=True,
        str_strip_whitespace=False,
    )

    # -- core: where things live --------------------------------------------------------------
    operator_namespace: Annotated[str, AfterValidator(_namespace)] = _in("core", "vivified-system")
    """Namespace of the operator's signing key Secret, JWKS and revocation ConfigMaps (the
    Helm release namespace). Must exist: the operator fails fast instead of creating it."""
    core_url: Annotated[str, AfterValidator(_http_url)] = _in("core", _DEFAULT_CORE_URL)
    """The core's URL as plugins reach it; plugins get it (and its /v1/heartbeat, /v1/jwks,
    /v1/revocations) in their environment. Default: the chart's ``vivified-core`` Service."""
    field_manager: Text = _in("core", "vivified-operator")
    """Server-side apply field manager of everything the operator writes."""
    resync_seconds: Count = _in("core", 600)
    """Seconds between two full resyncs: every plugin is reconciled again even without an
    event, the safety net behind the watches (an unchanged plugin costs no write). 0 = off.
    600 s: an hourly-ish net is enough when watches work, and idle resyncs write nothing."""
    egress_report_seconds: Count = _in("core", 0)
    """Seconds between two reads of the core's proxy allowlist state (``GET
    /v1/proxy/allowlists`` under ``core_url``), the input of ``EgressEnforced``
    (docs/proxy.md). 0 (the default) = never read: plugins with allowed domains show
    AllowlistNotLoaded. The chart sets 5 when it deploys the core; an operator started by hand
    (tests, the demo) then never looks up the core's Service name."""
    events_status_seconds: Count = _in("core", 0)
    """Seconds between two reads of the event lane's counts (``GET /v1/events/status`` under
    ``core_url``, one request for all plugins), the input of ``status.events.pending`` and
    ``deadLettered`` (docs/events.md). 0 (the default) = never read: no counts in status. The
    chart sets 10 when it deploys the core with the event lane; a status is written only when
    a count changed, so a busy subscriber costs at most one write per period."""

    # -- tokens: plugin identity ---------------------------------------------------------------
    token_ttl_seconds: Annotated[int, BeforeValidator(_integer), Field(ge=60)] = _in(
        "tokens", 86400
    )
    """Lifetime of a plugin token, in seconds (at least 60). One day: short enough that a
    leaked copy expires soon, long enough that a brief operator outage breaks no plugin."""
    token_refresh_fraction: Annotated[float, BeforeValidator(_number), Field(gt=0, lt=1)] = _in(
        "tokens", 0.8
    )
    """Re-mint a token once this fraction of its lifetime has passed (0..1, exclusive):
    0.8 leaves a fifth of the lifetime for the new token to reach the pod's mounted Secret."""
    token_issuer: Text = _in("tokens", contract.DEFAULT_ISSUER)
    """``iss`` of plugin tokens (what verifiers expect; ``vivified_sdk.contract``)."""
    token_audience: Text = _in("tokens", contract.DEFAULT_AUDIENCE)
    """``aud`` of plugin tokens (``vivified_sdk.contract``)."""
    token_mount_dir: Annotated[str, AfterValidator(_mount_dir)] = _in("tokens", contract.MOUNT_DIR)
    """Directory the token Secret is mounted at in plugin containers (absolute, not / or
    /tmp); the plugin finds it through PLUGIN_TOKEN_FILE anyway."""
    token_leeway_seconds: Count = _in("tokens", 30)
    """Clock skew, in seconds, verifiers allow on ``exp``/``nbf`` (smaller than the TTL)."""
    signing_key_secret: ObjectName = _in("tokens", "vivified-signing-key")
    """Secret (in ``operator_namespace``) holding the signing key ring; only the operator
    reads it."""
    signing_key_max_age_seconds: Positive = _in("tokens", 30 * 86400)
    """Age in seconds after which the signing key is rotated: 30 days, a common key-rotation
    period that keeps the JWKS short."""
    signing_key_publish_ahead_seconds: Count = _in("tokens", 86400)
    """Seconds the next key is published in the JWKS before it signs anything (two-step
    rotation), so verifiers with a cached JWKS already know it; smaller than the max age."""
    jwks_configmap: ObjectName = _in("tokens", "vivified-jwks")
    """ConfigMap (in ``operator_namespace``) with the public JWKS."""
    revocations_configmap: ObjectName = _in("tokens", "vivified-revoked-tokens")
    """ConfigMap (in ``operator_namespace``) with the revoked token ids until their expiry."""

    # -- health --------------------------------------------------------------------------------
    health_interval_seconds: Positive = _in("health", 30)
    """Seconds between probes when the manifest sets none (30 s, kubelet-like)."""
    health_timeout_seconds: Positive = _in("health", 5)
    """Probe timeout in seconds when the manifest sets none."""
    health_failure_threshold: Positive = _in("health", 3)
    """Failed probes until unhealthy when the manifest sets none (one is only degraded)."""
    health_status_refresh_seconds: Positive = _in("health", 60)
    """Minimum seconds between two status writes that do not change ``health`` (metrics,
    failure counts, heartbeat times); a change of health is always written at once. Keeps
    the API writes per plugin bounded whatever the probe interval."""
    unhealthy_disable_after: Count = _in("health", 0)
    """Disable (``spec.enabled=false``) a plugin after this many checks in the unhealthy
    state; 0 = never (the default: a shared outage must not disable every plugin)."""

    # -- probes --------------------------------------------------------------------------------
    probe_mode: Annotated[ProbeMode, _choice(PROBE_MODES)] = _in("probes", "direct")
    """How plugins are reached: ``direct`` (their Service; in a pod), ``apiserver-proxy``
    (through the API server; the default out of the cluster, where ``direct`` is refused) or
    ``overrides`` (only the addresses below). Probe addresses never come from a plugin."""
    probe_address_overrides: Overrides = _in("probes", _frozen({}))
    """``namespace/name=host:port,...``: probe that plugin at this address instead."""
    probe_concurrency: Positive = _in("probes", 64)
    """Probes in flight at once, over all plugins (bounds sockets and CPU at scale)."""

    # -- network: who may talk to whom -----------------------------------------------------------
    core_port: Port = _in("network", 0)
    """Container port of the core pods, for the plugins' NetworkPolicy egress; 0 = the port
    of ``core_url`` (a NetworkPolicy sees the pod port, not the Service port)."""
    platform_pod_selector: Selector = _in(
        "network", _frozen({"app.kubernetes.io/part-of": "vivified"})
    )
    """Labels of the platform's pods (core, operator): the only pods plugins may reach and be
    reached from. Must not match plugin pods."""
    platform_namespace_selector: Selector = _in("network", _frozen({}))
    """Labels of the platform's namespace; empty = ``kubernetes.io/metadata.name`` =
    ``operator_namespace`` (an empty selector would match every namespace)."""
    dns_namespace_selector: Selector = _in(
        "network", _frozen({"kubernetes.io/metadata.name": "kube-system"})
    )
    """Namespace of the cluster DNS pods plugins may query (kube-dns lives in kube-system)."""
    dns_pod_selector: Selector = _in("network", _frozen({"k8s-app": "kube-dns"}))
    """Labels of the cluster DNS pods (``k8s-app=kube-dns`` also matches CoreDNS installs)."""

    # -- dependencies --------------------------------------------------------------------------
    dependency_policy: Annotated[DependencyPolicy, _choice(DEPENDENCY_POLICIES)] = _in(
        "dependencies", "block"
    )
    """``block``: a plugin starts only once its dependencies are Active; ``warn``: it starts
    anyway and the condition says what is missing."""

    # -- workloads: plugin pod defaults ----------------------------------------------------------
    default_memory_limit_mb: Annotated[int, BeforeValidator(_integer), Field(ge=4)] = _in(
        "workloads", 256
    )
    """Memory limit in MB for plugins whose manifest sets none."""
    default_cpu_limit: Annotated[float, BeforeValidator(_number), Field(ge=0.001)] = _in(
        "workloads", 0.5
    )
    """CPU limit in cores for plugins whose manifest sets none."""
    resource_request_fraction: Annotated[float, BeforeValidator(_number), Field(gt=0, le=1)] = _in(
        "workloads", 1.0
    )
    """requests = ceil(limit x fraction); 1.0 = Guaranteed QoS (see the module docstring)."""
    run_as_user: NonRootId = _in("workloads", 65532)
    """Numeric, non-root uid of plugin containers (65532: the distroless ``nonroot`` user)."""
    run_as_group: NonRootId = _in("workloads", 65532)
    """Numeric, non-root gid of plugin containers."""
    fs_group: NonRootId = _in("workloads", 65532)
    """fsGroup of plugin pods: lets the plugin read its 0440 token files."""
    tmp_size_limit_mb: Positive = _in("workloads", 64)
    """Size limit in MB of the writable /tmp emptyDir (the root filesystem is read-only)."""
    termination_grace_period_seconds: Count = _in("workloads", 30)
    """Seconds a plugin pod gets to stop (the Kubernetes default)."""
    revision_history_limit: Count = _in("workloads", 3)
    """Old ReplicaSets kept per plugin Deployment (fewer objects at scale than the default
    10)."""

    # -- peering: high availability (kopf peering) -----------------------------------------------
    peering_name: str = _in("peering", "")
    """kopf peering object name; empty = standalone (one operator). The chart sets it when
    ``peering.enabled``."""
    peering_priority: Count = _in("peering", 0)
    """This replica's peering priority; 0 = from its start time, so the oldest replica leads
    and a restarted one stands by (equal priorities make kopf pause every replica)."""
    peering_lifetime_seconds: Positive = _in("peering", 30)
    """Seconds a replica's peering keep-alive stays valid: a killed leader is replaced within
    about this long (keep-alives are sent 5-10 s more often)."""

    # -- webhook: the admission webhook ----------------------------------------------------------
    webhook_port: Port = _in("webhook", 0)
    """Port of the admission webhook server; 0 = not served (the chart sets it)."""
    webhook_addr: Annotated[str, AfterValidator(_ip)] = _in("webhook", "0.0.0.0")  # noqa: S104
    """Address the webhook binds to (an IP; in a pod the API server comes via the Service)."""
    webhook_cert_dir: str = _in("webhook", "")
    """Directory with tls.crt and tls.key for the webhook; required when it is served."""
    webhook_max_in_flight: Positive = _in("webhook", 32)
    """Admission reviews the webhook works on at once; more are answered 429 at once (load
    shedding: a queue of at most this many, instead of latency that grows until the API
    server's timeout)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Keywords only; the environment comes in through ``from_env`` (never implicitly).
        environ = _ENVIRON.get()
        if environ is None:
            return (init_settings,)
        return (init_settings, _MappingEnvSource(settings_cls, environ))

    def __init__(self, **values: Any) -> None:
        reading_env = _ENVIRON.get() is not None
        try:
            super().__init__(**values)
        except ValidationError as error:
            first = error.errors()[0]
            cause = (first.get("ctx") or {}).get("error")
            if isinstance(cause, SettingsError):  # a cross-field check names its own field
                name, message = cause.name, cause.message
            else:
                name = str(first["loc"][0]) if first["loc"] else "settings"
                message = _message(first)
            raise SettingsError(env_var_name(name) if reading_env else name, message) from None
        except SettingsError as error:
            raise SettingsError(
                env_var_name(error.name) if reading_env else error.name, error.message
            ) from None

    @model_validator(mode="after")
    def _consistent(self) -> OperatorSettings:
        if not self.platform_namespace_selector:
            self.__dict__["platform_namespace_selector"] = MappingProxyType(
                {"kubernetes.io/metadata.name": self.operator_namespace}
            )
        for name in ("platform_pod_selector", "dns_namespace_selector", "dns_pod_selector"):
            if not getattr(self, name):
                raise SettingsError(name, "must select something (an empty selector matches all)")
        if self.token_leeway_seconds >= self.token_ttl_seconds:
            raise SettingsError("token_leeway_seconds", "must be smaller than token_ttl_seconds")
        if self.signing_key_publish_ahead_seconds >= self.signing_key_max_age_seconds:
            raise SettingsError(
                "signing_key_publish_ahead_seconds",
                "must be smaller than signing_key_max_age_seconds",
            )
        selector = self.platform_pod_selector
        if PLUGIN_ID_LABEL in selector or all(
            PLUGIN_COMMON_LABELS.get(k) == v for k, v in selector.items()
        ):
            raise SettingsError(
                "platform_pod_selector",
                "would match plugin pods; choose labels only platform pods carry "
                "(plugin pods are labelled app.kubernetes.io/part-of=vivified-plugins)",
            )
        if self.webhook_port and not self.webhook_cert_dir:
            raise SettingsError(
                "webhook_cert_dir", "must be set when the webhook is served (webhook_port)"
            )
        return self

    # -- the environment -------------------------------------------------------------------------
    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> OperatorSettings:
        """Build settings from ``VIVIFIED_<FIELD>`` variables; unset or empty = default.

        Unrelated variables (including other ``VIVIFIED_*`` names) are ignored.
        Raises ``SettingsError`` whose ``name`` is the offending variable.
        """
        ours = {k: v.strip() for k, v in environ.items() if k.startswith(ENV_PREFIX) and v.strip()}
        token = _ENVIRON.set(ours)
        try:
            return cls()
        finally:
            _ENVIRON.reset(token)

    def to_env(self) -> dict[str, str]:
        """Every setting as ``VIVIFIED_*`` variables (``from_env(to_env())`` round-trips)."""
        out: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, Mapping):
                text = format_selector(value)
            elif isinstance(value, float):
                text = repr(value)
            else:
                text = str(value)
            out[env_var_name(name)] = text
        return out

    def replace(self, **changes: Any) -> OperatorSettings:
        """A copy with ``changes``, validated like any other settings."""
        current = {name: getattr(self, name) for name in type(self).model_fields}
        return type(self)(**{**current, **changes})

    # -- derived values --------------------------------------------------------------------------
    @property
    def resolved_core_port(self) -> int:
        """Container port of the core pods: ``core_port``, else the port of ``core_url``."""
        if self.core_port:
            return self.core_port
        parts = urlsplit(self.core_url)
        if parts.port is not None:
            return parts.port
        return 443 if parts.scheme == "https" else 80

    @property
    def token_file(self) -> str:
        """Absolute path of the token file inside plugin containers."""
        return self.token_mount_dir.rstrip("/") + "/" + contract.TOKEN_FILE_NAME

    @property
    def jwks_file(self) -> str:
        """Absolute path of the JWKS file inside plugin containers."""
        return self.token_mount_dir.rstrip("/") + "/" + contract.JWKS_FILE_NAME


def _message(error: Any) -> str:
    """pydantic's error, in the words the operator's users see (and the variable's value)."""
    kind, ctx = error["type"], error.get("ctx") or {}
    got = f", got {error['input']!r}" if "input" in error else ""
    if kind == "greater_than_equal":
        bound = ctx.get("ge")
        if bound == 1:
            return f"must be a positive integer{got}"
        if bound == 0:
            return f"must be an integer >= 0{got}"
        return f"must be at least {bound}{got}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}{got}"
    if kind == "greater_than":
        return f"must be greater than {ctx.get('gt')}{got}"
    if kind == "less_than":
        return f"must be less than {ctx.get('lt')}{got}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return f"{error['msg']}{got}"


def split_host_port(address: str) -> tuple[str, int] | None:
    """``host:port`` / ``[v6]:port`` → ``(host, port)``; None when it is not that.

    The host is an IP address or a DNS name (lowercase letters, digits, hyphens, dots).
    """
    host, colon, port_text = address.rpartition(":")
    if not colon or not port_text.isdigit() or len(port_text) > 5:
        return None
    port = int(port_text)
    if not 1 <= port <= 65535:
        return None
    if host.startswith("[") and host.endswith("]"):
        inner = host[1:-1]
        try:
            return (inner, port) if ipaddress.ip_address(inner).version == 6 else None
        except ValueError:
            return None
    try:
        return (host, port) if ipaddress.ip_address(host).version == 4 else None
    except ValueError:
        pass
    if is_dns1123_subdomain(host):
        return host, port
    return None


def field_section(name: str) -> str:
    """The section a setting belongs to."""
    extra = OperatorSettings.model_fields[name].json_schema_extra
    return str(extra["section"]) if isinstance(extra, dict) else "core"


def settings_by_section(settings: OperatorSettings) -> dict[str, dict[str, str]]:
    """Every effective setting as ``VIVIFIED_*`` text, grouped by section, secrets masked."""
    env = settings.to_env()
    grouped: dict[str, dict[str, str]] = {name: {} for name in SECTIONS}
    for name in type(settings).model_fields:
        value = "********" if name in SECRET_SETTINGS else env[env_var_name(name)]
        grouped[field_section(name)][env_var_name(name)] = value
    return grouped
