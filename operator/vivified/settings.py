"""Operator configuration: one frozen value, built from defaults or ``VIVIFIED_*`` variables.

Every field has a default that works for a standard install (the Helm chart's namespace,
the core's Service, kube-dns in ``kube-system``). ``OperatorSettings.from_env`` reads one
environment variable per field, named ``VIVIFIED_`` + the field name in upper case, and
raises ``SettingsError`` (a ``ValueError``) naming the variable when a value is unusable.

Selectors are written ``key=value,key2=value2`` in the environment.

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

import ipaddress
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

from vivified.names import is_dns1123_label, is_dns1123_subdomain, is_label_key, is_label_value
from vivified_sdk import contract

__all__ = [
    "ENV_PREFIX",
    "PLUGIN_COMMON_LABELS",
    "PLUGIN_ID_LABEL",
    "DependencyPolicy",
    "OperatorSettings",
    "ProbeMode",
    "SettingsError",
    "env_var_name",
    "format_selector",
    "parse_selector",
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


class SettingsError(ValueError):
    """A setting has an unusable value. ``name`` is the field or the environment variable."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


def env_var_name(field_name: str) -> str:
    """The environment variable that sets ``field_name`` (``VIVIFIED_`` + upper case)."""
    return ENV_PREFIX + field_name.upper()


def _frozen_map(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(sorted(value.items())))


_label_key_ok = is_label_key
_label_value_ok = is_label_value


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


