"""The plugin's NetworkPolicy: default deny, then only what the plugin needs.

Enabled plugin:

* ingress, TCP only, from two peers in the platform namespace:
  - the core's pods (the operator lane forwards calls to the plugin) on the plugin port;
  - the operator's pods (its ``direct`` health probes) on the port it probes, when it probes
    over the network at all (``health_check`` http/tcp, or ``endpoints.health``); a ``custom``
    check (heartbeats) or none at all (Deployment availability) opens nothing to it;
* egress: DNS (UDP+TCP 53) to kube-dns and the core's pods on their ``http`` port
  (``settings.resolved_core_port``, 8080) and ``proxy`` port (3128). Nothing else, whatever
  the manifest says: external calls go through the core's proxy lane, which enforces the
  allowed domains by name (portable NetworkPolicy only knows IP blocks, so the former
  "TCP 443 to any public address" rule let a plugin with one allowed domain reach every
  HTTPS host). The domains stay in the ``vivified.dev/allowed-domains`` annotation.
  Not the operator's pods: their liveness endpoint listens on 8080 too, and a plugin has
  nothing to say to the operator (heartbeats go to the core).

The core's and the operator's pods are told apart by ``app.kubernetes.io/component``
(``core`` / ``operator``, set by the chart) on top of ``settings.platform_pod_selector``
(``app.kubernetes.io/part-of=vivified``), in ``settings.platform_namespace_selector``.
Found on the real node (tests/e2e/test_real_node.py): with one "platform" peer for both
directions, a plugin pod could open connections to the operator's pod.

Disabled plugin: the same pod selector and both policy types with no rules, which denies all
traffic to and from its pods.
"""

from __future__ import annotations

from typing import Any

from vivified.settings import OperatorSettings
from vivified_sdk import contract

from .common import ANNOTATION_ALLOWED_DOMAINS, child_names, object_metadata, selector_labels
from .instance import PluginInstance

__all__ = [
    "BLOCKED_IPV4_RANGES",
    "BLOCKED_IPV6_RANGES",
    "COMPONENT_LABEL",
    "CORE_COMPONENT",
    "CORE_PROXY_PORT",
    "EXTERNAL_EGRESS_PORT",
    "OPERATOR_COMPONENT",
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
CORE_PROXY_PORT = contract.CORE_PROXY_PORT
#: The label (and its values, from the chart) that tells the platform's pods apart.
COMPONENT_LABEL = "app.kubernetes.io/component"
CORE_COMPONENT = "core"
OPERATOR_COMPONENT = "operator"


def allowed_domains(plugin: PluginInstance) -> tuple[str, ...]:
    """Normalised union of ``allowed_domains`` and ``security.allowed_domains``, sorted."""
    return tuple(sorted(set(plugin.spec.manifest.all_allowed_domains)))


def _peer(namespace_selector: dict[str, str], pod_selector: dict[str, str]) -> dict[str, Any]:
    return {
        "namespaceSelector": {"matchLabels": dict(sorted(namespace_selector.items()))},
        "podSelector": {"matchLabels": dict(sorted(pod_selector.items()))},
    }


def _operator_probe_port(plugin: PluginInstance) -> int | None:
    """The port the operator's health probes connect to, or None when it does not probe.

    The same decision as ``vivified.health.targets.probe_target`` (a unit test holds them
    together): http/tcp checks on their port (default: the plugin port), ``endpoints.health``
    on the plugin port; a ``custom`` check or nothing declared means no network probe.
    """
    port = plugin.spec.effective_port
    check = plugin.spec.manifest.health_check
    if check is not None:
        if check.type == "custom":
            return None
        return check.port if check.port is not None else port
    if plugin.spec.manifest.endpoints.get("health"):
        return port
    return None


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

    def component(value: str) -> dict[str, Any]:
        return _peer(
            dict(settings.platform_namespace_selector),
            {**settings.platform_pod_selector, COMPONENT_LABEL: value},
        )

    # A fresh peer per use: no dict is shared between two places of the output.
    ingress: list[dict[str, Any]] = [
        {
            "from": [component(CORE_COMPONENT)],
            "ports": [{"protocol": "TCP", "port": plugin.spec.effective_port}],
        }
    ]
    probe_port = _operator_probe_port(plugin)
    if probe_port is not None:
        ingress.append(
            {
                "from": [component(OPERATOR_COMPONENT)],
                "ports": [{"protocol": "TCP", "port": probe_port}],
            }
        )
    spec["ingress"] = ingress
    egress: list[dict[str, Any]] = [
        {
            "to": [_peer(dict(settings.dns_namespace_selector), dict(settings.dns_pod_selector))],
            "ports": [
                {"protocol": "UDP", "port": DNS_PORT},
                {"protocol": "TCP", "port": DNS_PORT},
            ],
        },
        {
            "to": [component(CORE_COMPONENT)],
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
