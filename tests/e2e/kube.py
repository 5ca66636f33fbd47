"""Small, synchronous helpers the e2e tests use to read and write the cluster."""

from __future__ import annotations

import base64
import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

GROUP, VERSION, PLURAL = "vivified.dev", "v1alpha1", "vivifiedplugins"
REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "manifests" / "examples"

T = TypeVar("T")


def wait_for(
    what: str, probe: Callable[[], T | None], timeout: float = 20.0, interval: float = 0.2
) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except ApiException as error:
            last = f"{error.status} {error.reason}"
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {last!r}")


def load_example(name: str) -> dict[str, Any]:
    documents = list(yaml.safe_load_all((EXAMPLES / name).read_text()))
    return copy.deepcopy(documents[0])


def plugin_body(
    plugin_id: str,
    *,
    dependencies: list[str] | None = None,
    enabled: bool = True,
    traits: list[str] | None = None,
) -> dict[str, Any]:
    """A small valid VivifiedPlugin for tests that need many distinct plugins."""
    manifest: dict[str, Any] = {
        "id": plugin_id,
        "name": f"Test plugin {plugin_id}",
        "version": "1.0.0",
        "description": "e2e test plugin",
        "contracts": ["StoragePlugin"],
        "traits": traits or ["audit_required"],
        "dependencies": dependencies or [],
        "allowed_domains": [],
        "endpoints": {"health": "/health"},
        "security": {"authentication_required": True, "data_classification": ["internal"]},
        "compliance": {"hipaa_controls": [], "audit_level": "basic"},
        "health_check": {"type": "http", "port": 8000, "path": "/health"},
        "resources": {"memory_limit": 128, "cpu_limit": 0.25},
    }
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "VivifiedPlugin",
        "metadata": {"name": plugin_id},
        "spec": {
            "manifest": manifest,
            "image": "registry.example.com/test/plugin:1.0.0",
            "enabled": enabled,
        },
    }


class Cluster:
    """Typed-enough access to the objects the operator manages."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.net = client.NetworkingV1Api(api)

    def apply_plugin(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        try:
            current = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name
            )
        except ApiException as error:
            if error.status != 404:
                raise
            return self.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, body
            )
        updated = copy.deepcopy(body)
        updated["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        return self.custom.replace_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, updated
        )

    def patch_spec(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, {"spec": spec}
        )

    def plugin(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def delete_plugin(self, namespace: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)

    def status(self, namespace: str, name: str) -> dict[str, Any]:
        return (self.plugin(namespace, name) or {}).get("status") or {}

    def wait_phase(
        self, namespace: str, name: str, phase: str, timeout: float = 20.0
    ) -> dict[str, Any]:
        return wait_for(
            f"{namespace}/{name} phase {phase}",
            lambda: (s := self.status(namespace, name)).get("phase") == phase and s,
            timeout,
        )

    def condition(self, namespace: str, name: str, kind: str) -> dict[str, Any]:
        for cond in self.status(namespace, name).get("conditions", []):
            if cond["type"] == kind:
                return dict(cond)
        return {}

    def events(self, namespace: str, name: str) -> list[client.CoreV1Event]:
        return [
            e
            for e in self.core.list_namespaced_event(namespace).items
            if e.involved_object.name == name and e.involved_object.kind == "VivifiedPlugin"
        ]

    def children(self, namespace: str, plugin_id: str) -> dict[str, list[str]]:
        """Names of the plugin's children, by kind (found by label, as a user would)."""
        listers = {
            "ServiceAccount": self.core.list_namespaced_service_account,
            "Secret": self.core.list_namespaced_secret,
            "Deployment": self.apps.list_namespaced_deployment,
            "Service": self.core.list_namespaced_service,
            "NetworkPolicy": self.net.list_namespaced_network_policy,
        }
        selector = f"vivified.dev/plugin={plugin_id}"
        return {
            kind: [o.metadata.name for o in lister(namespace, label_selector=selector).items]
            for kind, lister in listers.items()
        }

    def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            secret = self.core.read_namespaced_secret(name, namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}

    def configmap_data(self, namespace: str, name: str) -> dict[str, str]:
        try:
            return dict(self.core.read_namespaced_config_map(name, namespace).data or {})
        except ApiException as error:
            if error.status == 404:
                return {}
            raise


WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


def audited_writes(log: Path, offset: int, namespace: str, agents: tuple[str, ...]) -> list[str]:
    """Write requests in the API server's audit log after ``offset`` bytes, in ``namespace``,
    by clients whose user agent starts with one of ``agents``."""
    writes = []
    with log.open("rb") as stream:
        stream.seek(offset)
        for line in stream:
            event = json.loads(line)
            ref = event.get("objectRef", {})
            if (
                event.get("verb") in WRITE_VERBS
                and ref.get("namespace") == namespace
                and event.get("userAgent", "").startswith(agents)
            ):
                writes.append(f"{event['verb']} {ref.get('resource')}/{ref.get('name')}")
    return writes
