"""The plugin's NetworkPolicy: default deny, then only what the plugin needs.

Enabled plugin:

* ingress: from platform pods (namespace + pod selector from settings), TCP, on the plugin
  port (and the health-check port when it differs);
* egress: DNS (UDP+TCP 53) to kube-dns and the core pods on their ``http`` port
  (``settings.resolved_core_port``, 8080) and ``proxy`` port (3128). Nothing else, whatever
  the manifest says: external calls go through the core's proxy lane, which enforces the
  allowed domains by name (portable NetworkPolicy only knows IP blocks, so the former
  "TCP 443 to any public address" rule let a plugin with one allowed domain reach every
  HTTPS host). The domains stay in the ``vivified.dev/allowed-domains`` annotation.

Disabled plugin: the same pod selector and both policy types with no rules, which denies all
traffic to and from its pods.
"""

from __future__ import annotations

from typing import Any

from vivified.settings import OperatorSettings

from .common import ANNOTATION_ALLOWED_DOMAINS, child_names, object_metadata, selector_labels
from .instance import PluginInstance

__all__ = [
    "BLOCKED_IPV4_RANGES",
    "BLOCKED_IPV6_RANGES",
    "CORE_PROXY_PORT",
    "EXTERNAL_EGRESS_PORT",
    "allowed_domains",
    "render_network_policy",
]

#: Never reachable through the allowed-domains egress rule.
BLOCKED_IPV4_RANGES: tuple[str, ...] = (
    "10.0.0.0/8",  # RFC 1918
    "100.64.0.0/10",  # carrier-grade NAT (RFC 6598), also used by some clusters
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local, including cloud metadata 169.254.169.254
    "172.16.0.0/12",  # RFC 1918
    "192.168.0.0/16",  # RFC 1918
)
BLOCKED_IPV6_RANGES: tuple[str, ...] = (
    "::1/128",  # loopback
    "fc00::/7",  # unique local addresses
    "fe80::/10",  # link-local
)
EXTERNAL_EGRESS_PORT = 443
DNS_PORT = 53
#: The core Service's ``proxy`` port (DESIGN.md): the only way out for external calls.
CORE_PROXY_PORT = 3128


def allowed_domains(plugin: PluginInstance) -> tuple[str, ...]:
    """Normalised union of ``allowed_domains`` and ``security.allowed_domains``, sorted."""
    return tuple(sorted(set(plugin.spec.manifest.all_allowed_domains)))


def _peer(namespace_selector: dict[str, str], pod_selector: dict[str, str]) -> dict[str, Any]:
    return {
        "namespaceSelector": {"matchLabels": dict(sorted(namespace_selector.items()))},
        "podSelector": {"matchLabels": dict(sorted(pod_selector.items()))},
    }


def _ingress_ports(plugin: PluginInstance) -> list[dict[str, Any]]:
    port = plugin.spec.effective_port
    ports = {port}
    check = plugin.spec.manifest.health_check
    if check is not None and check.type != "custom" and check.port is not None:
        ports.add(check.port)
    return [{"protocol": "TCP", "port": p} for p in sorted(ports)]


def render_network_policy(plugin: PluginInstance, settings: OperatorSettings) -> dict[str, Any]:
    name = child_names(plugin.plugin_id)["NetworkPolicy"]
    spec: dict[str, Any] = {
        "podSelector": {"matchLabels": selector_labels(plugin.plugin_id)},
        "policyTypes": ["Ingress", "Egress"],
    }
    if not plugin.enabled:
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": object_metadata(plugin, name),
            "spec": spec,
        }

    def platform() -> dict[str, Any]:
        return _peer(
            dict(settings.platform_namespace_selector), dict(settings.platform_pod_selector)
        )

    spec["ingress"] = [{"from": [platform()], "ports": _ingress_ports(plugin)}]
    egress: list[dict[str, Any]] = [
        {
            "to": [_peer(dict(settings.dns_namespace_selector), dict(settings.dns_pod_selector))],
            "ports": [
                {"protocol": "UDP", "port": DNS_PORT},
                {"protocol": "TCP", "port": DNS_PORT},
            ],
        },
        {
            "to": [platform()],
            "ports": [
                {"protocol": "TCP", "port": port}
                for port in sorted({settings.resolved_core_port, CORE_PROXY_PORT})
            ],
        },
    ]
    domains = allowed_domains(plugin)
    annotations: dict[str, str] = {}
    if domains:
        annotations[ANNOTATION_ALLOWED_DOMAINS] = ",".join(domains)
    spec["egress"] = egress
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": object_metadata(plugin, name, annotations),
        "spec": spec,
    }
