"""The proxy lane's decision: may this plugin open a connection to this host, port and address?

Pure (no I/O): the proxy parses the request, looks the plugin up, resolves the name once and
asks these functions; it then connects to exactly the address that was checked, so a DNS
answer that changes between check and use (rebinding) cannot move the connection.

Stages, each returning an :class:`EgressDecision` with a stable snake_case ``reason`` (used in
the ``X-Vivified-Reason`` header, problem+json, metrics and audit):

1. :func:`decide_target` before DNS: the plugin is Active and has ``external_service``; the
   host is not an IP literal (manifests cannot list one: the validator refuses them); the host,
   normalised by the manifest validator's own ``normalize_domain``, is *exactly* one of the
   plugin's allowed domains (no suffix match); the port is permitted (443 unless configured).
2. :func:`decide_addresses` after DNS: *every* answer is a public address. One private answer
   refuses the whole name — a client could otherwise be steered to it later.
3. :func:`decide_host_header` for absolute-URI plain HTTP: ``Host`` names the URI's authority.

Report mode (:func:`apply_mode`) allows what the *allowlist* would refuse (trait, domain, port)
and records it as would-deny; authentication, plugin state and address classes are always
enforced, because report mode exists to migrate allowlists, not to reach metadata services.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

from vivified.manifest import PluginManifest
from vivified.policy.domains import ip_literal, normalize_domain

__all__ = [
    "EXTERNAL_SERVICE_TRAIT",
    "REPORTABLE_REASONS",
    "EgressConfig",
    "EgressDecision",
    "EgressParty",
    "IPAddress",
    "Mode",
    "allowed_domains",
    "apply_mode",
    "classify_address",
    "decide",
    "decide_addresses",
    "decide_host_header",
    "decide_target",
    "normalize_host",
    "parse_authority",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Mode = Literal["enforce", "report"]
EXTERNAL_SERVICE_TRAIT = "external_service"

#: Refusals report mode lets through (and records as would-deny): the allowlist's own rules.
REPORTABLE_REASONS = frozenset({"trait_missing", "domain_not_allowed", "port_not_allowed"})

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPAT = ipaddress.IPv6Network("::/96")
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
_PRIVATE = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
_METADATA = (ipaddress.IPv4Address("169.254.169.254"), ipaddress.IPv6Address("fd00:ec2::254"))


@dataclass(frozen=True)
class EgressConfig:
    """Installation policy for the proxy lane."""

    allowed_ports: frozenset[int] = frozenset({443})
    mode: Mode = "enforce"
    test_allow_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    """TEST ONLY: addresses in these networks count as public (loopback test servers)."""


@dataclass(frozen=True)
class EgressDecision:
    """(allowed, reason, message) plus what the shell needs to act and to audit."""

    allowed: bool
    reason: str
    message: str
    host: str = ""
    """The normalised host name (or the literal as given, when it is not a name)."""
    port: int = 0
    addresses: tuple[IPAddress, ...] = field(default=())
    """Checked addresses, in resolver order: the only ones the shell may connect to."""
    would_deny: str = ""
    """Report mode: the reason enforce mode would have refused with."""


def _refuse(reason: str, message: str, host: str = "", port: int = 0) -> EgressDecision:
    return EgressDecision(False, reason, message, host=host, port=port)


def parse_authority(authority: str, default_port: int) -> tuple[str, int] | None:
    """``host[:port]`` or ``[v6]:port`` into (host, port); ``None`` when malformed."""
    if not authority or any(c.isspace() or c in "/?#@\\" for c in authority):
        return None
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            return None
        host, rest = authority[: end + 1], authority[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else ""
    elif authority.count(":") > 1:
        return None  # an unbracketed IPv6 literal is ambiguous: refuse
    else:
        host, _, port_text = authority.partition(":")
        if ":" in authority and not port_text:
            return None
    if not host:
        return None
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or len(port_text) > 5:
        return None
    port = int(port_text)
    return (host, port) if 0 < port < 65536 else None


@functools.lru_cache(maxsize=4096)
def normalize_host(host: str) -> str | None:
    """The manifest validator's normalisation (the same function), or ``None``.

    Memoised (pure; bounded): IDNA mapping is most of the cost of a tunnel's decision."""
    return normalize_domain(host)


class EgressParty(Protocol):
    """A plugin as the decision sees it (``vivified.dataplane.directory.PluginRecord``)."""

    @property
    def plugin_id(self) -> str: ...

    @property
    def manifest(self) -> PluginManifest: ...

    @property
    def phase(self) -> str: ...

    @property
    def enabled(self) -> bool: ...

    @property
    def active(self) -> bool: ...


def allowed_domains(plugin: EgressParty) -> frozenset[str]:
    """The plugin's normalised domains: ``PluginManifest.all_allowed_domains``, computed with
    the memoised normaliser (the same function underneath)."""
    manifest = plugin.manifest
    return _normalised_domains((*manifest.allowed_domains, *manifest.security.allowed_domains))


@functools.lru_cache(maxsize=1024)
def _normalised_domains(domains: tuple[str, ...]) -> frozenset[str]:
    """Memoised (pure; bounded): every tunnel set-up and every live re-check asks again."""
    names = (normalize_host(d) for d in domains)
    return frozenset(n for n in names if n is not None)


@functools.lru_cache(maxsize=4096)
def _ip_literal(host: str) -> IPAddress | None:
    """``ip_literal``, memoised (pure; bounded): for a host *name* it costs two raised
    ``ValueError``s inside ``ipaddress``, which was the largest part of a decision."""
    return ip_literal(host)


