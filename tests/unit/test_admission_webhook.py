"""The kopf wiring of the admission webhook: settings, server and the registered handler."""

from __future__ import annotations

import copy
import inspect
import logging
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import jsonpatch  # kopf's own dependency
import kopf
import pytest
import yaml
from tests.cluster_support import self_signed_certificate

from vivified.policy import PolicyConfig
from vivified.registry import PluginRegistry
from vivified.settings import SettingsError
from vivified.shell.webhook import (
    FINALIZER_WEBHOOK_ID,
    WEBHOOK_ID,
    WebhookSettings,
    configure_admission,
    register_admission,
    webhook_server,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples"


@dataclass
class FakeRuntime:
    registry: PluginRegistry = field(default_factory=PluginRegistry)
    policy: PolicyConfig | None = None


def example(name: str) -> dict[str, Any]:
    body = next(iter(yaml.safe_load_all((EXAMPLES / name).read_text())))
    body["metadata"]["namespace"] = "plugins"
    return dict(body)


def test_the_webhook_is_off_unless_a_port_is_given() -> None:
    settings = WebhookSettings.from_env({})
    assert not settings.enabled
    assert webhook_server(settings) is None


def test_settings_come_from_the_environment_and_flags_win() -> None:
    env = {
        "VIVIFIED_WEBHOOK_PORT": "9443",
        "VIVIFIED_WEBHOOK_ADDR": "127.0.0.1",
        "VIVIFIED_WEBHOOK_CERT_DIR": "/certs",
    }
    assert WebhookSettings.from_env(env) == WebhookSettings(9443, "127.0.0.1", "/certs")
    assert WebhookSettings.from_env(env, port=8443, cert_dir="/other").port == 8443
    assert WebhookSettings.from_env(env, port=8443, cert_dir="/other").cert_dir == "/other"
    minimal = {"VIVIFIED_WEBHOOK_PORT": "1", "VIVIFIED_WEBHOOK_CERT_DIR": "/c"}
    assert WebhookSettings.from_env(minimal).addr == "0.0.0.0"  # noqa: S104 - the default


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"VIVIFIED_WEBHOOK_PORT": "https"}, "VIVIFIED_WEBHOOK_PORT"),
        ({"VIVIFIED_WEBHOOK_PORT": "70000"}, "VIVIFIED_WEBHOOK_PORT"),
        ({"VIVIFIED_WEBHOOK_PORT": "-1"}, "VIVIFIED_WEBHOOK_PORT"),
        ({"VIVIFIED_WEBHOOK_PORT": "9443"}, "VIVIFIED_WEBHOOK_CERT_DIR"),
    ],
)
def test_unusable_settings_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as caught:
        WebhookSettings.from_env(env)
    assert caught.value.name == variable


def test_missing_certificate_files_are_reported(tmp_path: Path) -> None:
    settings = WebhookSettings(port=9443, cert_dir=str(tmp_path))
    with pytest.raises(SettingsError, match=r"tls\.crt does not exist"):
        webhook_server(settings)


