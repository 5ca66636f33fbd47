"""ServiceAccount, Deployment and Service of a plugin."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from tests.seed import user_management_manifest

from vivified.render import (
    ANNOTATION_MANIFEST_HASH,
    RESERVED_ENV_NAMES,
    PluginInstance,
    render_deployment,
    render_service,
    render_service_account,
    spec_hash,
)
from vivified.resource import EnvVar, PluginSpec
from vivified.settings import OperatorSettings

SETTINGS = OperatorSettings()

USER_MANAGEMENT: dict[str, Any] = user_management_manifest()


def make_spec(manifest: dict[str, Any] | None = None, **spec: Any) -> PluginSpec:
    data: dict[str, Any] = {
        "manifest": {**USER_MANAGEMENT, **(manifest or {})},
        "image": "ghcr.io/acme/user-management:1.0.0",
    }
    data.update(spec)
    return PluginSpec.model_validate({k: v for k, v in data.items() if v is not None})


def make_plugin(
    spec: PluginSpec | None = None,
    *,
    run: bool = True,
    enabled: bool = True,
    token: bool = True,
) -> PluginInstance:
    spec = spec or make_spec()
    return PluginInstance(
        name=spec.manifest.id,
        namespace="plugins",
        uid="0b7c6c4e-1111-2222-3333-444455556666",
        generation=4,
        spec=spec,
        run=run,
        enabled=enabled,
        token_secret_name=f"{spec.manifest.id}-token" if token else None,
    )


def deployment(plugin: PluginInstance | None = None, **settings: Any) -> dict[str, Any]:
    return render_deployment(plugin or make_plugin(), OperatorSettings(**settings))


def pod(plugin: PluginInstance | None = None, **settings: Any) -> dict[str, Any]:
    result: dict[str, Any] = deployment(plugin, **settings)["spec"]["template"]["spec"]
    return result


def container(plugin: PluginInstance | None = None, **settings: Any) -> dict[str, Any]:
    (only,) = pod(plugin, **settings)["containers"]
    result: dict[str, Any] = only
    return result


def env_of(c: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in c["env"]}


# --------------------------------------------------------------------------------------------
# ServiceAccount
# --------------------------------------------------------------------------------------------


def test_service_account_has_no_api_token() -> None:
    sa = render_service_account(make_plugin(), SETTINGS)
    assert sa["apiVersion"] == "v1"
    assert sa["kind"] == "ServiceAccount"
    assert sa["metadata"]["name"] == "user-management"
    assert sa["metadata"]["namespace"] == "plugins"
    assert sa["automountServiceAccountToken"] is False


# --------------------------------------------------------------------------------------------
# Deployment: shape
# --------------------------------------------------------------------------------------------


def test_deployment_identity_and_selector() -> None:
    d = deployment()
    assert d["apiVersion"] == "apps/v1"
    assert d["kind"] == "Deployment"
    assert d["metadata"]["name"] == "user-management"
    assert d["spec"]["selector"] == {"matchLabels": {"vivified.dev/plugin": "user-management"}}
    template_labels = d["spec"]["template"]["metadata"]["labels"]
    assert template_labels["vivified.dev/plugin"] == "user-management"
    assert template_labels["app.kubernetes.io/version"] == "1.0.0"


def test_deployment_rolls_one_pod_at_a_time_and_keeps_little_history() -> None:
    spec = deployment()["spec"]
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    assert spec["revisionHistoryLimit"] == 3
    assert deployment(revision_history_limit=1)["spec"]["revisionHistoryLimit"] == 1


def test_pod_identity_and_api_isolation() -> None:
    p = pod()
    assert p["serviceAccountName"] == "user-management"
    assert p["automountServiceAccountToken"] is False
    assert p["enableServiceLinks"] is False
    assert p["terminationGracePeriodSeconds"] == 30


# --------------------------------------------------------------------------------------------
# Deployment: replicas
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("replicas", "run", "enabled", "expected"),
    [
        (1, True, True, 1),
        (3, True, True, 3),
        (0, True, True, 0),
        (3, False, True, 0),  # dependencies missing under the block policy
        (3, False, False, 0),  # disabled
        (3, True, False, 0),  # disabled wins even if the shell said run
    ],
)
def test_replicas(replicas: int, run: bool, enabled: bool, expected: int) -> None:
    plugin = make_plugin(make_spec(replicas=replicas), run=run, enabled=enabled)
    assert deployment(plugin)["spec"]["replicas"] == expected


# --------------------------------------------------------------------------------------------
# Deployment: security
# --------------------------------------------------------------------------------------------


def test_pod_security_context_is_restricted() -> None:
    assert pod()["securityContext"] == {
        "fsGroup": 65532,
        "runAsGroup": 65532,
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def test_pod_ids_come_from_settings() -> None:
    ctx = pod(run_as_user=1000, run_as_group=2000, fs_group=3000)["securityContext"]
    assert (ctx["runAsUser"], ctx["runAsGroup"], ctx["fsGroup"]) == (1000, 2000, 3000)


def test_container_security_context_is_restricted() -> None:
    assert container()["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def test_writable_tmp_is_a_size_limited_empty_dir() -> None:
    p = pod()
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in p["volumes"]
    assert {"name": "tmp", "mountPath": "/tmp"} in p["containers"][0]["volumeMounts"]
    sized = pod(tmp_size_limit_mb=16)
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}} in sized["volumes"]


# --------------------------------------------------------------------------------------------
# Deployment: container
# --------------------------------------------------------------------------------------------


def test_container_image_and_named_port() -> None:
    c = container()
    assert c["name"] == "plugin"
    assert c["image"] == "ghcr.io/acme/user-management:1.0.0"
    assert c["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]


@pytest.mark.parametrize(
    ("spec_port", "health_check", "expected"),
    [
        (None, None, 8000),
        (9000, None, 9000),
        (None, {"type": "http", "port": 8080}, 8080),
        (9000, {"type": "http", "port": 8080}, 9000),
    ],
)
def test_container_port_is_the_effective_port(
    spec_port: int | None, health_check: dict[str, Any] | None, expected: int
) -> None:
    spec = make_spec({"health_check": health_check}, port=spec_port)
    assert container(make_plugin(spec))["ports"][0]["containerPort"] == expected


def test_container_resources_from_the_manifest() -> None:
    spec = make_spec({"resources": {"memory_limit": 512, "cpu_limit": 1.5}})
    assert container(make_plugin(spec))["resources"] == {
        "limits": {"cpu": "1500m", "memory": "512Mi"},
        "requests": {"cpu": "1500m", "memory": "512Mi"},
    }


def test_container_resources_default_when_absent() -> None:
    assert container()["resources"]["limits"] == {"cpu": "500m", "memory": "256Mi"}


# --------------------------------------------------------------------------------------------
# Deployment: environment
# --------------------------------------------------------------------------------------------


def test_operator_env_comes_first_in_a_fixed_order() -> None:
    names = [e["name"] for e in container()["env"]]
    assert names == [
        "PLUGIN_ID",
        "VIVIFIED_PLUGIN_PORT",
        "VIVIFIED_CORE_URL",
        "VIVIFIED_HEARTBEAT_URL",
        "VIVIFIED_REVOCATIONS_URL",
        "VIVIFIED_JWKS_URL",
        "PLUGIN_TOKEN_FILE",
        "VIVIFIED_JWKS_FILE",
    ]
    assert env_of(container()) == {
        "PLUGIN_ID": "user-management",
        "VIVIFIED_PLUGIN_PORT": "8000",
        "VIVIFIED_CORE_URL": "http://vivified-core.vivified-system.svc:8080",
        "VIVIFIED_HEARTBEAT_URL": "http://vivified-core.vivified-system.svc:8080/v1/heartbeat",
        "VIVIFIED_REVOCATIONS_URL": "http://vivified-core.vivified-system.svc:8080/v1/revocations",
        "VIVIFIED_JWKS_URL": "http://vivified-core.vivified-system.svc:8080/v1/jwks",
        "PLUGIN_TOKEN_FILE": "/var/run/vivified/token",
        "VIVIFIED_JWKS_FILE": "/var/run/vivified/jwks.json",
    }


def test_env_follows_settings() -> None:
    env = env_of(container(core_url="https://core.example:9443", token_mount_dir="/etc/viv"))
    assert env["VIVIFIED_CORE_URL"] == "https://core.example:9443"
    assert env["PLUGIN_TOKEN_FILE"] == "/etc/viv/token"
    assert env["VIVIFIED_JWKS_FILE"] == "/etc/viv/jwks.json"


def test_heartbeat_revocations_and_jwks_urls_point_to_the_core() -> None:
    core = "http://vivified-core.vivified-system.svc:8080"
    default = env_of(container())
    assert default["VIVIFIED_HEARTBEAT_URL"] == core + "/v1/heartbeat"
    assert default["VIVIFIED_REVOCATIONS_URL"] == core + "/v1/revocations"
    assert default["VIVIFIED_JWKS_URL"] == core + "/v1/jwks"
    assert default["VIVIFIED_JWKS_FILE"] == "/var/run/vivified/jwks.json"  # the mount stays
    # A core behind a path prefix or another port: every URL follows core_url.
    moved = env_of(container(core_url="https://ops.example:9443/viv/"))
    assert moved["VIVIFIED_HEARTBEAT_URL"] == "https://ops.example:9443/viv/v1/heartbeat"
    assert moved["VIVIFIED_REVOCATIONS_URL"] == "https://ops.example:9443/viv/v1/revocations"
    assert moved["VIVIFIED_JWKS_URL"] == "https://ops.example:9443/viv/v1/jwks"


def test_revocations_and_jwks_urls_cannot_be_overridden_by_user_env() -> None:
    assert {"VIVIFIED_REVOCATIONS_URL", "VIVIFIED_JWKS_URL", "VIVIFIED_HEARTBEAT_URL"} <= (
        RESERVED_ENV_NAMES
    )
    spec = make_spec().model_copy(
        update={
            "env": [
                EnvVar.model_construct(name="VIVIFIED_REVOCATIONS_URL", value="http://evil/"),
                EnvVar.model_construct(name="VIVIFIED_JWKS_URL", value="http://evil/"),
            ]
        }
    )
    env = container(make_plugin(spec))["env"]
    values = [e["value"] for e in env if e["name"].endswith(("REVOCATIONS_URL", "JWKS_URL"))]
    assert len(values) == 2
    assert not any("evil" in v for v in values)


def test_user_env_follows_operator_env_in_order() -> None:
    spec = make_spec(env=[{"name": "LOG_LEVEL", "value": "debug"}, {"name": "EMPTY"}])
    env = container(make_plugin(spec))["env"]
    assert env[-2:] == [{"name": "LOG_LEVEL", "value": "debug"}, {"name": "EMPTY", "value": ""}]


def test_user_env_cannot_override_operator_env() -> None:
    # The spec validation rejects these names; render is defensive anyway.
    spec = make_spec().model_copy(
        update={
            "env": [
                EnvVar.model_construct(name="PLUGIN_ID", value="evil"),
                EnvVar.model_construct(name="VIVIFIED_ANYTHING", value="x"),
                EnvVar.model_construct(name="OK", value="1"),
            ]
        }
    )
    env = container(make_plugin(spec))["env"]
    assert [e for e in env if e["name"] == "PLUGIN_ID"] == [
        {"name": "PLUGIN_ID", "value": "user-management"}
    ]
    assert "VIVIFIED_ANYTHING" not in {e["name"] for e in env}
    assert env[-1] == {"name": "OK", "value": "1"}


def test_duplicate_user_env_names_collapse_to_the_last_value() -> None:
    # Server-side apply rejects duplicate keys in env, so render never emits them.
    spec = make_spec(env=[{"name": "A", "value": "1"}, {"name": "B"}, {"name": "A", "value": "2"}])
    env = container(make_plugin(spec))["env"]
    assert [e["name"] for e in env].count("A") == 1
    assert env[-2:] == [{"name": "A", "value": "2"}, {"name": "B", "value": ""}]


# --------------------------------------------------------------------------------------------
# Deployment: token volume
# --------------------------------------------------------------------------------------------


def test_token_secret_is_mounted_read_only_as_a_directory() -> None:
    p = pod()
    assert {
        "name": "vivified-token",
        "secret": {
            "secretName": "user-management-token",
            "defaultMode": 0o440,
            "optional": False,
        },
    } in p["volumes"]
    mount = next(m for m in p["containers"][0]["volumeMounts"] if m["name"] == "vivified-token")
    assert mount == {"name": "vivified-token", "mountPath": "/var/run/vivified", "readOnly": True}
    assert "subPath" not in mount  # subPath mounts are never refreshed by the kubelet


def test_no_token_means_no_token_volume_and_no_token_env() -> None:
    plugin = make_plugin(token=False)
    p = pod(plugin)
    assert [v["name"] for v in p["volumes"]] == ["tmp"]
    assert [m["name"] for m in p["containers"][0]["volumeMounts"]] == ["tmp"]
    assert "PLUGIN_TOKEN_FILE" not in env_of(p["containers"][0])
    assert "VIVIFIED_JWKS_FILE" not in env_of(p["containers"][0])


def test_disabled_plugin_has_zero_replicas_and_no_token_volume() -> None:
    d = deployment(make_plugin(enabled=False, run=False, token=False))
    assert d["spec"]["replicas"] == 0
    volumes = d["spec"]["template"]["spec"]["volumes"]
    assert all("secret" not in v for v in volumes)


# --------------------------------------------------------------------------------------------
# Deployment: pod-template hash
# --------------------------------------------------------------------------------------------


def template_hash(plugin: PluginInstance) -> str:
    value: str = deployment(plugin)["spec"]["template"]["metadata"]["annotations"][
        ANNOTATION_MANIFEST_HASH
    ]
    return value


def test_template_carries_the_spec_hash_and_nothing_about_the_token() -> None:
    plugin = make_plugin()
    annotations = deployment(plugin)["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {ANNOTATION_MANIFEST_HASH: spec_hash(plugin.spec)}
    assert len(annotations[ANNOTATION_MANIFEST_HASH]) == 64


@pytest.mark.parametrize(
    ("manifest_change", "spec_change"),
    [
        ({"version": "1.0.1"}, {}),
        ({"traits": ["handles_pii", "audit_required", "external_service"]}, {}),
        ({"endpoints": {"health": "/healthz"}}, {}),
        ({"resources": {"memory_limit": 128}}, {}),
        ({}, {"image": "ghcr.io/acme/user-management:1.0.1"}),
        ({}, {"env": [{"name": "A", "value": "1"}]}),
        ({}, {"port": 9000}),
    ],
)
def test_what_the_pods_run_changes_the_hash(
    manifest_change: dict[str, Any], spec_change: dict[str, Any]
) -> None:
    before = template_hash(make_plugin())
    after = template_hash(make_plugin(make_spec(manifest_change, **spec_change)))
    assert before != after


def test_scaling_disabling_and_token_rotation_do_not_change_the_hash() -> None:
    base = template_hash(make_plugin())
    assert template_hash(make_plugin(make_spec(replicas=5))) == base
    assert template_hash(make_plugin(make_spec(enabled=False), enabled=False)) == base
    assert template_hash(make_plugin(run=False)) == base


def test_equivalent_spellings_of_a_manifest_hash_the_same() -> None:
    explicit = make_spec({"dependencies": [], "allowed_domains": []})
    reordered_manifest = dict(reversed(list(USER_MANAGEMENT.items())))
    implicit = PluginSpec.model_validate(
        {"manifest": reordered_manifest, "image": "ghcr.io/acme/user-management:1.0.0"}
    )
    assert spec_hash(explicit) == spec_hash(implicit)


def test_same_input_renders_identically() -> None:
    first = deployment(make_plugin())
    assert deployment(make_plugin()) == first
    assert copy.deepcopy(first) == first


# --------------------------------------------------------------------------------------------
# Probes
# --------------------------------------------------------------------------------------------

TIMING_DEFAULTS = {"periodSeconds": 30, "timeoutSeconds": 5, "failureThreshold": 3}


def probes_of(manifest: dict[str, Any], **spec: Any) -> dict[str, Any]:
    c = container(make_plugin(make_spec(manifest, **spec)))
    return {k: c[k] for k in ("startupProbe", "readinessProbe", "livenessProbe") if k in c}


def test_http_health_check() -> None:
    hc = {
        "type": "http",
        "port": 8080,
        "path": "/ready",
        "interval_seconds": 10,
        "timeout_seconds": 2,
        "failure_threshold": 5,
    }
    probes = probes_of({"health_check": hc})
    handler = {"httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP"}}
    steady = {**handler, "periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 5}
    assert probes["readinessProbe"] == {**steady, "successThreshold": 1}
    assert probes["livenessProbe"] == {**steady, "successThreshold": 1}
    assert probes["startupProbe"] == {
        **handler,
        "periodSeconds": 5,
        "timeoutSeconds": 2,
        "failureThreshold": 60,
        "successThreshold": 1,
    }


def test_http_health_check_defaults_to_health_path_and_plugin_port() -> None:
    probes = probes_of({"health_check": {"type": "http"}}, port=9000)
    assert probes["readinessProbe"]["httpGet"] == {
        "path": "/health",
        "port": 9000,
        "scheme": "HTTP",
    }
    assert {k: probes["readinessProbe"][k] for k in TIMING_DEFAULTS} == TIMING_DEFAULTS


def test_health_check_port_differing_from_the_plugin_port_is_probed() -> None:
    probes = probes_of({"health_check": {"type": "tcp", "port": 9090}}, port=8000)
    assert probes["livenessProbe"]["tcpSocket"] == {"port": 9090}


def test_tcp_health_check() -> None:
    probes = probes_of({"health_check": {"type": "tcp", "interval_seconds": 15}})
    for name in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert probes[name]["tcpSocket"] == {"port": 8000}
        assert "httpGet" not in probes[name]
    assert probes["readinessProbe"]["periodSeconds"] == 15


def test_custom_health_check_has_no_probes() -> None:
    assert probes_of({"health_check": {"type": "custom"}}) == {}


def test_no_health_check_but_a_health_endpoint_probes_that_endpoint() -> None:
    probes = probes_of({"health_check": None, "endpoints": {"health": "/status/health"}})
    assert probes["readinessProbe"]["httpGet"] == {
        "path": "/status/health",
        "port": 8000,
        "scheme": "HTTP",
    }
    assert {k: probes["livenessProbe"][k] for k in TIMING_DEFAULTS} == TIMING_DEFAULTS


def test_no_health_check_and_no_health_endpoint_probes_the_tcp_port() -> None:
    probes = probes_of({"health_check": None, "endpoints": {"user_info": "/api/users/{id}"}})
    assert probes["readinessProbe"]["tcpSocket"] == {"port": 8000}
    assert probes["livenessProbe"]["tcpSocket"] == {"port": 8000}


def test_fallback_probe_timings_come_from_settings() -> None:
    plugin = make_plugin(make_spec({"health_check": None}))
    c = container(
        plugin, health_interval_seconds=7, health_timeout_seconds=3, health_failure_threshold=4
    )
    assert {k: c["readinessProbe"][k] for k in TIMING_DEFAULTS} == {
        "periodSeconds": 7,
        "timeoutSeconds": 3,
        "failureThreshold": 4,
    }


# --------------------------------------------------------------------------------------------
# Service
# --------------------------------------------------------------------------------------------


def test_service_is_cluster_ip_on_the_effective_port() -> None:
    svc = render_service(make_plugin(make_spec(port=9000)), SETTINGS)
    assert svc["apiVersion"] == "v1"
    assert svc["kind"] == "Service"
    assert svc["metadata"]["name"] == "user-management"
    assert svc["spec"] == {
        "type": "ClusterIP",
        "selector": {"vivified.dev/plugin": "user-management"},
        "ports": [{"name": "http", "port": 9000, "targetPort": "http", "protocol": "TCP"}],
    }
