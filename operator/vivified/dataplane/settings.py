"""``vivified core`` configuration: ``VIVIFIED_CORE_*`` variables, parsed once at start.

The core reads what the operator publishes (plugin resources, the JWKS and revocation
ConfigMaps), so names shared with the operator default to the operator's own defaults.
Settings hold no secret: the call-token signing key is a *file path* (a mounted Secret).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from vivified.policy.invoke import DEFAULT_DANGEROUS_OPERATIONS as _DANGEROUS
from vivified.settings import OperatorSettings
from vivified_sdk import contract

__all__ = ["DEFAULT_DANGEROUS_OPERATIONS", "CoreSettings", "CoreSettingsError"]

_OPERATOR = OperatorSettings()

DEFAULT_DANGEROUS_OPERATIONS: tuple[str, ...] = tuple(sorted(_DANGEROUS))


class CoreSettingsError(ValueError):
    """A setting is unusable; ``name`` is the environment variable."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


def _address_map(raw: str) -> dict[str, str]:
    """``id=host:port,id2=host:port`` or a JSON object."""
    if raw.startswith("{"):
        loaded = json.loads(raw)
        if not isinstance(loaded, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in loaded.items()
        ):
            raise ValueError("must be a JSON object of strings")
        pairs = dict(loaded)
    else:
        pairs = {}
        for item in filter(None, (p.strip() for p in raw.split(","))):
            key, eq, value = item.partition("=")
            if not eq or not key or not value:
                raise ValueError(f"entry {item!r} is not id=host:port")
            pairs[key.strip()] = value.strip()
    for key, value in pairs.items():
        host, colon, port = value.rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"address of {key!r} must be host:port, got {value!r}")
    return pairs


def _names(raw: str) -> tuple[str, ...]:
    return tuple(sorted({p.strip() for p in raw.split(",") if p.strip()}))


def _bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"must be true or false, got {raw!r}")


@dataclass(frozen=True)
class CoreSettings:
    """Everything the core's servers and lanes need to know. Immutable."""

    host: str = "0.0.0.0"  # noqa: S104 - a pod behind its Service and NetworkPolicy
    port: int = 8080
    #: Namespaces whose VivifiedPlugins the core serves; empty = all (cluster-wide).
    namespaces: tuple[str, ...] = ()
    #: Where the operator keeps the JWKS and revocation ConfigMaps.
    identity_namespace: str = _OPERATOR.operator_namespace
    jwks_configmap: str = _OPERATOR.jwks_configmap
    revocations_configmap: str = _OPERATOR.revocations_configmap
    token_issuer: str = _OPERATOR.token_issuer
    token_audience: str = _OPERATOR.token_audience
    token_leeway_seconds: int = _OPERATOR.token_leeway_seconds
    #: Call tokens the core mints for targets: ``iss`` and lifetime.
    call_token_issuer: str = contract.DEFAULT_CORE_ISSUER
    call_token_ttl_seconds: int = 60
    #: PEM file of the core's ES256 call-token key (a mounted Secret); empty = a key generated
    #: in memory at start (one replica only: other replicas would not publish it).
    signing_key_file: str = ""
    #: Out of cluster (tests, demo): ``plugin id -> host:port`` instead of the Service name.
    address_map: Mapping[str, str] = field(default_factory=dict)
    #: Suffix of in-cluster Service names: ``<id>.<namespace>.<service_domain>:<port>``.
    service_domain: str = "svc"
    dangerous_operations: tuple[str, ...] = DEFAULT_DANGEROUS_OPERATIONS
    connect_timeout_seconds: float = 2.0
    upstream_timeout_seconds: float = 15.0
    max_request_bytes: int = 1024 * 1024
    max_response_bytes: int = 8 * 1024 * 1024
    #: Upstream connections kept open per target host (pooling).
    upstream_connections_per_host: int = 64
    #: Write a coordination.k8s.io Lease per heartbeat (the operator's health input).
    heartbeat_leases: bool = True
    #: Seconds a heartbeat Lease stays valid (``leaseDurationSeconds``).
    heartbeat_lease_seconds: int = 90
    #: ``namespace/name`` of this pod (logs, Lease holder); from the downward API.
    pod_name: str = ""

    def __post_init__(self) -> None:
        checks: tuple[tuple[bool, str, str], ...] = (
            (0 < self.port < 65536, "port", "must be a port number"),
            (self.call_token_ttl_seconds > 0, "call_token_ttl_seconds", "must be positive"),
            (self.upstream_timeout_seconds > 0, "upstream_timeout_seconds", "must be positive"),
            (self.connect_timeout_seconds > 0, "connect_timeout_seconds", "must be positive"),
            (self.max_request_bytes > 0, "max_request_bytes", "must be positive"),
            (self.max_response_bytes > 0, "max_response_bytes", "must be positive"),
            (self.heartbeat_lease_seconds > 0, "heartbeat_lease_seconds", "must be positive"),
        )
        for ok, name, message in checks:
            if not ok:
                raise CoreSettingsError(env_var_name(name), message)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> CoreSettings:
        """``VIVIFIED_CORE_<FIELD>``; shared names also read the operator's ``VIVIFIED_<FIELD>``."""
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(env_var_name(f.name))
            if (raw is None or not raw.strip()) and f.name in _SHARED:
                raw = environ.get(f"VIVIFIED_{f.name.upper()}")
            if raw is None or not raw.strip():
                continue
            try:
                kwargs[f.name] = _PARSERS.get(f.name, str)(raw.strip())
            except ValueError as error:
                raise CoreSettingsError(env_var_name(f.name), str(error)) from None
        return cls(**kwargs)


def env_var_name(name: str) -> str:
    return f"VIVIFIED_CORE_{name.upper()}"


_SHARED = frozenset(
    {
        "jwks_configmap",
        "revocations_configmap",
        "token_issuer",
        "token_audience",
        "token_leeway_seconds",
    }
)

_PARSERS: dict[str, Any] = {
    "port": int,
    "namespaces": _names,
    "token_leeway_seconds": int,
    "call_token_ttl_seconds": int,
    "address_map": _address_map,
    "dangerous_operations": _names,
    "connect_timeout_seconds": float,
    "upstream_timeout_seconds": float,
    "max_request_bytes": int,
    "max_response_bytes": int,
    "upstream_connections_per_host": int,
    "heartbeat_leases": _bool,
    "heartbeat_lease_seconds": int,
}
