"""OperatorSettings: defaults, derived values, validation, and the VIVIFIED_* environment."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vivified.settings import (
    PLUGIN_COMMON_LABELS,
    OperatorSettings,
    SettingsError,
    env_var_name,
    format_selector,
    parse_selector,
)

# --------------------------------------------------------------------------------------------
# Defaults
# --------------------------------------------------------------------------------------------


def test_defaults_match_the_documented_install() -> None:
    s = OperatorSettings()
    assert s.operator_namespace == "vivified-system"
    assert s.core_url == "http://vivified-core.vivified-system.svc:8080"
    assert s.default_memory_limit_mb == 256
    assert s.default_cpu_limit == 0.5
    assert s.resource_request_fraction == 1.0
    assert dict(s.platform_pod_selector) == {"app.kubernetes.io/part-of": "vivified"}
    assert dict(s.platform_namespace_selector) == {"kubernetes.io/metadata.name": "vivified-system"}
    assert dict(s.dns_namespace_selector) == {"kubernetes.io/metadata.name": "kube-system"}
    assert dict(s.dns_pod_selector) == {"k8s-app": "kube-dns"}
    assert s.token_ttl_seconds == 86400
    assert s.token_refresh_fraction == 0.8
    assert s.token_issuer == "vivified-operator"
    assert s.token_audience == "vivified-platform"
    assert s.token_mount_dir == "/var/run/vivified"
    assert s.signing_key_secret == "vivified-signing-key"
    assert s.jwks_configmap == "vivified-jwks"
    assert s.revocations_configmap == "vivified-revoked-tokens"
    assert s.field_manager == "vivified-operator"
    assert s.dependency_policy == "block"
    assert (s.health_interval_seconds, s.health_timeout_seconds) == (30, 5)
    assert s.health_failure_threshold == 3
    assert (s.run_as_user, s.run_as_group, s.fs_group) == (65532, 65532, 65532)


def test_settings_are_frozen() -> None:
    s = OperatorSettings()
    with pytest.raises(ValidationError, match="frozen"):
        s.core_url = "http://elsewhere"  # type: ignore[misc]


def test_selectors_are_read_only_mappings() -> None:
    s = OperatorSettings()
    with pytest.raises(TypeError):
        s.platform_pod_selector["x"] = "y"  # type: ignore[index]


def test_selector_given_as_dict_is_copied_not_aliased() -> None:
    given = {"app": "core"}
    s = OperatorSettings(platform_pod_selector=given)
    given["app"] = "changed"
    assert dict(s.platform_pod_selector) == {"app": "core"}


# --------------------------------------------------------------------------------------------
# Derived values
# --------------------------------------------------------------------------------------------


def test_platform_namespace_selector_follows_operator_namespace() -> None:
    s = OperatorSettings(operator_namespace="platform")
    assert dict(s.platform_namespace_selector) == {"kubernetes.io/metadata.name": "platform"}


def test_explicit_platform_namespace_selector_is_kept() -> None:
    s = OperatorSettings(platform_namespace_selector={"team": "platform"})
    assert dict(s.platform_namespace_selector) == {"team": "platform"}


@pytest.mark.parametrize(
    ("core_url", "core_port", "expected"),
    [
        ("http://vivified-core.vivified-system.svc:8080", 0, 8080),
        ("http://core", 0, 80),
        ("https://core", 0, 443),
        ("https://core:9443/api", 0, 9443),
        ("http://core:80", 8081, 8081),  # the pods' port differs from the Service's
    ],
)
def test_core_port_comes_from_core_url_unless_set(
    core_url: str, core_port: int, expected: int
) -> None:
    assert OperatorSettings(core_url=core_url, core_port=core_port).resolved_core_port == expected


def test_token_and_jwks_files_live_in_the_mount_dir() -> None:
    s = OperatorSettings(token_mount_dir="/etc/vivified/")
    assert s.token_file == "/etc/vivified/token"
    assert s.jwks_file == "/etc/vivified/jwks.json"


# --------------------------------------------------------------------------------------------
# Validation (constructor)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("operator_namespace", "Vivified_System"),
        ("operator_namespace", ""),
        ("core_url", "vivified-core:8080"),
        ("core_url", "ftp://core"),
        ("core_url", "http://"),
        ("core_url", "http://core:99999"),
        ("core_port", -1),
        ("core_port", 70000),
        ("default_memory_limit_mb", 0),
        ("default_memory_limit_mb", 1.5),
        ("default_cpu_limit", 0),
        ("default_cpu_limit", float("nan")),
        ("resource_request_fraction", 0),
        ("resource_request_fraction", 1.1),
        ("run_as_user", 0),
        ("run_as_group", 0),
        ("fs_group", -5),
        ("token_ttl_seconds", 59),
        ("token_ttl_seconds", 0),
        ("token_refresh_fraction", 0),
        ("token_refresh_fraction", 1),
        ("token_leeway_seconds", -1),
        ("token_mount_dir", "relative/dir"),
        ("token_mount_dir", "/"),
        ("token_mount_dir", "/tmp"),
        ("token_mount_dir", "/var/../etc"),
        ("token_issuer", ""),
        ("token_audience", " padded "),
        ("field_manager", ""),
        ("signing_key_secret", "Not_A_Name"),
        ("jwks_configmap", ""),
        ("revocations_configmap", "-bad"),
        ("dependency_policy", "ignore"),
        ("health_interval_seconds", 0),
        ("health_timeout_seconds", 0),
        ("health_failure_threshold", 0),
        ("tmp_size_limit_mb", 0),
        ("revision_history_limit", -1),
        ("signing_key_max_age_seconds", 0),
        ("signing_key_publish_ahead_seconds", 30 * 86400),
        ("platform_pod_selector", {"bad key!": "x"}),
        ("platform_pod_selector", {"app": "bad value!"}),
        ("dns_pod_selector", {}),
        ("dns_namespace_selector", {"a": "x" * 64}),
    ],
)
def test_bad_values_are_rejected_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(SettingsError) as info:
        OperatorSettings(**{field: value})
    assert info.value.name == field
    assert str(info.value).startswith(f"{field}: ")


def test_booleans_are_not_numbers() -> None:
    with pytest.raises(SettingsError, match="token_ttl_seconds"):
        OperatorSettings(token_ttl_seconds=True)


def test_leeway_must_be_smaller_than_ttl() -> None:
    with pytest.raises(SettingsError, match="token_leeway_seconds"):
        OperatorSettings(token_ttl_seconds=60, token_leeway_seconds=60)


@pytest.mark.parametrize(
    "selector",
    [
        {"app.kubernetes.io/part-of": "vivified-plugins"},
        {"app.kubernetes.io/managed-by": "vivified-operator"},
        {"app.kubernetes.io/component": "plugin", "app.kubernetes.io/part-of": "vivified-plugins"},
        {"vivified.dev/plugin": "user-management"},
    ],
)
def test_platform_selector_that_plugin_pods_satisfy_is_rejected(selector: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match="would match plugin pods"):
        OperatorSettings(platform_pod_selector=selector)


def test_plugin_pod_labels_never_match_the_default_platform_selector() -> None:
    platform = OperatorSettings().platform_pod_selector
    assert not all(PLUGIN_COMMON_LABELS.get(k) == v for k, v in platform.items())


# --------------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------------


def test_env_var_name_is_prefix_plus_upper_case_field() -> None:
    assert env_var_name("core_url") == "VIVIFIED_CORE_URL"


def test_empty_environment_gives_defaults() -> None:
    assert OperatorSettings.from_env({}) == OperatorSettings()


def test_unrelated_and_empty_variables_are_ignored() -> None:
    env = {"HOME": "/root", "VIVIFIED_SOMETHING_ELSE": "x", "VIVIFIED_CORE_URL": "  "}
    assert OperatorSettings.from_env(env) == OperatorSettings()


def test_every_field_is_read_from_its_variable() -> None:
    env = {
        "VIVIFIED_OPERATOR_NAMESPACE": "platform",
        "VIVIFIED_CORE_URL": "https://core.platform.svc",
        "VIVIFIED_CORE_PORT": "8443",
        "VIVIFIED_DEFAULT_MEMORY_LIMIT_MB": "512",
        "VIVIFIED_DEFAULT_CPU_LIMIT": "0.25",
        "VIVIFIED_RESOURCE_REQUEST_FRACTION": "0.5",
        "VIVIFIED_PLATFORM_POD_SELECTOR": "app=core, tier=platform",
        "VIVIFIED_DNS_POD_SELECTOR": "k8s-app=coredns",
        "VIVIFIED_TOKEN_TTL_SECONDS": "3600",
        "VIVIFIED_TOKEN_REFRESH_FRACTION": "0.5",
        "VIVIFIED_DEPENDENCY_POLICY": "WARN",
        "VIVIFIED_TOKEN_MOUNT_DIR": "/etc/vivified",
    }
    s = OperatorSettings.from_env(env)
    assert s.operator_namespace == "platform"
    assert s.core_url == "https://core.platform.svc"
    assert s.resolved_core_port == 8443
    assert s.default_memory_limit_mb == 512
    assert s.default_cpu_limit == 0.25
    assert s.resource_request_fraction == 0.5
    assert dict(s.platform_pod_selector) == {"app": "core", "tier": "platform"}
    assert dict(s.platform_namespace_selector) == {"kubernetes.io/metadata.name": "platform"}
    assert dict(s.dns_pod_selector) == {"k8s-app": "coredns"}
    assert s.token_ttl_seconds == 3600
    assert s.token_refresh_fraction == 0.5
    assert s.dependency_policy == "warn"
    assert s.token_file == "/etc/vivified/token"


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("VIVIFIED_TOKEN_TTL_SECONDS", "one day", "must be an integer"),
        ("VIVIFIED_TOKEN_TTL_SECONDS", "1.5", "must be an integer"),
        ("VIVIFIED_DEFAULT_CPU_LIMIT", "half", "must be a number"),
        ("VIVIFIED_DEFAULT_CPU_LIMIT", "inf", "finite"),
        ("VIVIFIED_DEPENDENCY_POLICY", "maybe", "block, warn"),
        ("VIVIFIED_PLATFORM_POD_SELECTOR", "app", "key=value"),
        ("VIVIFIED_PLATFORM_POD_SELECTOR", "a=1,a=2", "twice"),
        # Parsed fine, rejected by validation: still reported under the variable's name.
        ("VIVIFIED_TOKEN_TTL_SECONDS", "10", "at least 60"),
        ("VIVIFIED_CORE_URL", "core:8080", "http"),
        ("VIVIFIED_OPERATOR_NAMESPACE", "Bad_Name", "namespace"),
    ],
)
def test_bad_variables_raise_naming_the_variable(variable: str, value: str, fragment: str) -> None:
    with pytest.raises(SettingsError) as info:
        OperatorSettings.from_env({variable: value})
    assert info.value.name == variable
    assert str(info.value).startswith(f"{variable}: ")
    assert fragment in str(info.value)


def test_settings_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="VIVIFIED_CORE_PORT"):
        OperatorSettings.from_env({"VIVIFIED_CORE_PORT": "x"})


def test_to_env_round_trips() -> None:
    s = OperatorSettings(
        operator_namespace="platform",
        default_cpu_limit=0.1,
        platform_pod_selector={"b": "2", "a": "1"},
        dependency_policy="warn",
    )
    env = s.to_env()
    assert env["VIVIFIED_PLATFORM_POD_SELECTOR"] == "a=1,b=2"
    assert OperatorSettings.from_env(env) == s


def test_every_field_has_an_env_parser() -> None:
    names = set(OperatorSettings().to_env())
    assert names == {env_var_name(name) for name in OperatorSettings.model_fields}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a=1", {"a": "1"}),
        (" a = 1 , b=2 ,", {"a": "1", "b": "2"}),
        ("app.kubernetes.io/part-of=vivified", {"app.kubernetes.io/part-of": "vivified"}),
        ("empty=", {"empty": ""}),
        ("", {}),
    ],
)
def test_parse_selector(text: str, expected: dict[str, str]) -> None:
    assert parse_selector(text) == expected


def test_format_selector_sorts_keys() -> None:
    assert format_selector({"z": "1", "a": "2"}) == "a=2,z=1"


# --------------------------------------------------------------------------------------------
# Health monitoring settings (docs/health.md)
# --------------------------------------------------------------------------------------------


def test_health_monitoring_defaults() -> None:
    s = OperatorSettings()
    assert s.probe_mode == "direct"
    assert dict(s.probe_address_overrides) == {}
    assert s.probe_concurrency == 64
    assert s.health_status_refresh_seconds == 60
    assert s.unhealthy_disable_after == 0


def test_probe_settings_are_read_from_the_environment() -> None:
    s = OperatorSettings.from_env(
        {
            "VIVIFIED_PROBE_MODE": "APIServer-Proxy",
            "VIVIFIED_PROBE_ADDRESS_OVERRIDES": (
                "ns/name=127.0.0.1:18080, ns2/name2=127.0.0.1:18081,ns3/v6=[::1]:9000"
            ),
            "VIVIFIED_PROBE_CONCURRENCY": "8",
            "VIVIFIED_HEALTH_STATUS_REFRESH_SECONDS": "5",
            "VIVIFIED_UNHEALTHY_DISABLE_AFTER": "10",
        }
    )
    assert s.probe_mode == "apiserver-proxy"
    assert dict(s.probe_address_overrides) == {
        "ns/name": "127.0.0.1:18080",
        "ns2/name2": "127.0.0.1:18081",
        "ns3/v6": "[::1]:9000",
    }
    assert s.probe_concurrency == 8
    assert s.health_status_refresh_seconds == 5
    assert s.unhealthy_disable_after == 10
    assert OperatorSettings.from_env(s.to_env()) == s


def test_probe_overrides_are_read_only() -> None:
    s = OperatorSettings(probe_address_overrides={"ns/a": "127.0.0.1:1"})
    with pytest.raises(TypeError):
        s.probe_address_overrides["ns/b"] = "127.0.0.1:2"  # type: ignore[index]


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("VIVIFIED_PROBE_MODE", "sidecar", "direct, apiserver-proxy, overrides"),
        ("VIVIFIED_PROBE_ADDRESS_OVERRIDES", "name=127.0.0.1:1", "namespace/name"),
        ("VIVIFIED_PROBE_ADDRESS_OVERRIDES", "Bad_NS/a=127.0.0.1:1", "namespace/name"),
        ("VIVIFIED_PROBE_ADDRESS_OVERRIDES", "ns/a=127.0.0.1", "host:port"),
        ("VIVIFIED_PROBE_ADDRESS_OVERRIDES", "ns/a=127.0.0.1:0", "host:port"),
        ("VIVIFIED_PROBE_ADDRESS_OVERRIDES", "ns/a=127.0.0.1:70000", "host:port"),
        ("VIVIFIED_PROBE_ADDRESS_OVERRIDES", "ns/a=http://x:1", "host:port"),
        ("VIVIFIED_PROBE_ADDRESS_OVERRIDES", "ns/a=::1:80", "host:port"),
        ("VIVIFIED_PROBE_ADDRESS_OVERRIDES", "ns/a=a b:80", "host:port"),
        ("VIVIFIED_PROBE_ADDRESS_OVERRIDES", "ns/a", "key=value"),
        ("VIVIFIED_PROBE_CONCURRENCY", "0", "positive"),
        ("VIVIFIED_HEALTH_STATUS_REFRESH_SECONDS", "0", "positive"),
        ("VIVIFIED_UNHEALTHY_DISABLE_AFTER", "-1", ">= 0"),
    ],
)
def test_bad_health_settings_raise_naming_the_variable(
    variable: str, value: str, fragment: str
) -> None:
    with pytest.raises(SettingsError) as info:
        OperatorSettings.from_env({variable: value})
    assert info.value.name == variable
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("[::1]:80", ("::1", 80)),
        ("plugin.ns.svc:8000", ("plugin.ns.svc", 8000)),
        ("127.0.0.1", None),
        ("[127.0.0.1]:80", None),
        (":80", None),
        ("host:-1", None),
        ("host:", None),
        ("UPPER:80", None),
    ],
)
def test_split_host_port(address: str, expected: tuple[str, int] | None) -> None:
    from vivified.settings import split_host_port  # noqa: PLC0415

    assert split_host_port(address) == expected


def test_the_operator_has_no_heartbeat_server_settings() -> None:
    # Plugins' heartbeats, JWKS and revocations are the core's (issue 16): nothing to serve.
    names = set(OperatorSettings().to_env())
    assert not {n for n in names if "HEARTBEAT" in n}


# --------------------------------------------------------------------------------------------
# One model: sections and docstrings
# --------------------------------------------------------------------------------------------


def test_every_setting_has_a_section_and_a_docstring() -> None:
    from vivified.settings import SECTIONS, field_section  # noqa: PLC0415

    for name, info in OperatorSettings.model_fields.items():
        assert field_section(name) in SECTIONS, name
        assert info.description, f"{name} has no docstring"
        assert len(info.description) > 20, f"{name}: say what it means and why the default"


def test_the_process_environment_is_never_read_implicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIVIFIED_TOKEN_TTL_SECONDS", "3600")
    assert OperatorSettings().token_ttl_seconds == 86400
    assert OperatorSettings.from_env({}).token_ttl_seconds == 86400


def test_docs_list_every_setting() -> None:
    from pathlib import Path  # noqa: PLC0415

    text = (Path(__file__).parents[2] / "docs" / "operator.md").read_text()
    missing = [v for v in OperatorSettings().to_env() if f"`{v}`" not in text]
    assert not missing, f"docs/operator.md does not list {missing}"
