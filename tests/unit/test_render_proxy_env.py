"""Plugins with external_service get the proxy lane in their environment; others do not."""

from __future__ import annotations

from tests.unit.test_render_workload import container, env_of, make_plugin, make_spec

from vivified.render.workload import ENV_PROXY_NAMES, is_reserved_env_name
from vivified.resource import EnvVar

EXTERNAL = {
    "traits": ["external_service", "audit_required"],
    "allowed_domains": ["api.partner.test"],
}


def test_external_service_plugins_get_the_proxy_env() -> None:
    env = env_of(container(make_plugin(make_spec(EXTERNAL))))
    proxy = "http://vivified-core.vivified-system.svc:3128"
    assert env["HTTPS_PROXY"] == env["https_proxy"] == proxy
    assert env["HTTP_PROXY"] == env["http_proxy"] == proxy
    assert env["NO_PROXY"] == env["no_proxy"]
    assert env["NO_PROXY"].split(",") == [
        "vivified-core.vivified-system.svc",
        "localhost",
        "127.0.0.1",
        "::1",
    ]
    assert "@" not in proxy  # never a credential in the URL


def test_only_the_core_bypasses_the_proxy() -> None:
    # Plugins talk to the core only (the operator serves them nothing): it is the one bypass.
    env = env_of(container(make_plugin(make_spec(EXTERNAL))))
    bypass = env["NO_PROXY"].split(",")
    assert bypass[0] == "vivified-core.vivified-system.svc"
    assert not [b for b in bypass if "operator" in b]


def test_plugins_without_the_trait_get_no_proxy_env() -> None:
    env = env_of(container(make_plugin(make_spec())))
    assert not set(ENV_PROXY_NAMES) & set(env)


def test_user_env_cannot_point_the_proxy_elsewhere() -> None:
    spec = make_spec(EXTERNAL).model_copy(
        update={"env": [EnvVar.model_construct(name="HTTPS_PROXY", value="http://evil:1")]}
    )
    env = container(make_plugin(spec))["env"]
    assert [e["value"] for e in env if e["name"] == "HTTPS_PROXY"] == [
        "http://vivified-core.vivified-system.svc:3128"
    ]
    assert all(is_reserved_env_name(n) for n in ENV_PROXY_NAMES)
