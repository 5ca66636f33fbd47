"""render_children as a whole: order, metadata on every child, SSA-friendliness, determinism."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from vivified.render import (
    PluginInstance,
    child_names,
    owner_reference,
    plugin_labels,
    render_children,
)
from vivified.render.common import version_label_value
from vivified.resource import PluginSpec
from vivified.settings import OperatorSettings

SETTINGS = OperatorSettings()

MANIFEST: dict[str, Any] = {
    "id": "user-management",
    "name": "User Management Plugin",
    "version": "1.2.0",
    "contracts": ["IdentityPlugin"],
    "traits": ["handles_pii", "audit_required", "external_service"],
    "allowed_domains": ["api.salesforce.com"],
    "endpoints": {"health": "/health"},
    "security": {"authentication_required": True, "data_classification": ["pii"]},
    "compliance": {"audit_level": "detailed"},
    "health_check": {"type": "http", "port": 8000, "path": "/health"},
    "resources": {"memory_limit": 512, "cpu_limit": 1.0},
}


def make_plugin(
    manifest: dict[str, Any] | None = None,
    *,
    uid: str = "6c1f3a2e-0000-4000-8000-000000000001",
    name: str | None = None,
    enabled: bool = True,
    run: bool = True,
) -> PluginInstance:
    spec = PluginSpec.model_validate(
        {
            "manifest": {**MANIFEST, **(manifest or {})},
            "image": "ghcr.io/acme/user-management:1.2.0",
            "env": [{"name": "LOG_LEVEL", "value": "info"}],
        }
    )
    return PluginInstance(
        name=name or spec.manifest.id,
        namespace="plugins",
        uid=uid,
        generation=7,
        spec=spec,
        run=run,
        enabled=enabled,
        token_secret_name="user-management-token" if enabled else None,
    )


def walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)


def test_children_in_apply_order() -> None:
    kinds = [c["kind"] for c in render_children(make_plugin(), SETTINGS)]
    assert kinds == ["ServiceAccount", "NetworkPolicy", "Service", "Deployment"], (
        "isolation before workload"
    )


def test_child_names() -> None:
    assert child_names("user-management") == {
        "ServiceAccount": "user-management",
        "Secret": "user-management-token",
        "Deployment": "user-management",
        "Service": "user-management",
        "NetworkPolicy": "user-management",
    }


def test_children_are_named_per_child_names() -> None:
    names = child_names("user-management")
    for child in render_children(make_plugin(), SETTINGS):
        assert child["metadata"]["name"] == names[child["kind"]]
        assert child["metadata"]["namespace"] == "plugins"


EXPECTED_LABELS = {
    "app.kubernetes.io/component": "plugin",
    "app.kubernetes.io/managed-by": "vivified-operator",
    "app.kubernetes.io/name": "user-management",
    "app.kubernetes.io/part-of": "vivified-plugins",
    "app.kubernetes.io/version": "1.2.0",
    "vivified.dev/plugin": "user-management",
}


@pytest.mark.parametrize("enabled", [True, False])
def test_every_child_carries_the_plugin_labels(enabled: bool) -> None:
    for child in render_children(make_plugin(enabled=enabled, run=enabled), SETTINGS):
        assert child["metadata"]["labels"] == EXPECTED_LABELS, child["kind"]


def test_pods_carry_the_plugin_labels() -> None:
    deployment = render_children(make_plugin(), SETTINGS)[-1]
    assert deployment["spec"]["template"]["metadata"]["labels"] == EXPECTED_LABELS


def test_label_keys_are_sorted() -> None:
    labels = plugin_labels(make_plugin())
    assert list(labels) == sorted(labels)


@pytest.mark.parametrize("enabled", [True, False])
def test_every_child_is_controlled_by_the_plugin(enabled: bool) -> None:
    expected = {
        "apiVersion": "vivified.dev/v1alpha1",
        "kind": "VivifiedPlugin",
        "name": "user-management",
        "uid": "6c1f3a2e-0000-4000-8000-000000000001",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert owner_reference(make_plugin()) == expected
    for child in render_children(make_plugin(enabled=enabled, run=enabled), SETTINGS):
        assert child["metadata"]["ownerReferences"] == [expected], child["kind"]


def test_plugin_pods_never_match_the_platform_selector() -> None:
    # Otherwise a plugin would be let into every other plugin as if it were the platform.
    pod_labels = render_children(make_plugin(), SETTINGS)[-1]["spec"]["template"]["metadata"][
        "labels"
    ]
    selector = SETTINGS.platform_pod_selector
    assert not all(pod_labels.get(k) == v for k, v in selector.items())


def test_no_status_and_no_nulls_anywhere() -> None:
    for child in render_children(make_plugin(), SETTINGS):
        assert "status" not in child
        assert set(child["metadata"]) <= {
            "name",
            "namespace",
            "labels",
            "annotations",
            "ownerReferences",
        }
        for value in walk(child):
            assert value is not None, child["kind"]


def test_no_object_is_shared_between_two_places_in_the_output() -> None:
    # Shared sub-dicts would let one mutation (e.g. the shell stamping an annotation) leak
    # into another object, and make YAML dumps full of anchors.
    seen: set[int] = set()
    for value in walk(render_children(make_plugin(), SETTINGS)):
        if isinstance(value, dict | list):
            assert id(value) not in seen
            seen.add(id(value))


def test_two_renders_do_not_share_objects() -> None:
    a = render_children(make_plugin(), SETTINGS)
    b = render_children(make_plugin(), SETTINGS)
    ids_a = {id(v) for v in walk(a) if isinstance(v, dict | list)}
    ids_b = {id(v) for v in walk(b) if isinstance(v, dict | list)}
    assert not ids_a & ids_b


def test_deterministic_byte_for_byte() -> None:
    first = json.dumps(render_children(make_plugin(), SETTINGS))
    for _ in range(3):
        assert json.dumps(render_children(make_plugin(), SETTINGS)) == first


def test_output_is_plain_json_data() -> None:
    children = render_children(make_plugin(), SETTINGS)
    assert json.loads(json.dumps(children)) == children


def test_name_must_equal_manifest_id() -> None:
    with pytest.raises(ValueError, match=r"must equal spec\.manifest\.id"):
        render_children(make_plugin(name="someone-else"), SETTINGS)


def test_preview_has_no_owner_references() -> None:
    spec = make_plugin().spec
    preview = PluginInstance.preview(spec, namespace="demo")
    assert preview.uid == ""
    assert preview.token_secret_name == "user-management-token"
    for child in render_children(preview, SETTINGS):
        assert "ownerReferences" not in child["metadata"]
        assert child["metadata"]["namespace"] == "demo"


def test_preview_of_a_disabled_spec_is_disabled() -> None:
    spec = make_plugin().spec.model_copy(update={"enabled": False})
    preview = PluginInstance.preview(spec)
    assert (preview.run, preview.enabled, preview.token_secret_name) == (False, False, None)


@pytest.mark.parametrize(
    ("version", "label"),
    [
        ("1.0.0", "1.0.0"),
        ("2.1.0-rc.1", "2.1.0-rc.1"),
        ("1.0.0+build.5", "1.0.0_build.5"),
        ("1.0.0-" + "a" * 80, "1.0.0-" + "a" * 57),
    ],
)
def test_version_label_is_always_a_valid_label_value(version: str, label: str) -> None:
    assert version_label_value(version) == label
    assert len(label) <= 63


def test_disabled_plugin_children() -> None:
    sa, netpol, service, deployment = render_children(
        make_plugin(enabled=False, run=False), SETTINGS
    )
    assert deployment["spec"]["replicas"] == 0
    assert "ingress" not in netpol["spec"]
    assert "egress" not in netpol["spec"]
    assert sa["automountServiceAccountToken"] is False
    assert service["spec"]["type"] == "ClusterIP"


def test_missing_dependencies_scale_to_zero_but_keep_the_network_open() -> None:
    _, netpol, _, deployment = render_children(make_plugin(run=False), SETTINGS)
    assert deployment["spec"]["replicas"] == 0
    assert netpol["spec"]["ingress"]
