"""The generated CRD: up to date in crds/, structural, and explainable (descriptions everywhere).

If ``test_committed_crd_is_up_to_date`` fails, regenerate the file with ``make crds``
(or ``python -m vivified.crd > crds/vivified.dev_vivifiedplugins.yaml``) and commit it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from vivified.crd import build_crd, build_crd_yaml
from vivified.manifest import Compliance, HealthCheck, PluginManifest, Resources, Security

CRD_FILE = Path(__file__).resolve().parents[2] / "crds" / "vivified.dev_vivifiedplugins.yaml"

# Keywords a structural schema may use (apiextensions.k8s.io/v1 JSONSchemaProps).
ALLOWED_KEYS = {
    "description", "type", "format", "nullable", "enum", "pattern", "minLength", "maxLength",
    "minimum", "maximum", "minItems", "maxItems", "maxProperties", "default", "required",
    "properties", "items", "additionalProperties", "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-validations",
}  # fmt: skip


def schema() -> dict[str, Any]:
    version = build_crd()["spec"]["versions"][0]
    result: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return result


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def test_committed_crd_is_up_to_date() -> None:
    assert CRD_FILE.exists(), "crds/vivified.dev_vivifiedplugins.yaml is missing: run `make crds`"
    assert CRD_FILE.read_text(encoding="utf-8") == build_crd_yaml(), (
        "crds/vivified.dev_vivifiedplugins.yaml is stale: run `make crds` and commit the result"
    )


def test_yaml_is_deterministic_and_round_trips() -> None:
    text = build_crd_yaml()
    assert text == build_crd_yaml()
    assert yaml.safe_load(text) == build_crd()


def test_names_scope_and_version() -> None:
    crd = build_crd()
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == "vivifiedplugins.vivified.dev"
    spec = crd["spec"]
    assert spec["group"] == "vivified.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "VivifiedPlugin",
        "listKind": "VivifiedPluginList",
        "plural": "vivifiedplugins",
        "singular": "vivifiedplugin",
        "shortNames": ["vp", "vplugin"],
        "categories": ["vivified"],
    }
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}


def test_printer_columns() -> None:
    columns = build_crd()["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [(c["name"], c["jsonPath"], c["type"]) for c in columns] == [
        ("Version", ".spec.manifest.version", "string"),
        ("Phase", ".status.phase", "string"),
        ("Health", ".status.health", "string"),
        ("Ready", ".status.ready", "string"),
        ("Age", ".metadata.creationTimestamp", "date"),
    ]


def test_name_must_equal_manifest_id_rule() -> None:
    (rule,) = schema()["x-kubernetes-validations"]
    assert rule["message"] == "metadata.name must equal spec.manifest.id"
    assert "self.metadata.name == self.spec.manifest.id" in rule["rule"]


@pytest.mark.parametrize("path_node", list(walk(schema())), ids=lambda pn: pn[0] or "<root>")
def test_schema_is_structural(path_node: tuple[str, dict[str, Any]]) -> None:
    path, node = path_node
    unexpected = set(node) - ALLOWED_KEYS
    assert not unexpected, f"{path}: {unexpected}"
    assert "type" in node, f"{path} has no type"
    if "additionalProperties" in node:
        assert isinstance(node["additionalProperties"], dict), path
        assert "properties" not in node, path
    if "default" in node:
        assert path in {".spec.replicas", ".spec.enabled"}, path
    if node.get("nullable"):
        assert "enum" not in node, path


def test_no_json_schema_leftovers() -> None:
    text = build_crd_yaml()
    for word in ("$ref", "$defs", "anyOf", "allOf", "oneOf", "title:", "const:", "uniqueItems"):
        assert word not in text, word


def test_every_manifest_property_has_a_description() -> None:
    manifest = schema()["properties"]["spec"]["properties"]["manifest"]
    missing = [path for path, node in walk(manifest) if path and "[]" not in path
               and "{}" not in path and not node.get("description")]  # fmt: skip
    assert missing == []


def test_manifest_properties_match_the_models() -> None:
    manifest = schema()["properties"]["spec"]["properties"]["manifest"]
    assert list(manifest["properties"]) == list(PluginManifest.model_fields)
    props = manifest["properties"]
    for name, model in (("security", Security), ("compliance", Compliance),
                        ("health_check", HealthCheck), ("resources", Resources)):  # fmt: skip
        assert list(props[name]["properties"]) == list(model.model_fields), name
    assert props["endpoints"]["additionalProperties"] == {"type": "string", "maxLength": 512}
    assert props["resources"]["properties"]["memory_limit"]["type"] == "integer"
    assert props["resources"]["properties"]["cpu_limit"]["type"] == "number"
    assert props["health_check"]["nullable"] is True


def test_unknown_fields_under_spec_are_preserved_for_the_validator() -> None:
    spec = schema()["properties"]["spec"]
    objects = [(p, n) for p, n in walk(spec) if "properties" in n]
    assert objects
    for path, node in objects:
        assert node.get("x-kubernetes-preserve-unknown-fields") is True, path


def test_only_metrics_preserves_unknown_fields_in_status() -> None:
    status = schema()["properties"]["status"]
    preserved = [p for p, n in walk(status) if n.get("x-kubernetes-preserve-unknown-fields")]
    assert preserved == [".metrics"]


def test_conditions_are_a_map_keyed_by_type() -> None:
    conditions = schema()["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert "type" in conditions["items"]["required"]


def test_status_fields_are_camel_case() -> None:
    props = schema()["properties"]["status"]["properties"]
    for name in ("observedGeneration", "phase", "health", "ready", "readyReplicas", "conditions",
                 "validationErrors", "token", "consecutiveFailures", "lastError",
                 "lastProbeTime", "lastHeartbeatTime", "metrics"):  # fmt: skip
        assert name in props, name
    assert set(props["token"]["properties"]) == {"secretName", "keyId", "expiresAt", "jti"}
    assert props["phase"]["enum"] == ["Pending", "Active", "Disabled", "Invalid"]
    assert props["health"]["enum"] == ["unknown", "healthy", "degraded", "unhealthy"]
