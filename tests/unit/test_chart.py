"""The Helm chart, rendered with `helm template` (no cluster): what it creates and refuses.

tests/e2e/test_chart.py installs it on a real API server; these tests pin the details.
"""

from __future__ import annotations

import base64
import json
import subprocess
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from vivified.settings import OperatorSettings, format_selector
from vivified.shell.webhook import WEBHOOK_PATH

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "vivified"
NAMESPACE = "vivified-system"
#: Set by the chart itself (from its own values: peering.*, webhook.*, the release namespace).
NOT_SETTINGS = {
    "operator_namespace",
    "signing_key_secret",
    "peering_name",
    "peering_priority",
    "webhook_port",
    "webhook_addr",
    "webhook_cert_dir",
}
ENV_PREFIX = "VIVIFIED_"


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def run_helm(helm: Path, *args: str, values: Mapping[str, Any] | None = None) -> str:
    command = [str(helm), "template", "rel", str(CHART), "-n", NAMESPACE, *args]
    if values is not None:
        command += ["--values", "-"]
    result = subprocess.run(
        command,
        input=json.dumps(values) if values is not None else None,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RenderError(result.stderr)
    return result.stdout


class RenderError(Exception):
    pass


def is_core(doc: Mapping[str, Any]) -> bool:
    labels = doc.get("metadata", {}).get("labels") or {}
    return bool(labels.get("app.kubernetes.io/component") == "core")


def render(
    helm: Path, values: Mapping[str, Any] | None = None, *, core: bool = False
) -> list[dict[str, Any]]:
    """The operator's objects (``core=True``: only the core's, templates/core.yaml)."""
    docs = [d for d in yaml.safe_load_all(run_helm(helm, values=values)) if d]
    return [d for d in docs if is_core(d) == core]


def webhook_services(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Services that front the admission webhook."""
    return [
        d
        for d in docs
        if d["kind"] == "Service" and any(p["name"] == "webhook" for p in d["spec"]["ports"])
    ]


def only(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def kinds(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(d["kind"] for d in docs)


def rules_of(role: Mapping[str, Any]) -> set[tuple[str, str, str, str]]:
    """Rules flattened to (apiGroup, resource, resourceName or '*', verb)."""
    flat = set()
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for name in rule.get("resourceNames") or ["*"]:
                    for verb in rule["verbs"]:
                        flat.add((group, resource, name, verb))
    return flat


def expand(*rules: tuple[str, str, str, str]) -> set[tuple[str, str, str, str]]:
    """("g", "a,b", "*", "list,watch") -> one tuple per resource and verb."""
    return {
        (group, resource, name, verb)
        for group, resources, name, verbs in rules
        for resource in resources.split(",")
        for verb in verbs.split(",")
    }


PLUGIN_RULES = expand(
    ("vivified.dev", "vivifiedplugins", "*", "list,watch,patch"),
    ("vivified.dev", "vivifiedplugins/status", "*", "patch"),
    ("vivified.dev", "vivifiedplugins/finalizers", "*", "update"),
    ("", "events", "*", "create"),
    ("", "serviceaccounts,services", "*", "list,watch,create,patch"),
    ("", "secrets", "*", "list,watch,create,patch,delete"),
    ("apps", "deployments", "*", "list,watch,create,patch"),
    ("networking.k8s.io", "networkpolicies", "*", "list,watch,create,patch"),
    ("coordination.k8s.io", "leases", "*", "list,watch"),
)
SCAN_RULES = expand(
    ("apiextensions.k8s.io", "customresourcedefinitions", "*", "list,watch"),
    # The start-up check that the operator's own namespace exists: that one namespace only.
    ("", "namespaces", "vivified-system", "get"),
)
IDENTITY_RULES = expand(
    ("", "secrets", "vivified-signing-key", "get,update"),
    ("", "secrets", "*", "create"),
    ("", "configmaps", "vivified-jwks", "get,patch"),
    ("", "configmaps", "vivified-revoked-tokens", "get,patch"),
    ("", "configmaps", "*", "create"),
    ("", "events", "*", "create"),  # the signing key's lifecycle Events (audit key_rotated)
)


def schema() -> dict[str, Any]:
    return dict(json.loads((CHART / "values.schema.json").read_text()))


# -- Chart.yaml and values ----------------------------------------------------------------------


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["kubeVersion"] == ">=1.28.0-0"
    assert chart["name"] == "vivified"


def test_the_schema_is_strict_everywhere() -> None:
    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                assert node.get("additionalProperties") is False, path
            for key, value in node.items():
                walk(value, f"{path}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")

    walk(schema(), "")


def test_the_schema_knows_every_operator_setting_with_its_type() -> None:
    properties = schema()["properties"]["operator"]["properties"]["settings"]["properties"]
    hints = typing.get_type_hints(OperatorSettings)
    expected: dict[str, dict[str, Any]] = {}
    for name in OperatorSettings.model_fields:
        if name in NOT_SETTINGS:
            continue
        hint = hints[name]
        if typing.get_origin(hint) is typing.Literal:
            expected[camel(name)] = {"type": "string", "enum": list(typing.get_args(hint))}
        elif hint in (int, float, str):
            expected[camel(name)] = {"type": {int: "integer", float: "number", str: "string"}[hint]}
        else:  # label selectors and other mappings: "key=value,key2=value2"
            expected[camel(name)] = {"type": "string"}
    actual = {
        k: {kk: vv for kk, vv in v.items() if kk != "description"} for k, v in properties.items()
    }
    missing = sorted(set(expected) - set(actual))
    unknown = sorted(set(actual) - set(expected))
    assert not missing, (
        f"OperatorSettings fields missing from charts/vivified/values.schema.json "
        f"(operator.settings): {missing}"
    )
    assert not unknown, f"values.schema.json has settings the operator does not know: {unknown}"
    assert actual == expected


def test_default_values_match_the_schema_required_keys(helm: Path) -> None:
    # helm validates values.yaml against the schema on every render; this must just work.
    assert render(helm)


# -- the Deployment ----------------------------------------------------------------------------


def test_the_operator_runs_hardened(helm: Path) -> None:
    deployment = only(render(helm), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["vivified"]
    assert container["args"][:3] == ["operator", "--liveness", "http://0.0.0.0:8080/healthz"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["runAsNonRoot"] is True
    assert isinstance(security["runAsUser"], int)
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "256Mi"}
    assert container["resources"]["requests"]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8080, "webhook": 9443}
    assert pod["serviceAccountName"] == "rel-vivified"
    assert deployment["spec"]["strategy"]["type"] == "Recreate"


def test_the_webhook_certificate_is_mounted_where_the_operator_reads_it(helm: Path) -> None:
    docs = render(helm)
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "webhook-tls")
    assert env["VIVIFIED_WEBHOOK_CERT_DIR"] == mount["mountPath"]
    assert env["VIVIFIED_WEBHOOK_PORT"] == "9443"
    volume = next(v for v in pod["volumes"] if v["name"] == "webhook-tls")
    assert volume["secret"]["secretName"] == only(docs, "Secret")["metadata"]["name"]


def test_watch_namespaces_become_flags(helm: Path) -> None:
    docs = render(helm, {"watchNamespaces": ["team-a", "team-b"]})
    (container,) = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["args"][-4:] == ["--namespace", "team-a", "--namespace", "team-b"]


def test_settings_become_environment_the_operator_accepts(helm: Path) -> None:
    """Every setting, camelCase in values, reaches OperatorSettings.from_env intact."""
    defaults = OperatorSettings()
    chosen: dict[str, Any] = {}
    for name in OperatorSettings.model_fields:
        if name in NOT_SETTINGS:
            continue
        value = getattr(defaults, name)
        chosen[camel(name)] = format_selector(value) if isinstance(value, Mapping) else value
    # Non-default values, including numbers that YAML would print in exponent form.
    chosen.update(
        tokenTtlSeconds=2592000,
        signingKeyMaxAgeSeconds=31536000,
        defaultCpuLimit=0.25,
        dependencyPolicy="warn",
    )
    docs = render(helm, {"operator": {"settings": chosen}})
    (container,) = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    settings_env = {k: v for k, v in env.items() if not k.startswith("VIVIFIED_WEBHOOK_")}
    settings_env["VIVIFIED_OPERATOR_NAMESPACE"] = NAMESPACE
    parsed = OperatorSettings.from_env(settings_env)
    assert parsed.token_ttl_seconds == 2592000
    assert parsed.signing_key_max_age_seconds == 31536000
    assert parsed.default_cpu_limit == 0.25
    assert parsed.dependency_policy == "warn"
    assert parsed.platform_pod_selector == defaults.platform_pod_selector
    assert env["VIVIFIED_TOKEN_TTL_SECONDS"] == "2592000"


def test_settings_reject_unknown_keys_and_wrong_types(helm: Path) -> None:
    with pytest.raises(RenderError, match="tokenTtl"):
        render(helm, {"operator": {"settings": {"tokenTtl": 60}}})
    with pytest.raises(RenderError, match="dependencyPolicy"):
        render(helm, {"operator": {"settings": {"dependencyPolicy": "maybe"}}})
    with pytest.raises(RenderError, match="operatorNamespace"):
        render(helm, {"operator": {"settings": {"operatorNamespace": "x"}}})


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"replicaCount": "two"}, "replicaCount"),
        ({"webhook": {"timeoutSeconds": "5"}}, "timeoutSeconds"),
        ({"webhook": {"failurePolicy": "Maybe"}}, "failurePolicy"),
        ({"webhook": {"url": "http://127.0.0.1:9443/validate-plugin"}}, "url"),
        ({"watchNamespaces": "team-a"}, "watchNamespaces"),
        ({"watchNamespaces": ["Team_A"]}, "watchNamespaces"),
        ({"operator": {"runAsUser": 0}}, "runAsUser"),
        ({"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
        ({"unknownTopLevel": True}, "unknownTopLevel"),
    ],
)
def test_the_schema_rejects_bad_values(helm: Path, values: dict[str, Any], where: str) -> None:
    with pytest.raises(RenderError, match=where):
        render(helm, values)


def test_several_replicas_need_peering(helm: Path) -> None:
    with pytest.raises(RenderError, match=r"peering\.enabled"):
        render(helm, {"replicaCount": 2})


def test_ha_with_peering(helm: Path) -> None:
    docs = render(helm, {"replicaCount": 2, "peering": {"enabled": True}})
    deployment = only(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    # No surge: a standalone operator being switched to peering stops before a peered one runs.
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
    }
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["VIVIFIED_PEERING_NAME"] == "rel-vivified"
    assert only(docs, "ClusterKopfPeering")["metadata"]["name"] == "rel-vivified"
    assert only(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    rules = rules_of(only(docs, "ClusterRole"))
    assert ("kopf.dev", "clusterkopfpeerings", "rel-vivified", "patch") in rules
    assert ("kopf.dev", "clusterkopfpeerings", "*", "watch") in rules

    namespaced = render(
        helm, {"replicaCount": 2, "peering": {"enabled": True}, "watchNamespaces": ["a", "b"]}
    )
    peerings = [d for d in namespaced if d["kind"] == "KopfPeering"]
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["a", "b"]


def test_local_mode_renders_everything_but_the_deployment(helm: Path) -> None:
    docs = render(
        helm,
        {
            "operator": {"enabled": False},
            "watchNamespaces": ["plugins"],
            "webhook": {"url": "https://127.0.0.1:9555/validate-plugin"},
        },
    )
    assert kinds(docs) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "MutatingWebhookConfiguration",
        "Role",
        "Role",
        "RoleBinding",
        "RoleBinding",
        "Secret",
        "ServiceAccount",
        "ValidatingWebhookConfiguration",
    ]


# -- RBAC -------------------------------------------------------------------------------------


def test_cluster_wide_rbac_is_exactly_what_the_operator_uses(helm: Path) -> None:
    docs = render(helm)
    assert rules_of(only(docs, "ClusterRole")) == PLUGIN_RULES | SCAN_RULES
    binding = only(docs, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "rel-vivified", "namespace": NAMESPACE}
    ]
    identity = only(docs, "Role", "rel-vivified-identity")
    assert identity["metadata"]["namespace"] == NAMESPACE
    assert rules_of(identity) == IDENTITY_RULES


def test_namespaced_rbac_grants_only_the_watched_namespaces(helm: Path) -> None:
    docs = render(helm, {"watchNamespaces": ["team-a", "team-b"]})
    cluster = rules_of(only(docs, "ClusterRole"))
    assert cluster == SCAN_RULES | expand(("", "namespaces", "*", "list,watch"))
    roles = [d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == "rel-vivified"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for role in roles:
        assert rules_of(role) == PLUGIN_RULES
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    assert {b["metadata"]["namespace"] for b in bindings} == {"team-a", "team-b", NAMESPACE}


def test_no_rule_is_a_wildcard_or_an_escalation(helm: Path) -> None:
    for values in ({}, {"watchNamespaces": ["a"]}, {"peering": {"enabled": True}}):
        for doc in render(helm, values):
            if doc["kind"] not in ("Role", "ClusterRole"):
                continue
            for group, resource, _, verb in rules_of(doc):
                assert "*" not in (group, resource, verb)
                assert verb not in ("escalate", "bind", "impersonate")
                assert group != "rbac.authorization.k8s.io"
                assert resource not in ("nodes", "pods", "pods/exec", "roles", "clusterroles")


def test_an_existing_signing_key_needs_no_create(helm: Path) -> None:
    docs = render(helm, {"signingKey": {"existingSecret": "my-keys"}})
    rules = rules_of(only(docs, "Role", "rel-vivified-identity"))
    assert ("", "secrets", "my-keys", "get") in rules
    assert ("", "secrets", "*", "create") not in rules
    (container,) = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["VIVIFIED_SIGNING_KEY_SECRET"] == "my-keys"


def test_renamed_configmaps_follow_into_rbac(helm: Path) -> None:
    docs = render(helm, {"operator": {"settings": {"jwksConfigmap": "keys"}}})
    rules = rules_of(only(docs, "Role", "rel-vivified-identity"))
    assert ("", "configmaps", "keys", "get") in rules
    assert ("", "configmaps", "vivified-jwks", "get") not in rules


def test_probing_through_the_api_server_adds_the_service_proxy(helm: Path) -> None:
    docs = render(helm, {"operator": {"settings": {"probeMode": "apiserver-proxy"}}})
    assert rules_of(only(docs, "ClusterRole")) == PLUGIN_RULES | SCAN_RULES | expand(
        ("", "services/proxy", "*", "get")
    )


# -- the webhook ------------------------------------------------------------------------------


def webhook_of(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (hook,) = only(docs, "ValidatingWebhookConfiguration")["webhooks"]
    return dict(hook)


def test_the_webhook_calls_the_operators_handler(helm: Path) -> None:
    docs = render(helm)
    hook = webhook_of(docs)
    assert hook["failurePolicy"] == "Fail"
    assert hook["timeoutSeconds"] == 5
    assert hook["sideEffects"] == "None"
    assert hook["admissionReviewVersions"] == ["v1"]
    assert hook["rules"] == [
        {
            "apiGroups": ["vivified.dev"],
            "apiVersions": ["v1alpha1"],
            "resources": ["vivifiedplugins"],
            "operations": ["CREATE", "UPDATE"],
            "scope": "Namespaced",
        }
    ]
    (service,) = webhook_services(docs)
    assert hook["clientConfig"]["service"] == {
        "name": service["metadata"]["name"],
        "namespace": NAMESPACE,
        "port": 443,
        "path": WEBHOOK_PATH,
    }
    assert service["spec"]["ports"][0]["targetPort"] == "webhook"
    assert (
        service["spec"]["selector"] == only(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    )
    assert "namespaceSelector" not in hook


def finalizer_hook_of(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (hook,) = only(docs, "MutatingWebhookConfiguration")["webhooks"]
    return dict(hook)


def test_the_finalizer_webhook_mutates_creates_only_and_never_blocks(helm: Path) -> None:
    docs = render(helm)
    hook = finalizer_hook_of(docs)
    assert hook["name"] == "add-finalizer.vivified.dev"
    # Ignore: with the operator down a plugin is still created (kopf adds the finalizer later).
    assert (hook["failurePolicy"], hook["reinvocationPolicy"], hook["sideEffects"]) == (
        "Ignore",
        "Never",
        "None",
    )
    assert hook["timeoutSeconds"] == 2
    assert [r["operations"] for r in hook["rules"]] == [["CREATE"]]
    assert hook["rules"][0]["resources"] == ["vivifiedplugins"]
    (service,) = webhook_services(docs)
    assert hook["clientConfig"]["service"] == {
        "name": service["metadata"]["name"],
        "namespace": NAMESPACE,
        "port": 443,
        "path": "/add-finalizer",
    }
    # The same server and CA as the validating webhook.
    assert hook["clientConfig"]["caBundle"] == webhook_of(docs)["clientConfig"]["caBundle"]
    assert "vivified.dev/finalizer" in hook["matchConditions"][0]["expression"]


def test_the_finalizer_webhook_follows_a_local_url_and_can_be_turned_off(helm: Path) -> None:
    url = {"url": "https://127.0.0.1:9555/validate-plugin"}
    hook = finalizer_hook_of(render(helm, {"watchNamespaces": ["p"], "webhook": url}))
    assert hook["clientConfig"]["url"] == "https://127.0.0.1:9555/add-finalizer"
    assert hook["namespaceSelector"]["matchExpressions"][0]["values"] == ["p"]
    off = render(helm, {"webhook": {"finalizer": {"enabled": False}}})
    assert "MutatingWebhookConfiguration" not in kinds(off)
    assert "ValidatingWebhookConfiguration" in kinds(off)


def load_cert(data: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(base64.b64decode(data))


def sans(cert: x509.Certificate) -> list[str]:
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(n.value) for n in names]


def test_the_generated_certificate_is_signed_by_the_ca_bundle(helm: Path) -> None:
    docs = render(helm)
    secret = only(docs, "Secret")
    assert secret["type"] == "kubernetes.io/tls"
    ca = load_cert(webhook_of(docs)["clientConfig"]["caBundle"])
    assert secret["data"]["ca.crt"] == webhook_of(docs)["clientConfig"]["caBundle"]
    cert = load_cert(secret["data"]["tls.crt"])
    assert cert.issuer == ca.subject
    public = ca.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    assert cert.signature_hash_algorithm is not None
    public.verify(
        cert.signature,
        cert.tbs_certificate_bytes,
        padding.PKCS1v15(),
        cert.signature_hash_algorithm,
    )
    assert sans(cert) == [
        "rel-vivified-webhook",
        f"rel-vivified-webhook.{NAMESPACE}",
        f"rel-vivified-webhook.{NAMESPACE}.svc",
        f"rel-vivified-webhook.{NAMESPACE}.svc.cluster.local",
    ]


def test_local_mode_calls_a_url_covered_by_the_certificate(helm: Path) -> None:
    docs = render(
        helm,
        {"watchNamespaces": ["p"], "webhook": {"url": "https://127.0.0.1:9555/validate-plugin"}},
    )
    hook = webhook_of(docs)
    assert hook["clientConfig"]["url"] == "https://127.0.0.1:9555/validate-plugin"
    assert "service" not in hook["clientConfig"]
    assert not webhook_services(docs)
    assert "127.0.0.1" in sans(load_cert(only(docs, "Secret")["data"]["tls.crt"]))
    assert hook["namespaceSelector"]["matchExpressions"] == [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["p"]}
    ]


def test_cert_manager_mode(helm: Path) -> None:
    docs = render(helm, {"webhook": {"certManager": {"enabled": True}}})
    assert not [d for d in docs if d["kind"] == "Secret"]
    certificate = only(docs, "Certificate")
    assert certificate["spec"]["secretName"] == "rel-vivified-webhook-tls"
    assert "rel-vivified-webhook.vivified-system.svc" in certificate["spec"]["dnsNames"]
    assert certificate["spec"]["issuerRef"]["name"] == only(docs, "Issuer")["metadata"]["name"]
    config = only(docs, "ValidatingWebhookConfiguration")
    assert config["metadata"]["annotations"] == {
        "cert-manager.io/inject-ca-from": f"{NAMESPACE}/rel-vivified-webhook"
    }
    assert "caBundle" not in webhook_of(docs)["clientConfig"]

    issuer = {"name": "corp-ca", "kind": "ClusterIssuer"}
    docs = render(helm, {"webhook": {"certManager": {"enabled": True, "issuerRef": issuer}}})
    assert not [d for d in docs if d["kind"] == "Issuer"]
    assert only(docs, "Certificate")["spec"]["issuerRef"] == issuer


def test_cert_manager_cannot_serve_a_loopback_url(helm: Path) -> None:
    with pytest.raises(RenderError, match=r"webhook\.url"):
        render(
            helm,
            {
                "webhook": {
                    "certManager": {"enabled": True},
                    "url": "https://127.0.0.1:9443/validate-plugin",
                }
            },
        )


def test_without_the_webhook_nothing_of_it_is_rendered(helm: Path) -> None:
    docs = render(helm, {"webhook": {"enabled": False}})
    assert not {
        "Secret",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    } & set(kinds(docs))
    assert not webhook_services(docs)
    (container,) = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert not [e for e in container["env"] if e["name"].startswith("VIVIFIED_WEBHOOK_")]
    assert [p["name"] for p in container["ports"]] == ["health"]


def test_the_operator_serves_no_plugin_traffic(helm: Path) -> None:
    # Heartbeats, JWKS and revocations are the core's: no heartbeat Service, port or setting.
    docs = render(helm, {})
    assert not [d for d in docs if d["metadata"]["name"].endswith("-heartbeat")]
    deployment = only(docs, "Deployment")
    template = deployment["spec"]["template"]
    assert template["metadata"]["labels"]["app.kubernetes.io/part-of"] == "vivified"
    (container,) = template["spec"]["containers"]
    assert not [e for e in container["env"] if "HEARTBEAT" in e["name"]]
    assert {p["name"] for p in container["ports"]} <= {"health", "webhook"}
    with pytest.raises(RenderError, match="heartbeat"):
        render(helm, {"heartbeat": {"enabled": True}})  # the legacy value is gone


# -- the core (templates/core.yaml) -------------------------------------------------------------

CORE_PLUGIN_RULES = expand(
    ("vivified.dev", "vivifiedplugins", "*", "get,list,watch"),
    ("coordination.k8s.io", "leases", "*", "get,create,patch"),
)


def test_the_core_runs_two_hardened_replicas_behind_vivified_core(helm: Path) -> None:
    docs = render(helm, core=True)
    deployment = only(docs, "Deployment", "vivified-core")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "vivified-core"
    assert pod["securityContext"]["runAsNonRoot"] is True
    anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    (container,) = pod["containers"]
    assert container["args"][0] == "core"
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["limits"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/part-of"] == "vivified"
    service = only(docs, "Service", "vivified-core")
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"http": 8080, "proxy": 3128}
    assert only(docs, "PodDisruptionBudget", "vivified-core")["spec"]["minAvailable"] == 1
    assert only(docs, "Secret", "vivified-core-key")["data"]["key.pem"]


def test_no_service_links_in_the_operators_and_the_cores_pods(helm: Path) -> None:
    """The Service `vivified-core` would inject VIVIFIED_CORE_PORT=tcp://<ip>:8080 (and more
    VIVIFIED_CORE_* names) into every pod of the release namespace: the operator reads it as its
    `core_port` setting and exits (seen on the real node), the core as its own settings."""
    for core in (False, True):
        for deployment in (d for d in render(helm, core=core) if d["kind"] == "Deployment"):
            assert deployment["spec"]["template"]["spec"]["enableServiceLinks"] is False


def test_the_admin_ui_gets_a_shared_32_byte_session_key_from_a_secret(helm: Path) -> None:
    docs = render(helm, core=True)
    sealed = only(docs, "Secret", "vivified-ui-session")["data"]["session-key"]
    assert len(base64.b64decode(base64.b64decode(sealed), validate=True)) == 32
    (container,) = only(docs, "Deployment", "vivified-core")["spec"]["template"]["spec"][
        "containers"
    ]
    env = {e["name"]: e for e in container["env"]}
    assert env["VIVIFIED_UI_SESSION_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "vivified-ui-session",
        "key": "session-key",
    }
    off = render(helm, {"core": {"ui": {"enabled": False}}}, core=True)
    assert not [
        d for d in off if d["kind"] == "Secret" and d["metadata"]["name"] == "vivified-ui-session"
    ]
    (container,) = only(off, "Deployment", "vivified-core")["spec"]["template"]["spec"][
        "containers"
    ]
    assert {"name": "VIVIFIED_UI", "value": "off"} in container["env"]
    mine = render(helm, {"core": {"ui": {"existingSessionSecret": "mine"}}}, core=True)
    assert not [d for d in mine if d["kind"] == "Secret" and "ui" in d["metadata"]["name"]]


def test_the_core_rbac_is_read_only_plus_leases_and_no_secrets(helm: Path) -> None:
    docs = render(helm, core=True)
    cluster = only(docs, "ClusterRole")
    assert rules_of(cluster) == CORE_PLUGIN_RULES
    identity = only(docs, "Role", "vivified-core-identity")
    assert rules_of(identity) == expand(
        ("", "configmaps", "*", "list,watch"), ("", "events", "*", "create")
    )
    for doc in docs:
        if doc["kind"] in ("Role", "ClusterRole"):
            assert not [r for r in rules_of(doc) if r[1] == "secrets"]
    namespaced = render(helm, {"watchNamespaces": ["team-a"]}, core=True)
    assert rules_of(only(namespaced, "Role", "vivified-core")) == CORE_PLUGIN_RULES
    assert not [d for d in namespaced if d["kind"] == "ClusterRole"]


def test_the_operator_tells_plugins_the_core_url(helm: Path) -> None:
    (container,) = only(render(helm), "Deployment")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["VIVIFIED_CORE_URL"] == "http://vivified-core.vivified-system.svc:8080"


def test_the_core_can_be_left_out(helm: Path) -> None:
    assert render(helm, {"core": {"enabled": False}}, core=True) == []


def _operator_env(helm: Path, values: Mapping[str, Any] | None = None) -> dict[str, str]:
    (container,) = only(render(helm, values), "Deployment")["spec"]["template"]["spec"][
        "containers"
    ]
    names = [e["name"] for e in container["env"]]
    assert len(names) == len(set(names)), "an environment variable is set twice"
    return {e["name"]: e.get("value") for e in container["env"]}


def _secrets_of(pod: Mapping[str, Any]) -> set[str]:
    """Every Secret a pod spec references (volumes, env, envFrom)."""
    found = {v["secret"]["secretName"] for v in pod.get("volumes") or () if "secret" in v}
    for container in pod["containers"]:
        for env in container.get("env") or ():
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                found.add(ref["name"])
        found |= {
            e["secretRef"]["name"] for e in container.get("envFrom") or () if "secretRef" in e
        }
    return found


def test_the_operator_polls_the_cores_operator_routes_and_the_core_reads_no_new_secret(
    helm: Path,
) -> None:
    """The operator reads the core's allowlist state (with the core) and the event counts (with
    the event lane too), with a token it signs itself; the core verifies that token with the
    JWKS ConfigMap it already watches, so it reads no new Secret."""
    plain = _operator_env(helm)
    assert plain["VIVIFIED_EGRESS_REPORT_SECONDS"] == "5"
    assert "VIVIFIED_EVENTS_STATUS_SECONDS" not in plain, "no event lane, no counts to read"
    with_events = _operator_env(helm, {"events": {"enabled": True}})
    assert with_events["VIVIFIED_EVENTS_STATUS_SECONDS"] == "10"
    accepted = OperatorSettings.from_env({k: v for k, v in with_events.items() if v is not None})
    assert accepted.events_status_seconds == 10
    mine = {"events": {"enabled": True}, "operator": {"settings": {"eventsStatusSeconds": 30}}}
    assert _operator_env(helm, mine)["VIVIFIED_EVENTS_STATUS_SECONDS"] == "30"
    no_core = _operator_env(helm, {"core": {"enabled": False}, "events": {"enabled": True}})
    assert "VIVIFIED_EVENTS_STATUS_SECONDS" not in no_core, "nobody to ask"
    for values in (None, {"events": {"enabled": True}}):
        deployment = only(render(helm, values, core=True), "Deployment", "vivified-core")
        # With the event lane the audit trail is on: its checkpoint key (test_chart_audit.py).
        audit = {"rel-vivified-audit-key"} if values else set()
        assert _secrets_of(deployment["spec"]["template"]["spec"]) == {
            "vivified-core-key",
            "vivified-ui-session",
            *audit,
        }