def test_the_server_uses_the_mounted_certificate(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    server = webhook_server(WebhookSettings(port=9443, addr="127.0.0.1", cert_dir=str(tmp_path)))
    assert isinstance(server, kopf.WebhookServer)
    assert (server.addr, server.port) == ("127.0.0.1", 9443)
    assert (server.certfile, server.pkeyfile) == (str(cert), str(key))
    assert server.path is None  # handlers are served at /<handler id>
    # What kopf builds from it: a server context holding our certificate, no generated one.
    cadata, context = server._build_ssl()
    assert isinstance(context, ssl.SSLContext)
    assert cadata == cert.read_bytes()


def test_configure_admission_registers_the_handler_and_leaves_the_configuration_alone(
    tmp_path: Path,
) -> None:
    self_signed_certificate(tmp_path)
    settings = kopf.OperatorSettings()
    registry = kopf.OperatorRegistry()
    webhook = WebhookSettings(port=9443, cert_dir=str(tmp_path))
    assert configure_admission(settings, registry, FakeRuntime(), webhook)
    assert isinstance(settings.admission.server, kopf.WebhookServer)
    assert settings.admission.managed is None
    handlers: dict[str, Any] = {h.id: h for h in registry._webhooks.get_all_handlers()}
    assert sorted(handlers) == sorted([WEBHOOK_ID, FINALIZER_WEBHOOK_ID])
    assert sorted(handlers[WEBHOOK_ID].operations or []) == ["CREATE", "UPDATE"]
    assert handlers[FINALIZER_WEBHOOK_ID].operations == ["CREATE"]
    assert getattr(handlers[FINALIZER_WEBHOOK_ID].reason, "value", None) == "mutating"
    for handler in handlers.values():
        assert handler.selector is not None
        assert (handler.selector.group, handler.selector.version, handler.selector.any_name) == (
            "vivified.dev",
            "v1alpha1",
            "vivifiedplugins",
        )


def test_configure_admission_without_a_port_registers_nothing() -> None:
    settings = kopf.OperatorSettings()
    registry = kopf.OperatorRegistry()
    assert not configure_admission(settings, registry, FakeRuntime(), WebhookSettings())
    assert settings.admission.server is None
    assert not registry._webhooks.get_all_handlers()


async def call_handler(runtime: FakeRuntime, body: dict[str, Any], **kwargs: Any) -> list[str]:
    handler = registered(runtime, WEBHOOK_ID)
    warnings: list[str] = []
    outcome = handler.fn(
        body=raw_body(body),
        warnings=warnings,
        namespace=body["metadata"].get("namespace"),
        **kwargs,
    )
    assert inspect.isawaitable(outcome)  # async: runs on the loop next to the index
    await outcome
    return warnings


def registered(runtime: FakeRuntime, handler_id: str) -> Any:
    registry = kopf.OperatorRegistry()
    register_admission(registry, runtime)
    (handler,) = [h for h in registry._webhooks.get_all_handlers() if h.id == handler_id]
    return handler


async def finalizer_patch(body: dict[str, Any], operation: str = "CREATE") -> Any:
    """The JSON patch the API server would get from ``add-finalizer`` for ``body``."""
    handler = registered(FakeRuntime(), FINALIZER_WEBHOOK_ID)
    patch = kopf.Patch(body=raw_body(body))
    await handler.fn(body=raw_body(body), patch=patch, operation=operation)
    return patch.as_json_patch()


async def test_a_new_plugin_gets_the_finalizer_as_a_json_patch() -> None:
    body = example("user-management.yaml")
    assert await finalizer_patch(body) == [
        {"op": "add", "path": "/metadata/finalizers", "value": ["vivified.dev/finalizer"]}
    ]


async def test_other_finalizers_are_kept_and_ours_is_not_added_twice() -> None:
    body = example("user-management.yaml")
    body["metadata"]["finalizers"] = ["example.com/keep"]
    patched = jsonpatch.apply_patch(body, await finalizer_patch(body))
    assert patched["metadata"]["finalizers"] == ["example.com/keep", "vivified.dev/finalizer"]
    assert patched["spec"] == body["spec"]
    body["metadata"]["finalizers"] = ["example.com/keep", "vivified.dev/finalizer"]
    assert await finalizer_patch(body) == []


async def test_an_update_is_never_mutated() -> None:
    body = example("user-management.yaml")
    assert await finalizer_patch(body, operation="UPDATE") == []


def raw_body(body: dict[str, Any]) -> kopf.Body:
    return kopf.Body(cast(kopf.RawBody, body))


async def test_the_handler_admits_a_valid_plugin() -> None:
    body = example("user-management.yaml")
    assert await call_handler(FakeRuntime(), body, operation="CREATE") == []


async def test_the_handler_denies_with_every_error_by_field() -> None:
    body = example("invalid/phi-without-controls.yaml")
    with pytest.raises(kopf.AdmissionError) as caught:
        await call_handler(FakeRuntime(), body, operation="CREATE")
    assert caught.value.code == 400
    assert str(caught.value).count("; ") == 2
    for name in ("data_retention_days", "hipaa_controls", "data_classification"):
        assert f"spec.manifest.{name}" in str(caught.value) or name in str(caught.value)


async def test_the_handler_denies_a_duplicate_id_from_the_operators_index() -> None:
    runtime = FakeRuntime()
    owner = example("user-management.yaml")
    owner["metadata"]["namespace"] = "team-a"
    runtime.registry.upsert(("team-a", "user-management"), owner)
    with pytest.raises(kopf.AdmissionError, match="already used by VivifiedPlugin team-a/"):
        await call_handler(runtime, example("user-management.yaml"), operation="CREATE")


async def test_the_handler_passes_warnings_and_old_objects_through() -> None:
    body = example("user-management.yaml")
    old = copy.deepcopy(body)
    traits = body["spec"]["manifest"]["traits"]
    traits[traits.index("audit_required")] = "audit"
    warnings = await call_handler(FakeRuntime(), body, operation="UPDATE", old=raw_body(old))
    assert warnings == [
        "spec.manifest.traits[1]: trait 'audit' is a legacy alias; write 'audit_required' instead"
    ]
    # Unchanged spec (a metadata-only update): nothing to say.
    assert await call_handler(FakeRuntime(), body, operation="UPDATE", old=raw_body(body)) == []


def test_kopf_logs_denials_at_info_not_error(caplog: pytest.LogCaptureFixture) -> None:
    register_admission(kopf.OperatorRegistry(), FakeRuntime())
    logger = logging.getLogger("kopf.objects")
    with caplog.at_level(logging.DEBUG, logger="kopf.objects"):
        logger.error("Webhook 'validate-plugin' failed permanently: spec.image: bad")
        logger.error("Webhook 'validate-plugin' failed with an exception. Will retry.")
    levels = [(r.levelname, r.getMessage().split(":")[0]) for r in caplog.records]
    assert levels == [
        ("INFO", "Webhook 'validate-plugin' failed permanently"),
        ("ERROR", "Webhook 'validate-plugin' failed with an exception. Will retry."),
    ]
