"""The operator, end to end on a real API server: a VivifiedPlugin becomes a locked-down workload.

Every test starts its own operator process scoped to its namespace(s) and talks to the cluster
only through the API, as a user would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException
from tests.cluster_support import KubeCluster
from tests.e2e.conftest import OPERATOR_NAMESPACE, StartOperator
from tests.e2e.kube import (
    EXAMPLES,
    REPO,
    Cluster,
    audited_writes,
    load_example,
    plugin_body,
    wait_for,
)

from vivified import tokens
from vivified.diff import contains
from vivified.settings import OperatorSettings

pytestmark = pytest.mark.cluster

DEFAULTS = OperatorSettings()


def token_of(cluster: Cluster, namespace: str, plugin_id: str) -> tuple[str, dict[str, str]]:
    data = cluster.secret_data(namespace, f"{plugin_id}-token")
    assert data is not None, "token Secret missing"
    secret = cluster.core.read_namespaced_secret(f"{plugin_id}-token", namespace)
    return data["token"], dict(secret.metadata.annotations or {})


def jwks(cluster: Cluster) -> dict[str, Any]:
    raw = cluster.configmap_data(OPERATOR_NAMESPACE, DEFAULTS.jwks_configmap)
    return dict(json.loads(raw[tokens.JWKS_CONFIGMAP_KEY]))


def revoked(cluster: Cluster) -> frozenset[str]:
    data = cluster.configmap_data(OPERATOR_NAMESPACE, DEFAULTS.revocations_configmap)
    return tokens.revocations_from_configmap_data(data).jtis


def verify(cluster: Cluster, token: str) -> tokens.VerifiedToken:
    return tokens.verify_plugin_token(
        token,
        jwks(cluster),
        audience=DEFAULTS.token_audience,
        issuer=DEFAULTS.token_issuer,
        revoked_jtis=revoked(cluster),
        now=datetime.now(UTC),
    )


def test_user_management_example_becomes_active_hardened_and_identified(
    cluster: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    start_operator(namespace)
    body = load_example("user-management.yaml")
    manifest = body["spec"]["manifest"]
    started = time.monotonic()
    cluster.apply_plugin(namespace, body)
    status = cluster.wait_phase(namespace, "user-management", "Active", timeout=10)
    assert time.monotonic() - started <= 10
    assert status["ready"] == "1/1"
    assert status["readyReplicas"] == 1
    assert status["health"] == "unknown"
    ready = cluster.condition(namespace, "user-management", "Ready")
    assert ready["status"] == "True"

    deployment = cluster.apps.read_namespaced_deployment("user-management", namespace)
    pod = deployment.spec.template.spec
    (container,) = pod.containers
    resources = manifest.get("resources")
    expected_memory = f"{resources['memory_limit']}Mi" if resources else "256Mi"
    assert container.resources.limits["memory"] == expected_memory
    assert container.resources.limits["cpu"] == (
        "500m" if not resources else container.resources.limits["cpu"]
    )
    assert pod.security_context.run_as_non_root is True
    assert pod.security_context.seccomp_profile.type == "RuntimeDefault"
    assert pod.automount_service_account_token is False
    assert pod.service_account_name == "user-management"
    sc = container.security_context
    assert sc.read_only_root_filesystem is True
    assert sc.allow_privilege_escalation is False
    assert sc.capabilities.drop == ["ALL"]
    assert container.readiness_probe is not None
    assert container.liveness_probe is not None
    env = {e.name: e.value for e in container.env}
    assert env["PLUGIN_ID"] == "user-management"
    assert env["PLUGIN_TOKEN_FILE"].startswith(DEFAULTS.token_mount_dir)
    assert "VIVIFIED_CORE_URL" in env
    assert deployment.metadata.owner_references[0].kind == "VivifiedPlugin"
    assert deployment.metadata.labels["vivified.dev/plugin"] == "user-management"
    assert deployment.metadata.labels["app.kubernetes.io/managed-by"] == "vivified-operator"

    children = cluster.children(namespace, "user-management")
    assert children == {
        "ServiceAccount": ["user-management"],
        "Secret": ["user-management-token"],
        "Deployment": ["user-management"],
        "Service": ["user-management"],
        "NetworkPolicy": ["user-management"],
    }
    sa = cluster.core.read_namespaced_service_account("user-management", namespace)
    assert sa.automount_service_account_token is False

    token, notes = token_of(cluster, namespace, "user-management")
    claims = verify(cluster, token)
    assert claims.plugin_id == "user-management"
    assert claims.subject == "plugin:user-management"
    assert claims.kid == status["token"]["keyId"]
    assert set(claims.traits) == set(manifest["traits"])
    assert set(claims.data_classification) == set(manifest["security"]["data_classification"])
    for claim in ("iss", "sub", "aud", "iat", "nbf", "exp", "jti", "plugin_id", "type", "traits"):
        assert claim in claims.claims
    assert claims.claims["type"] == "plugin"
    assert notes["vivified.dev/token-jti"] == claims.jti
    plugin = cluster.plugin(namespace, "user-management") or {}
    assert token not in json.dumps(plugin)
    assert plugin["metadata"]["finalizers"] == ["vivified.dev/finalizer"]
    kopf_keys = [k for k in plugin["metadata"].get("annotations", {}) if "kopf.zalando.org" in k]
    assert kopf_keys == [], "kopf bookkeeping must live under vivified.dev/"
    # kopf keeps no diff base (shell.main.NoDiffBase): the operator's only write to the plugin
    # itself is the finalizer (no webhook here, so kopf adds it); everything else is status.
    assert "vivified.dev/last-handled-configuration" not in plugin["metadata"].get(
        "annotations", {}
    )
    finalizer_only = {"f:metadata": {"f:finalizers": {".": {}, 'v:"vivified.dev/finalizer"': {}}}}
    for entry in plugin["metadata"]["managedFields"]:
        if entry.get("subresource") == "status" or "f:spec" in entry["fieldsV1"]:
            continue  # the operator's status writes; the test's own create
        assert entry["fieldsV1"] == finalizer_only, entry


def test_invalid_example_reports_every_error_and_creates_nothing(
    cluster: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    start_operator(namespace)
    path = EXAMPLES / "invalid" / "phi-without-controls.yaml"
    body = yaml.safe_load(path.read_text())
    name = body["metadata"]["name"]
    cluster.apply_plugin(namespace, body)
    status = cluster.wait_phase(namespace, name, "Invalid")
    cli = subprocess.run(
        [sys.executable, "-m", "vivified", "validate", "--output", "json", str(path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    expected = json.loads(cli.stdout)[0]["errors"]
    assert expected, "the example is meant to be invalid"
    assert sorted(status["validationErrors"], key=str) == sorted(expected, key=str)

    def warning() -> Any:
        return [
            e
            for e in cluster.events(namespace, name)
            if e.type == "Warning" and e.reason == "ValidationFailed"
        ]

    (event, *_) = wait_for("a Warning event", warning)
    for error in expected:
        assert error["message"] in event.message
    time.sleep(1)
    assert all(not names for names in cluster.children(namespace, name).values())


def test_disable_revokes_and_scales_down_then_enable_reissues(
    cluster: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    start_operator(namespace)
    cluster.apply_plugin(namespace, plugin_body("toggler"))
    cluster.wait_phase(namespace, "toggler", "Active")
    first_jti = token_of(cluster, namespace, "toggler")[1]["vivified.dev/token-jti"]

    cluster.patch_spec(namespace, "toggler", {"enabled": False})
    cluster.wait_phase(namespace, "toggler", "Disabled")
    deployment = cluster.apps.read_namespaced_deployment("toggler", namespace)
    assert deployment.spec.replicas == 0
    assert cluster.secret_data(namespace, "toggler-token") is None
    wait_for("jti revoked", lambda: first_jti in revoked(cluster))
    policy = cluster.net.read_namespaced_network_policy("toggler", namespace)
    assert sorted(policy.spec.policy_types) == ["Egress", "Ingress"]
    assert not policy.spec.ingress
    assert not policy.spec.egress

    cluster.patch_spec(namespace, "toggler", {"enabled": True})
    cluster.wait_phase(namespace, "toggler", "Active")
    token, notes = token_of(cluster, namespace, "toggler")
    assert notes["vivified.dev/token-jti"] != first_jti
    assert verify(cluster, token).jti == notes["vivified.dev/token-jti"]
    assert cluster.apps.read_namespaced_deployment("toggler", namespace).spec.replicas == 1


def test_dependencies_gate_startup_and_cycles_are_reported_on_every_member(
    cluster: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    start_operator(namespace)
    cluster.apply_plugin(namespace, plugin_body("bystander"))
    cluster.apply_plugin(namespace, plugin_body("dep-b", dependencies=["dep-a"]))
    cluster.wait_phase(namespace, "bystander", "Active")
    status = cluster.wait_phase(namespace, "dep-b", "Pending")
    wait_for(
        "DependenciesReady names dep-a",
        lambda: (
            "dep-a" in cluster.condition(namespace, "dep-b", "DependenciesReady").get("message", "")
        ),
    )
    assert status["ready"] == "0/0"
    assert cluster.apps.read_namespaced_deployment("dep-b", namespace).spec.replicas == 0

    cluster.apply_plugin(namespace, plugin_body("dep-a"))
    cluster.wait_phase(namespace, "dep-a", "Active")
    cluster.wait_phase(namespace, "dep-b", "Active", timeout=10)
    assert cluster.apps.read_namespaced_deployment("dep-b", namespace).spec.replicas == 1
    # Effective permissions (the operator lane's policy): dep-b may call dep-a, and dep-a
    # knows it; the bystander is nobody's caller or target.
    expected = {
        "dep-b": {"mayCall": ["dep-a"], "callableBy": []},
        "dep-a": {"mayCall": [], "callableBy": ["dep-b"]},
        "bystander": {"mayCall": [], "callableBy": []},
    }
    for member, wanted in expected.items():
        wait_for(
            f"permissions of {member}",
            lambda m=member, w=wanted: cluster.status(namespace, m).get("permissions") == w,
        )

    cluster.apply_plugin(namespace, plugin_body("dep-a", dependencies=["dep-b"]))
    for member, path in (
        ("dep-a", "dep-a -> dep-b -> dep-a"),
        ("dep-b", "dep-b -> dep-a -> dep-b"),
    ):
        wait_for(
            f"cycle reported on {member}",
            lambda m=member, p=path: (
                p in cluster.condition(namespace, m, "DependenciesReady").get("message", "")
            ),
        )
    assert cluster.status(namespace, "bystander")["phase"] == "Active"


def test_deleted_or_edited_children_are_restored(
    cluster: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    start_operator(namespace)
    cluster.apply_plugin(namespace, plugin_body("drifter"))
    cluster.wait_phase(namespace, "drifter", "Active")
    original = cluster.apps.read_namespaced_deployment("drifter", namespace)
    limits = original.spec.template.spec.containers[0].resources.limits

    cluster.apps.delete_namespaced_deployment("drifter", namespace)
    started = time.monotonic()
    wait_for(
        "Deployment recreated",
        lambda: (
            cluster.apps.read_namespaced_deployment("drifter", namespace).metadata.uid
            != original.metadata.uid
        ),
        timeout=10,
    )
    assert time.monotonic() - started <= 10

    cluster.apps.patch_namespaced_deployment(
        "drifter",
        namespace,
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "plugin", "resources": {"limits": {"memory": "4Gi"}}}
                        ]
                    }
                }
            }
        },
    )
    wait_for(
        "limits restored",
        lambda: (
            cluster.apps.read_namespaced_deployment("drifter", namespace)
            .spec.template.spec.containers[0]
            .resources.limits
            == limits
        ),
        timeout=10,
    )
    cluster.core.delete_namespaced_service("drifter", namespace)
    wait_for("Service recreated", lambda: cluster.children(namespace, "drifter")["Service"])


def test_deleting_the_plugin_removes_children_and_revokes_its_token(
    cluster: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    start_operator(namespace)
    cluster.apply_plugin(namespace, plugin_body("goner"))
    cluster.wait_phase(namespace, "goner", "Active")
    jti = token_of(cluster, namespace, "goner")[1]["vivified.dev/token-jti"]
    cluster.delete_plugin(namespace, "goner")
    wait_for("plugin gone", lambda: cluster.plugin(namespace, "goner") is None)
    assert jti in revoked(cluster)
    wait_for(
        "children garbage-collected",
        lambda: all(not names for names in cluster.children(namespace, "goner").values()),
        timeout=30,
    )


NAMES = ("ns-a", "ns-b")


def test_deleting_a_namespace_with_active_plugins_completes_and_revokes_their_tokens(
    cluster: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    # The namespace controller deletes the children first; the operator must not re-create
    # them (refused: the namespace is terminating) but clean up each plugin and let it go.
    start_operator(namespace)
    for name in NAMES:
        cluster.apply_plugin(namespace, plugin_body(name))
    jtis = []
    for name in NAMES:
        cluster.wait_phase(namespace, name, "Active")
        jtis.append(token_of(cluster, namespace, name)[1]["vivified.dev/token-jti"])
    started = time.monotonic()
    cluster.core.delete_namespace(namespace)

    def gone() -> bool:
        try:
            cluster.core.read_namespace(namespace)
        except ApiException as error:
            return error.status == 404
        return False

    def marked_or_gone(name: str) -> bool:
        plugin = cluster.plugin(namespace, name)
        return plugin is None or bool(plugin["metadata"].get("deletionTimestamp"))

    # The operator's part: once the namespace controller marks the plugins for deletion, they
    # go at once (no finalizer stripping by the test). Reaching them is the controller's own
    # pace, which with other tests' namespaces terminating can take a minute or more.
    wait_for("plugins marked for deletion", lambda: all(map(marked_or_gone, NAMES)), 150)
    wait_for(
        "plugins released",
        lambda: all(cluster.plugin(namespace, n) is None for n in NAMES),
        timeout=30,
    )
    wait_for("namespace deleted", gone, timeout=90)
    assert time.monotonic() - started < 270
    assert set(jtis) <= revoked(cluster)


def test_render_prints_what_the_operator_creates(
    cluster: Cluster, namespace: str, start_operator: StartOperator, tmp_path: Any
) -> None:
    operator = start_operator(namespace)
    body = plugin_body("rendered")
    body["metadata"]["namespace"] = namespace
    cluster.apply_plugin(namespace, body)
    cluster.wait_phase(namespace, "rendered", "Active")
    source = tmp_path / "plugin.yaml"
    source.write_text(yaml.safe_dump(body))
    output = subprocess.run(
        [sys.executable, "-m", "vivified", "render", str(source)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env=operator.env,  # the same settings the operator runs with
    ).stdout
    rendered = {d["kind"]: d for d in yaml.safe_load_all(output) if d}
    assert "token" not in output.lower() or "eyJ" not in output
    live = {
        "ServiceAccount": cluster.api.sanitize_for_serialization(
            cluster.core.read_namespaced_service_account("rendered", namespace)
        ),
        "Deployment": cluster.api.sanitize_for_serialization(
            cluster.apps.read_namespaced_deployment("rendered", namespace)
        ),
        "Service": cluster.api.sanitize_for_serialization(
            cluster.core.read_namespaced_service("rendered", namespace)
        ),
        "NetworkPolicy": cluster.api.sanitize_for_serialization(
            cluster.net.read_namespaced_network_policy("rendered", namespace)
        ),
    }
    for kind, obj in live.items():
        assert kind in rendered, f"render printed no {kind}"
        if "spec" in rendered[kind]:
            assert contains(obj["spec"], rendered[kind]["spec"]), f"{kind} spec differs"
        assert contains(obj["metadata"]["labels"], rendered[kind]["metadata"]["labels"])


def test_an_unchanged_plugin_causes_no_writes_on_re_reconcile(
    cluster: Cluster, namespace: str, start_operator: StartOperator, kube_cluster: KubeCluster
) -> None:
    first = start_operator(namespace)
    cluster.apply_plugin(namespace, plugin_body("steady"))
    cluster.wait_phase(namespace, "steady", "Active")
    time.sleep(2)  # let the status write's own watch event come back and settle
    first.stop()

    audit_log = kube_cluster.state_dir / "logs" / "audit.log" if kube_cluster.state_dir else None
    offset = audit_log.stat().st_size if audit_log else 0
    second = start_operator(namespace)
    second.wait_log(rf"reconciled {namespace}/steady: \d+ write", timeout=30)
    time.sleep(3)  # further events (resume handlers, informer relists) also reconcile
    second.stop()
    assert second.writes() == {}, second.text()[-3000:]
    if audit_log is not None:
        # The API server's own record, which also covers kopf's requests.
        assert audited_writes(audit_log, offset, namespace, ("kopf", "vivified")) == []


def test_a_plugin_id_is_unique_across_namespaces(
    cluster: Cluster, namespace: str, second_namespace: str, start_operator: StartOperator
) -> None:
    start_operator(namespace, second_namespace)
    cluster.apply_plugin(namespace, plugin_body("only-one"))
    cluster.wait_phase(namespace, "only-one", "Active")
    cluster.apply_plugin(second_namespace, plugin_body("only-one"))
    status = cluster.wait_phase(second_namespace, "only-one", "Invalid")
    assert any(
        e["field"] == "spec.manifest.id" and namespace in e["message"]
        for e in status["validationErrors"]
    )
    assert cluster.status(namespace, "only-one")["phase"] == "Active"
    assert all(not v for v in cluster.children(second_namespace, "only-one").values())


def test_a_running_plugin_that_becomes_invalid_keeps_its_last_valid_workload(
    cluster: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    start_operator(namespace)
    cluster.apply_plugin(namespace, plugin_body("keeper"))
    cluster.wait_phase(namespace, "keeper", "Active")
    before = cluster.apps.read_namespaced_deployment("keeper", namespace)
    bad = plugin_body("keeper", traits=["admin"])
    cluster.apply_plugin(namespace, bad)
    cluster.wait_phase(namespace, "keeper", "Invalid")
    ready = cluster.condition(namespace, "keeper", "Ready")
    assert "last valid workload" in ready["message"]
    after = cluster.apps.read_namespaced_deployment("keeper", namespace)
    assert after.metadata.resource_version == before.metadata.resource_version
