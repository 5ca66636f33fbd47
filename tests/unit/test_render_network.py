"""NetworkPolicy: default deny; ingress from the core and operator probes; egress DNS, core."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vivified.health.targets import ProbeKind, probe_target
from vivified.render import (
    ANNOTATION_ALLOWED_DOMAINS,
    BLOCKED_IPV4_RANGES,
    BLOCKED_IPV6_RANGES,
    PluginInstance,
    render_network_policy,
)
from vivified.render.network import (
    COMPONENT_LABEL,
    CORE_COMPONENT,
    OPERATOR_COMPONENT,
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

PLATFORM_NS = {"matchLabels": {"kubernetes.io/metadata.name": "vivified-system"}}
CORE_PEER = {
    "namespaceSelector": PLATFORM_NS,
    "podSelector": {
        "matchLabels": {
            "app.kubernetes.io/component": "core",
            "app.kubernetes.io/part-of": "vivified",
        }
    },
}
OPERATOR_PEER = {
    "namespaceSelector": PLATFORM_NS,
    "podSelector": {
        "matchLabels": {
            "app.kubernetes.io/component": "operator",
            "app.kubernetes.io/part-of": "vivified",
        }
    },
}
DNS_RULE: dict[str, Any] = {
    "to": [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ],
    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
}
# The core's two ports (http 8080, proxy 3128), on the core's pods. Nothing else, ever.
CORE_RULE: dict[str, Any] = {
    "to": [CORE_PEER],
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


def test_without_a_network_probe_ingress_is_only_the_core_on_the_plugin_port() -> None:
    """MANIFEST declares no health check and no health endpoint: the operator probes nothing."""
    assert policy()["spec"]["ingress"] == [
        {"from": [CORE_PEER], "ports": [{"protocol": "TCP", "port": 8000}]}
    ]


def test_ingress_port_follows_the_effective_port() -> None:
    ingress = policy(plugin(port=9000))["spec"]["ingress"]
    assert ingress[0]["ports"] == [{"protocol": "TCP", "port": 9000}]


def test_the_operator_may_probe_the_health_port_only() -> None:
    p = plugin({"health_check": {"type": "http", "port": 9090}}, port=8000)
    assert policy(p)["spec"]["ingress"] == [
        {"from": [CORE_PEER], "ports": [{"protocol": "TCP", "port": 8000}]},
        {"from": [OPERATOR_PEER], "ports": [{"protocol": "TCP", "port": 9090}]},
    ]


@pytest.mark.parametrize(
    ("manifest", "probe_port"),
    [
        ({"health_check": {"type": "http"}}, 8000),
        ({"health_check": {"type": "tcp", "port": 7000}}, 7000),
        ({"endpoints": {"health": "/health"}}, 8000),
        ({"health_check": {"type": "custom"}}, None),
        ({}, None),
    ],
)
def test_the_operators_ingress_is_exactly_where_it_probes(
    manifest: dict[str, Any], probe_port: int | None
) -> None:
    """Held together with the monitor's own decision (vivified.health.targets)."""
    p = plugin(manifest)
    ingress = policy(p)["spec"]["ingress"]
    operator_rules = [r for r in ingress if r["from"] == [OPERATOR_PEER]]
    target = probe_target(p.spec, OperatorSettings())
    network_probe = target is not None and target.kind in (ProbeKind.HTTP, ProbeKind.TCP)
    if probe_port is None:
        assert operator_rules == []
        assert not network_probe
    else:
        assert operator_rules == [
            {"from": [OPERATOR_PEER], "ports": [{"protocol": "TCP", "port": probe_port}]}
        ]
        assert target is not None
        assert network_probe
        assert target.port == probe_port


def test_no_rule_lets_a_plugin_reach_the_operator_or_anything_but_the_core_and_dns() -> None:
    """The operator's liveness endpoint listens on 8080, the core's port: peers, not ports,
    keep plugins away from it."""
    p = plugin({"health_check": {"type": "http"}})
    egress = policy(p)["spec"]["egress"]
    peers = [peer for rule in egress for peer in rule["to"]]
    assert peers == [DNS_RULE["to"][0], CORE_PEER]
    assert all(peer["podSelector"]["matchLabels"] for peer in peers)
    assert all(peer["namespaceSelector"]["matchLabels"] for peer in peers)


def test_core_and_operator_peers_never_match_plugin_pods() -> None:
    plugin_pod = {
        "app.kubernetes.io/part-of": "vivified-plugins",
        "app.kubernetes.io/component": "plugin",
    }
    spec = policy(plugin({"health_check": {"type": "http"}}))["spec"]
    for peer in [*(p for r in spec["ingress"] for p in r["from"]), CORE_RULE["to"][0]]:
        wanted = peer["podSelector"]["matchLabels"]
        assert any(plugin_pod.get(k) != v for k, v in wanted.items()), peer


def test_egress_without_domains_is_dns_and_core_only() -> None:
    np = policy()
    assert np["spec"]["egress"] == [DNS_RULE, CORE_RULE]
    assert "annotations" not in np["metadata"]


def test_platform_and_dns_peers_follow_settings() -> None:
    np = policy(
        plugin({"health_check": {"type": "http"}}),
        operator_namespace="platform",
        platform_pod_selector={"app": "vivified"},
        dns_namespace_selector={"ns": "dns"},
        dns_pod_selector={"k8s-app": "coredns"},
        core_url="https://core.platform.svc",
    )

    def peer(component: str) -> dict[str, Any]:
        return {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "platform"}},
            "podSelector": {
                "matchLabels": {"app": "vivified", "app.kubernetes.io/component": component}
            },
        }

    assert [rule["from"] for rule in np["spec"]["ingress"]] == [[peer("core")], [peer("operator")]]
    dns, core = np["spec"]["egress"]
    assert dns["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"ns": "dns"}},
            "podSelector": {"matchLabels": {"k8s-app": "coredns"}},
        }
    ]
    assert core == {
        "to": [peer("core")],
        "ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 3128}],
    }


def test_the_chart_labels_its_pods_with_the_components_the_policy_names() -> None:
    """The peers above only match what charts/vivified really puts on the pods."""
    templates = Path(__file__).resolve().parents[2] / "charts" / "vivified" / "templates"
    helpers = (templates / "_helpers.tpl").read_text()
    core = (templates / "core.yaml").read_text()
    deployment = (templates / "deployment.yaml").read_text()
    assert f"{COMPONENT_LABEL}: {OPERATOR_COMPONENT}" in helpers  # the operator's selector
    assert 'include "vivified.selectorLabels"' in deployment
    assert f"{COMPONENT_LABEL}: {CORE_COMPONENT}" in core
    assert deployment.count("app.kubernetes.io/part-of: vivified") == 1
    assert core.count("app.kubernetes.io/part-of: vivified") == 1


def test_egress_to_the_platform_is_the_core_only() -> None:
    np = render_network_policy(plugin(), OperatorSettings())
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
