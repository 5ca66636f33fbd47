"""NetworkPolicy: default deny; ingress from the platform; egress DNS, core and domains."""

from __future__ import annotations

from typing import Any

import pytest

from vivified.render import (
    ANNOTATION_ALLOWED_DOMAINS,
    BLOCKED_IPV4_RANGES,
    BLOCKED_IPV6_RANGES,
    PluginInstance,
    render_network_policy,
)
from vivified.resource import PluginSpec
from vivified.settings import OperatorSettings

MANIFEST: dict[str, Any] = {
    "id": "crm-sync",
    "name": "CRM Sync",
    "version": "2.0.0",
    "contracts": ["CommunicationPlugin"],
    "traits": ["audit_required"],
    "security": {"authentication_required": True, "data_classification": ["internal"]},
    "compliance": {"audit_level": "basic"},
}

PLATFORM_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "vivified-system"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "vivified"}},
}
DNS_RULE = {
    "to": [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ],
    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
}
# The core's two ports (http 8080, proxy 3128), on platform pods. Nothing else, ever.
CORE_RULE = {
    "to": [PLATFORM_PEER],
    "ports": [{"protocol": "TCP", "port": 3128}, {"protocol": "TCP", "port": 8080}],
}


def plugin(
    manifest: dict[str, Any] | None = None,
    *,
    enabled: bool = True,
    port: int | None = None,
) -> PluginInstance:
    data: dict[str, Any] = {
        "manifest": {**MANIFEST, **(manifest or {})},
        "image": "ghcr.io/acme/crm-sync:2.0.0",
        "enabled": enabled,
    }
    if port is not None:
        data["port"] = port
    spec = PluginSpec.model_validate(data)
    return PluginInstance(
        name="crm-sync",
        namespace="team-a",
        uid="uid-1",
        generation=1,
        spec=spec,
        run=enabled,
        enabled=enabled,
        token_secret_name="crm-sync-token" if enabled else None,
    )


def policy(p: PluginInstance | None = None, **settings: Any) -> dict[str, Any]:
    return render_network_policy(p or plugin(), OperatorSettings(**settings))


def test_identity() -> None:
    np = policy()
    assert np["apiVersion"] == "networking.k8s.io/v1"
    assert np["kind"] == "NetworkPolicy"
    assert np["metadata"]["name"] == "crm-sync"
    assert np["metadata"]["namespace"] == "team-a"


def test_selects_only_this_plugins_pods_and_governs_both_directions() -> None:
    spec = policy()["spec"]
    assert spec["podSelector"] == {"matchLabels": {"vivified.dev/plugin": "crm-sync"}}
    assert spec["policyTypes"] == ["Ingress", "Egress"]


# --------------------------------------------------------------------------------------------
# Enabled, no domains
# --------------------------------------------------------------------------------------------


def test_ingress_only_from_platform_pods_on_the_plugin_port() -> None:
    assert policy()["spec"]["ingress"] == [
        {"from": [PLATFORM_PEER], "ports": [{"protocol": "TCP", "port": 8000}]}
    ]


def test_ingress_port_follows_the_effective_port() -> None:
    ingress = policy(plugin(port=9000))["spec"]["ingress"]
    assert ingress[0]["ports"] == [{"protocol": "TCP", "port": 9000}]


def test_separate_health_port_is_also_open_to_the_platform() -> None:
    p = plugin({"health_check": {"type": "http", "port": 9090}}, port=8000)
    assert policy(p)["spec"]["ingress"][0]["ports"] == [
        {"protocol": "TCP", "port": 8000},
        {"protocol": "TCP", "port": 9090},
    ]


def test_egress_without_domains_is_dns_and_core_only() -> None:
    np = policy()
    assert np["spec"]["egress"] == [DNS_RULE, CORE_RULE]
    assert "annotations" not in np["metadata"]