@dataclass(frozen=True)
class OperatorSettings:
    """Operator configuration. Construct with keywords or ``OperatorSettings.from_env``."""

    # -- where things live -------------------------------------------------------------------
    operator_namespace: str = "vivified-system"
    core_url: str = _DEFAULT_CORE_URL
    #: Container port of the core pods (NetworkPolicy egress). 0 = derive from ``core_url``.
    core_port: int = 0
    field_manager: str = "vivified-operator"

    # -- workload defaults -------------------------------------------------------------------
    default_memory_limit_mb: int = 256
    default_cpu_limit: float = 0.5
    #: requests = ceil(limit * fraction). 1.0 = Guaranteed QoS (see module docstring).
    resource_request_fraction: float = 1.0
    run_as_user: int = 65532
    run_as_group: int = 65532
    fs_group: int = 65532
    tmp_size_limit_mb: int = 64
    termination_grace_period_seconds: int = 30
    revision_history_limit: int = 3

    # -- who may talk to whom ----------------------------------------------------------------
    platform_pod_selector: Mapping[str, str] = field(
        default_factory=lambda: _frozen_map({"app.kubernetes.io/part-of": "vivified"})
    )
    #: Empty = ``{"kubernetes.io/metadata.name": operator_namespace}``.
    platform_namespace_selector: Mapping[str, str] = field(default_factory=lambda: _frozen_map({}))
    dns_namespace_selector: Mapping[str, str] = field(
        default_factory=lambda: _frozen_map({"kubernetes.io/metadata.name": "kube-system"})
    )
    dns_pod_selector: Mapping[str, str] = field(
        default_factory=lambda: _frozen_map({"k8s-app": "kube-dns"})
    )

    # -- plugin identity tokens --------------------------------------------------------------
    token_ttl_seconds: int = 86400
    token_refresh_fraction: float = 0.8
    token_issuer: str = contract.DEFAULT_ISSUER
    token_audience: str = contract.DEFAULT_AUDIENCE
    token_mount_dir: str = contract.MOUNT_DIR
    token_leeway_seconds: int = 30
    signing_key_secret: str = "vivified-signing-key"  # noqa: S105
    #: Age after which the operator rotates the signing key.
    signing_key_max_age_seconds: int = 30 * 86400
    #: How long before rotation the next key is published in the JWKS (two-phase rotation).
    signing_key_publish_ahead_seconds: int = 86400
    jwks_configmap: str = "vivified-jwks"
    revocations_configmap: str = "vivified-revoked-tokens"

    # -- lifecycle / health ------------------------------------------------------------------
    dependency_policy: DependencyPolicy = "block"
    health_interval_seconds: int = 30
    health_timeout_seconds: int = 5
    health_failure_threshold: int = 3
    #: See ``ProbeMode``. Probe addresses come only from here, never from a VivifiedPlugin.
    probe_mode: ProbeMode = "direct"
    #: ``namespace/name=host:port,...``: probe that plugin at this address instead.
    probe_address_overrides: Mapping[str, str] = field(default_factory=lambda: _frozen_map({}))
    #: Probes in flight at once, over all plugins.
    probe_concurrency: int = 64
    #: Minimum seconds between two status writes that do not change ``health`` (metrics,
    #: failure counts, heartbeat times); a change of health is always written at once.
    health_status_refresh_seconds: int = 60
    #: Disable (``spec.enabled=false``) a plugin after this many probes in the unhealthy
    #: state; 0 = never (the default).
    unhealthy_disable_after: int = 0
    #: Seconds between two full resyncs: every plugin is reconciled again even without an
    #: event, the safety net behind the watches (an unchanged plugin costs no write). 0 = off.
    resync_seconds: int = 600
    #: Seconds between two reads of the core's proxy allowlist state
    #: (``GET /v1/proxy/allowlists`` under ``core_url``), the input of ``EgressEnforced``
    #: (docs/proxy.md). 0 (the default) = never read: plugins with allowed domains show
    #: AllowlistNotLoaded. The chart sets 5 when it deploys the core; an operator started by
    #: hand (tests, the demo) then never looks up the core's Service name.
    egress_report_seconds: int = 0

    def __post_init__(self) -> None:
        for name in (
            "platform_pod_selector",
            "platform_namespace_selector",
            "dns_namespace_selector",
            "dns_pod_selector",
        ):
            value = getattr(self, name)
            if not isinstance(value, Mapping):
                raise SettingsError(name, "must be a mapping of label keys to values")
            object.__setattr__(self, name, _frozen_map(value))
        if not isinstance(self.probe_address_overrides, Mapping):
            raise SettingsError(
                "probe_address_overrides", "must be a mapping of namespace/name to host:port"
            )
        object.__setattr__(
            self, "probe_address_overrides", _frozen_map(self.probe_address_overrides)
        )
        if not self.platform_namespace_selector:
            object.__setattr__(
                self,
                "platform_namespace_selector",
                _frozen_map({"kubernetes.io/metadata.name": self.operator_namespace}),
            )
        self._validate()

    # -- derived values ----------------------------------------------------------------------
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

    # -- validation --------------------------------------------------------------------------
    def _validate(self) -> None:
        def need(ok: bool, name: str, message: str) -> None:
            if not ok:
                raise SettingsError(name, message)

        for name in ("operator_namespace",):
            v = getattr(self, name)
            need(
                isinstance(v, str) and is_dns1123_label(v),
                name,
                f"must be a Kubernetes namespace name (DNS-1123 label), got {v!r}",
            )
        for name in (
            "signing_key_secret",
            "jwks_configmap",
            "revocations_configmap",
        ):
            v = getattr(self, name)
            need(
                isinstance(v, str) and is_dns1123_subdomain(v),
                name,
                f"must be a Kubernetes object name (DNS-1123 subdomain), got {v!r}",
            )
        parts = urlsplit(self.core_url) if isinstance(self.core_url, str) else None
        need(
            parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname),
            "core_url",
            f"must be an http:// or https:// URL with a host, got {self.core_url!r}",
        )
        try:
            _ = parts.port if parts is not None else None
        except ValueError:
            raise SettingsError("core_url", "has an invalid port") from None
        need(
            _is_int(self.core_port) and 0 <= self.core_port <= 65535,
            "core_port",
            f"must be a port number 1-65535 (or 0 to derive it from core_url), "
            f"got {self.core_port!r}",
        )
        for name in ("field_manager", "token_issuer", "token_audience"):
            v = getattr(self, name)
            need(
                isinstance(v, str) and v.strip() == v and bool(v),
                name,
                "must be a non-empty string without surrounding whitespace",
            )
        need(
            _is_int(self.default_memory_limit_mb) and self.default_memory_limit_mb >= 4,
            "default_memory_limit_mb",
            f"must be an integer number of MB >= 4, got {self.default_memory_limit_mb!r}",
        )
        need(
            _is_number(self.default_cpu_limit) and self.default_cpu_limit >= 0.001,
            "default_cpu_limit",
            f"must be a number of CPU cores >= 0.001, got {self.default_cpu_limit!r}",
        )
        need(
            _is_number(self.resource_request_fraction) and 0 < self.resource_request_fraction <= 1,
            "resource_request_fraction",
            f"must be a number in (0, 1], got {self.resource_request_fraction!r}",
        )
        for name in ("run_as_user", "run_as_group", "fs_group"):
            v = getattr(self, name)
            need(
                _is_int(v) and 1 <= v <= 2**31 - 1,
                name,
                f"must be a non-root numeric id (1..2147483647), got {v!r}",
            )
        for name in (
            "tmp_size_limit_mb",
            "token_ttl_seconds",
            "signing_key_max_age_seconds",
            "health_interval_seconds",
            "health_timeout_seconds",
            "health_failure_threshold",
            "probe_concurrency",
            "health_status_refresh_seconds",
        ):
            v = getattr(self, name)
            need(_is_int(v) and v >= 1, name, f"must be a positive integer, got {v!r}")
        for name in (
            "termination_grace_period_seconds",
            "revision_history_limit",
            "token_leeway_seconds",
            "signing_key_publish_ahead_seconds",
            "unhealthy_disable_after",
            "resync_seconds",
            "egress_report_seconds",
        ):
            v = getattr(self, name)
            need(_is_int(v) and v >= 0, name, f"must be an integer >= 0, got {v!r}")
        need(
            self.token_ttl_seconds >= 60,
            "token_ttl_seconds",
            f"must be at least 60 seconds, got {self.token_ttl_seconds!r}",
        )
        need(
            self.token_leeway_seconds < self.token_ttl_seconds,
            "token_leeway_seconds",
            "must be smaller than token_ttl_seconds",
        )
        need(
            self.signing_key_publish_ahead_seconds < self.signing_key_max_age_seconds,
            "signing_key_publish_ahead_seconds",
            "must be smaller than signing_key_max_age_seconds",
        )
        need(
            _is_number(self.token_refresh_fraction) and 0 < self.token_refresh_fraction < 1,
            "token_refresh_fraction",
            f"must be a number strictly between 0 and 1, got {self.token_refresh_fraction!r}",
        )
        mount = self.token_mount_dir
        need(
            isinstance(mount, str)
            and mount.startswith("/")
            and mount.rstrip("/") not in ("", "/tmp")  # noqa: S108 - rejecting it
            and ".." not in mount.split("/")
            and "," not in mount
            and ":" not in mount,
            "token_mount_dir",
            f"must be an absolute directory other than / and /tmp, got {mount!r}",
        )
        need(
            self.dependency_policy in DEPENDENCY_POLICIES,
            "dependency_policy",
            f"must be one of {', '.join(DEPENDENCY_POLICIES)}, got {self.dependency_policy!r}",
        )
        need(
            self.probe_mode in PROBE_MODES,
            "probe_mode",
            f"must be one of {', '.join(PROBE_MODES)}, got {self.probe_mode!r}",
        )
        for key, address in self.probe_address_overrides.items():
            need(
                isinstance(key, str) and _plugin_ref_ok(key),
                "probe_address_overrides",
                f"{key!r} is not namespace/name",
            )
            need(
                isinstance(address, str) and split_host_port(address) is not None,
                "probe_address_overrides",
                f"{address!r} (for {key}) is not host:port (IPv6 as [addr]:port)",
            )
        for name in (
            "platform_pod_selector",
            "platform_namespace_selector",
            "dns_namespace_selector",
            "dns_pod_selector",
        ):
            selector: Mapping[str, str] = getattr(self, name)
            need(bool(selector), name, "must select something (an empty selector matches all)")
            for key, value in selector.items():
                need(
                    isinstance(key, str) and _label_key_ok(key),
                    name,
                    f"{key!r} is not a valid label key",
                )
                need(
                    isinstance(value, str) and _label_value_ok(value),
                    name,
                    f"{value!r} (for {key}) is not a valid label value",
                )
        need(
            PLUGIN_ID_LABEL not in self.platform_pod_selector
            and not all(
                PLUGIN_COMMON_LABELS.get(k) == v for k, v in self.platform_pod_selector.items()
            ),
            "platform_pod_selector",
            "would match plugin pods; choose labels only platform pods carry "
            "(plugin pods are labelled app.kubernetes.io/part-of=vivified-plugins)",
        )

    # -- environment ---------------------------------------------------------------------------
    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> OperatorSettings:
        """Build settings from ``VIVIFIED_<FIELD>`` variables; unset or empty = default.

        Unrelated variables (including other ``VIVIFIED_*`` names) are ignored.
        Raises ``SettingsError`` whose ``name`` is the offending variable.
        """
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            var = env_var_name(f.name)
            raw = environ.get(var)
            if raw is None or raw.strip() == "":
                continue
            parser = _PARSERS[f.name]
            try:
                kwargs[f.name] = parser(raw.strip())
            except ValueError as exc:
                raise SettingsError(var, str(exc)) from None
        try:
            return cls(**kwargs)
        except SettingsError as exc:
            raise SettingsError(env_var_name(exc.name), exc.message) from None

    def to_env(self) -> dict[str, str]:
        """Every setting as ``VIVIFIED_*`` variables (``from_env(to_env())`` round-trips)."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Mapping):
                text = format_selector(value)
            elif isinstance(value, float):
                text = repr(value)
            else:
                text = str(value)
            out[env_var_name(f.name)] = text
        return out


def _plugin_ref_ok(key: str) -> bool:
    namespace, slash, name = key.partition("/")
    return bool(slash) and is_dns1123_label(namespace) and is_dns1123_subdomain(name)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


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
    if _is_ip(host):
        return (host, port) if ipaddress.ip_address(host).version == 4 else None
    if is_dns1123_subdomain(host):
        return host, port
    return None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _parse_int(raw: str) -> int:
    try:
        return int(raw, 10)
    except ValueError:
        raise ValueError(f"must be an integer, got {raw!r}") from None


def _parse_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {raw!r}")
    return value


def _parse_str(raw: str) -> str:
    return raw


def _parse_policy(raw: str) -> DependencyPolicy:
    value = raw.lower()
    if value not in DEPENDENCY_POLICIES:
        raise ValueError(f"must be one of {', '.join(DEPENDENCY_POLICIES)}, got {raw!r}")
    return "block" if value == "block" else "warn"


def _parse_probe_mode(raw: str) -> ProbeMode:
    value = raw.lower()
    for mode in PROBE_MODES:
        if value == mode:
            return mode
    raise ValueError(f"must be one of {', '.join(PROBE_MODES)}, got {raw!r}")


def _parser_for(f_type: object) -> Callable[[str], Any]:
    text = str(f_type)
    if text == "int":
        return _parse_int
    if text == "float":
        return _parse_float
    if text == "str":
        return _parse_str
    if text == "DependencyPolicy":
        return _parse_policy
    if text == "ProbeMode":
        return _parse_probe_mode
    if text.startswith("Mapping"):
        return parse_selector
    raise TypeError(f"no environment parser for type {text}")  # pragma: no cover


_PARSERS: dict[str, Callable[[str], Any]] = {
    f.name: _parser_for(f.type) for f in fields(OperatorSettings)
}


#: Which section each setting belongs to (``vivified operator --print-settings``); first
#: matching prefix wins, the rest are workload defaults.
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("tokens", ("token_", "signing_key_", "jwks_", "revocations_")),
    ("health", ("health_", "unhealthy_")),
    ("probes", ("probe_",)),
    ("network", ("platform_", "dns_", "core_port")),
    ("dependencies", ("dependency_",)),
    ("core", ("core_url", "operator_namespace", "field_manager", "resync_", "egress_report_")),
)
#: Settings whose values are credentials: shown masked. (None today: the settings name Secrets,
#: they never hold one; the set is here so that adding one cannot leak it.)
SECRET_SETTINGS: frozenset[str] = frozenset()


def settings_by_section(settings: OperatorSettings) -> dict[str, dict[str, str]]:
    """Every effective setting as ``VIVIFIED_*`` text, grouped by section, secrets masked."""
    env = settings.to_env()
    grouped: dict[str, dict[str, str]] = {name: {} for name, _ in SECTIONS}
    grouped["workloads"] = {}
    for f in fields(settings):
        section = next(
            (name for name, prefixes in SECTIONS if f.name.startswith(prefixes)), "workloads"
        )
        value = "********" if f.name in SECRET_SETTINGS else env[env_var_name(f.name)]
        grouped[section][env_var_name(f.name)] = value
    return grouped