def decide_target(
    plugin: EgressParty | None, host: str, port: int, config: EgressConfig
) -> EgressDecision:
    """Stage 1, before any DNS look-up."""
    if plugin is None:
        return _refuse("plugin_unknown", "the token's plugin is not known to the core", host, port)
    if not plugin.enabled:
        return _refuse("plugin_disabled", f"plugin {plugin.plugin_id} is disabled", host, port)
    if not plugin.active:
        return _refuse(
            "plugin_inactive",
            f"plugin {plugin.plugin_id} is {plugin.phase}, not Active",
            host,
            port,
        )
    literal = _ip_literal(host)
    allowed = allowed_domains(plugin)
    if literal is not None:
        if str(literal) in allowed:  # never true for a validated manifest; kept for symmetry
            return EgressDecision(True, "allowed", "listed address", str(literal), port, (literal,))
        return _refuse(
            "ip_literal",
            f"{host} is an IP address; the proxy connects to allowed host names only",
            host,
            port,
        )
    name = normalize_host(host)
    if name is None:
        return _refuse("host_invalid", "the target is not a valid host name", host[:255], port)
    if EXTERNAL_SERVICE_TRAIT not in plugin.manifest.traits:
        return _refuse(
            "trait_missing",
            f"plugin {plugin.plugin_id} lacks trait external_service; only such plugins may "
            "use the proxy lane",
            name,
            port,
        )
    if name not in allowed:
        return _refuse(
            "domain_not_allowed",
            f"{name} is not in the allowed domains of plugin {plugin.plugin_id}",
            name,
            port,
        )
    if port not in config.allowed_ports:
        ports = ", ".join(str(p) for p in sorted(config.allowed_ports))
        return _refuse(
            "port_not_allowed", f"port {port} is not permitted (permitted: {ports})", name, port
        )
    return EgressDecision(True, "allowed", f"{name}:{port} is allowed", name, port)


def classify_address(address: IPAddress) -> tuple[str, str] | None:
    """(reason, why) when ``address`` is not a public unicast address, else ``None``."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.teredo is not None:
            return "address_embedded_ipv4", f"{address} is a Teredo address"
        if address in _NAT64_LOCAL:
            return "address_reserved", f"{address} is a local-use NAT64 address"
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = classify_address(embedded)
            if inner is not None:
                return inner[0], f"{address} embeds {embedded}: {inner[1]}"
            return None
    if address in _METADATA:
        return "address_link_local", f"{address} is the cloud metadata service"
    if address.is_unspecified or (
        isinstance(address, ipaddress.IPv4Address) and address in _THIS_NETWORK
    ):
        return "address_unspecified", f"{address} is the unspecified address"
    if address.is_loopback:
        return "address_loopback", f"{address} is a loopback address"
    if address.is_link_local:
        return "address_link_local", f"{address} is link-local (cloud metadata range)"
    if address.is_multicast:
        return "address_multicast", f"{address} is a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "address_cgnat", f"{address} is carrier-grade NAT space (RFC 6598)"
    if any(address.version == n.version and address in n for n in _PRIVATE):
        return "address_private", f"{address} is a private-network address"
    if address.is_reserved or not address.is_global:
        return "address_reserved", f"{address} is a reserved or special-purpose address"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPAT and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _in_test_networks(address: IPAddress, config: EgressConfig) -> bool:
    return any(
        address.version == net.version and address in net for net in config.test_allow_networks
    )


def decide_addresses(
    target: EgressDecision, addresses: Sequence[IPAddress], config: EgressConfig
) -> EgressDecision:
    """Stage 2: every resolved address must be public; the decision keeps them all."""
    if not target.allowed:
        return target
    if not addresses:
        return _refuse(
            "resolution_failed", f"{target.host} has no address", target.host, target.port
        )
    unique = tuple(dict.fromkeys(addresses))
    for address in unique:
        if _in_test_networks(address, config):
            continue
        verdict = classify_address(address)
        if verdict is not None:
            reason, why = verdict
            return replace(
                _refuse(reason, f"{target.host} resolves to {why}", target.host, target.port),
                addresses=unique,
            )
    return replace(target, addresses=unique)


def decide_host_header(
    uri_authority: str, host_header: str | None, default_port: int
) -> str | None:
    """Stage 3 (plain HTTP): why ``Host`` disagrees with the absolute URI, or ``None``."""
    if host_header is None:
        return None
    uri = parse_authority(uri_authority, default_port)
    header = parse_authority(host_header.strip(), default_port)
    if uri is None or header is None:
        return "the Host header is not a valid authority"
    uri_host = normalize_host(uri[0]) or uri[0].lower()
    header_host = normalize_host(header[0]) or header[0].lower()
    if (uri_host, uri[1]) != (header_host, header[1]):
        return "the Host header does not match the request URI"
    return None


def decide(
    plugin: EgressParty | None,
    host: str,
    port: int,
    addresses: Iterable[IPAddress],
    config: EgressConfig,
) -> EgressDecision:
    """All stages at once, for callers that resolved already (tables, status views)."""
    target = apply_mode(decide_target(plugin, host, port, config), config.mode)
    return decide_addresses(target, tuple(addresses), config)


def apply_mode(decision: EgressDecision, mode: Mode) -> EgressDecision:
    """Report mode: let an allowlist refusal through, remembering it as ``would_deny``."""
    if decision.allowed or mode != "report" or decision.reason not in REPORTABLE_REASONS:
        return decision
    return replace(
        decision,
        allowed=True,
        reason="report_only",
        message=f"report mode: would refuse ({decision.reason}): {decision.message}",
        would_deny=decision.reason,
    )
