"""The proxy lane's settings: limits, timeouts, ports, mode, and the two test-only seams."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from vivified.policy.egress import EgressConfig, Mode
from vivified_sdk import contract

__all__ = ["ENV_PREFIX", "ProxySettings", "ProxySettingsError"]

logger = logging.getLogger(__name__)

ENV_PREFIX = "VIVIFIED_PROXY_"
DEFAULT_PORT = contract.CORE_PROXY_PORT


class ProxySettingsError(ValueError):
    """A setting is malformed; the message names it."""


@dataclass(frozen=True)
class ProxySettings:
    """Everything the proxy needs besides its collaborators (directory, verifier, ...)."""

    host: str = ""
    """Listen address; empty = the core's own (``VIVIFIED_CORE_HOST``, every interface in a
    pod: plugins reach it through the Service, NetworkPolicy admits only them)."""
    port: int = DEFAULT_PORT
    allowed_ports: frozenset[int] = frozenset({443})
    """Ports plugins may reach (CONNECT and plain HTTP alike). Plain HTTP needs 80 here."""
    mode: Mode = "enforce"
    """``report`` lets allowlist refusals through and records would-deny; never the default."""
    head_timeout: float = 10.0
    """Seconds a client has to send a complete request head (slowloris, half-open)."""
    connect_timeout: float = 10.0
    idle_timeout: float = 300.0
    """A tunnel with no byte in either direction for this long is closed."""
    max_head_bytes: int = 16 * 1024
    max_headers: int = 100
    max_connections: int = 4096
    max_pending_per_peer: int = 256
    """Connections one source address may have that have not finished their head yet (a
    slow or stuck pod cannot use up ``max_connections`` for everyone)."""
    max_tunnels_per_plugin: int = 256
    rate_per_second: float = 50.0
    """New connections per plugin per second (token bucket) ..."""
    rate_burst: int = 200
    """... with this burst."""
    policy_recheck_seconds: float = 1.0
    """How often open tunnels are re-checked against the directory (disable, CR edits)."""
    kernel_splice: bool = True
    """CONNECT tunnels relay with ``splice(2)`` inside the kernel (Linux); off: through
    asyncio's transports (``VIVIFIED_PROXY_KERNEL_SPLICE=false``)."""
    test_static_hosts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """TEST ONLY: resolve these names from this map instead of DNS (and nothing else)."""
    test_allow_networks: tuple[str, ...] = ()
    """TEST ONLY: treat addresses in these networks as public (loopback test servers)."""

    def egress_config(self) -> EgressConfig:
        return EgressConfig(
            allowed_ports=self.allowed_ports,
            mode=self.mode,
            test_allow_networks=tuple(
                ipaddress.ip_network(n, strict=False) for n in self.test_allow_networks
            ),
        )

    @property
    def has_test_seams(self) -> bool:
        return bool(self.test_static_hosts or self.test_allow_networks)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ProxySettings:
        """``VIVIFIED_PROXY_*``: HOST, PORT, ALLOWED_PORTS (comma list), MODE, HEAD_TIMEOUT,
        CONNECT_TIMEOUT, IDLE_TIMEOUT, MAX_CONNECTIONS, MAX_TUNNELS_PER_PLUGIN,
        RATE_PER_SECOND, RATE_BURST; test only: TEST_STATIC_HOSTS (JSON ``{name: [addr]}``)
        and TEST_ALLOW_NETWORKS (comma list of CIDRs)."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(ENV_PREFIX + name)
            return value.strip() if value and value.strip() else None

        values: dict[str, object] = {}
        try:
            for name, kind in (
                ("port", int),
                ("head_timeout", float),
                ("connect_timeout", float),
                ("idle_timeout", float),
                ("max_connections", int),
                ("max_pending_per_peer", int),
                ("max_tunnels_per_plugin", int),
                ("rate_per_second", float),
                ("rate_burst", int),
            ):
                text = get(name.upper())
                if text is not None:
                    values[name] = kind(text)
            ports = get("ALLOWED_PORTS")
            if ports is not None:
                values["allowed_ports"] = frozenset(int(p) for p in ports.split(",") if p.strip())
            hosts = get("TEST_STATIC_HOSTS")
            if hosts is not None:
                loaded = json.loads(hosts)
                values["test_static_hosts"] = {
                    str(k): tuple(str(a) for a in v) for k, v in dict(loaded).items()
                }
            networks = get("TEST_ALLOW_NETWORKS")
            if networks is not None:
                values["test_allow_networks"] = tuple(
                    n.strip() for n in networks.split(",") if n.strip()
                )
        except (ValueError, TypeError) as error:
            raise ProxySettingsError(f"{ENV_PREFIX}*: {error}") from None
        splice = get("KERNEL_SPLICE")
        if splice is not None:
            if splice.lower() not in ("true", "false", "1", "0", "on", "off"):
                raise ProxySettingsError(f"{ENV_PREFIX}KERNEL_SPLICE must be true or false")
            values["kernel_splice"] = splice.lower() in ("true", "1", "on")
        host = get("HOST")
        if host is not None:
            values["host"] = host
        mode = get("MODE")
        if mode is not None:
            if mode not in ("enforce", "report"):
                raise ProxySettingsError(f"{ENV_PREFIX}MODE must be enforce or report")
            values["mode"] = mode
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        if not all(0 < p < 65536 for p in self.allowed_ports):
            raise ProxySettingsError("allowed_ports must be port numbers 1-65535")
        if not 0 <= self.port < 65536:
            raise ProxySettingsError("port must be 0-65535")
        for network in self.test_allow_networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ProxySettingsError(f"test_allow_networks: {network!r}") from None
        for name, addresses in self.test_static_hosts.items():
            for address in addresses:
                try:
                    ipaddress.ip_address(address)
                except ValueError:
                    raise ProxySettingsError(f"test_static_hosts[{name!r}]: {address!r}") from None