def test_platform_and_dns_peers_follow_settings() -> None:
    np = policy(
        operator_namespace="platform",
        platform_pod_selector={"app": "core"},
        dns_namespace_selector={"ns": "dns"},
        dns_pod_selector={"k8s-app": "coredns"},
        core_url="https://core.platform.svc",
    )
    peer = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "platform"}},
        "podSelector": {"matchLabels": {"app": "core"}},
    }
    assert np["spec"]["ingress"][0]["from"] == [peer]
    dns, core = np["spec"]["egress"]
    assert dns["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"ns": "dns"}},
            "podSelector": {"matchLabels": {"k8s-app": "coredns"}},
        }
    ]
    assert core == {
        "to": [peer],
        "ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 3128}],
    }


def test_no_operator_heartbeat_port_in_egress() -> None:
    np = render_network_policy(plugin(), OperatorSettings(heartbeat_port=8081))
    platform_rule = np["spec"]["egress"][1]
    assert {p["port"] for p in platform_rule["ports"]} == {8080, 3128}


def test_core_egress_uses_the_core_pod_port_when_set() -> None:
    core = policy(core_port=8081)["spec"]["egress"][1]
    assert core["ports"] == [{"protocol": "TCP", "port": 3128}, {"protocol": "TCP", "port": 8081}]


# --------------------------------------------------------------------------------------------
# Enabled, with domains
# --------------------------------------------------------------------------------------------


def test_allowed_domains_open_no_direct_egress() -> None:
    """External calls go through the core's proxy (by name); no IP-block rule, ever."""
    np = policy(plugin({"allowed_domains": ["api.salesforce.com"]}))
    assert np["spec"]["egress"] == [DNS_RULE, CORE_RULE]
    assert "ipBlock" not in str(np)


def test_private_loopback_link_local_and_metadata_ranges_are_excluded() -> None:
    assert set(BLOCKED_IPV4_RANGES) == {
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",  # includes 169.254.169.254, the cloud metadata service
        "127.0.0.0/8",
        "100.64.0.0/10",
    }
    assert set(BLOCKED_IPV6_RANGES) == {"fc00::/7", "fe80::/10", "::1/128"}


def test_domains_annotation_is_the_sorted_normalised_union_of_both_lists() -> None:
    np = policy(
        plugin(
            {
                "allowed_domains": ["api.stripe.com", "API.Salesforce.com"],
                "security": {
                    "authentication_required": True,
                    "data_classification": ["internal"],
                    "allowed_domains": ["api.sendgrid.com", "api.stripe.com"],
                },
            }
        )
    )
    assert np["metadata"]["annotations"] == {
        ANNOTATION_ALLOWED_DOMAINS: "api.salesforce.com,api.sendgrid.com,api.stripe.com"
    }


def test_domains_only_in_security_section_also_open_https() -> None:
    np = policy(
        plugin(
            {
                "security": {
                    "authentication_required": True,
                    "data_classification": ["internal"],
                    "allowed_domains": ["hooks.slack.com"],
                }
            }
        )
    )
    assert np["spec"]["egress"] == [DNS_RULE, CORE_RULE]
    assert np["metadata"]["annotations"][ANNOTATION_ALLOWED_DOMAINS] == "hooks.slack.com"


def test_domain_order_in_the_manifest_does_not_change_the_output() -> None:
    a = policy(plugin({"allowed_domains": ["b.example.com", "a.example.com"]}))
    b = policy(plugin({"allowed_domains": ["a.example.com", "b.example.com"]}))
    assert a == b


# --------------------------------------------------------------------------------------------
# Disabled
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("domains", [[], ["api.stripe.com"]])
def test_disabled_plugin_gets_a_deny_all_policy(domains: list[str]) -> None:
    np = policy(plugin({"allowed_domains": domains}, enabled=False))
    assert np["spec"] == {
        "podSelector": {"matchLabels": {"vivified.dev/plugin": "crm-sync"}},
        "policyTypes": ["Ingress", "Egress"],
    }
    assert "annotations" not in np["metadata"]
