"""ServiceAccount, Deployment and Service of a plugin."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from vivified.resource import RESERVED_ENV_NAMES as SPEC_RESERVED_ENV_NAMES
from vivified.resource import RESERVED_ENV_PREFIX
from vivified.settings import OperatorSettings
from vivified_sdk import contract

from .common import ANNOTATION_MANIFEST_HASH, child_names, object_metadata, plugin_labels
from .common import selector_labels as _selector
from .hashing import spec_hash
from .instance import PluginInstance
from .probes import probes
from .quantities import container_resources, memory_quantity

__all__ = [
    "CONTAINER_NAME",
    "ENV_CORE_URL",
    "ENV_HEARTBEAT_URL",
    "ENV_JWKS_FILE",
    "ENV_JWKS_URL",
    "ENV_PLUGIN_ID",
    "ENV_PLUGIN_PORT",
    "ENV_PROXY_NAMES",
    "ENV_REVOCATIONS_URL",
    "ENV_TOKEN_FILE",
    "PORT_NAME",
    "PROXY_PORT",
    "RESERVED_ENV_NAMES",
    "SECRET_DEFAULT_MODE",
    "TMP_VOLUME",
    "TOKEN_VOLUME",
    "container_env",
    "is_reserved_env_name",
    "proxy_env",
    "render_deployment",
    "render_service",
    "render_service_account",
]

CONTAINER_NAME = "plugin"
PORT_NAME = "http"
TMP_VOLUME = "tmp"
TOKEN_VOLUME = "vivified-token"  # noqa: S105 - a volume name
#: 0440: readable by the owner and by the pod's fsGroup (the plugin process), nobody else.
SECRET_DEFAULT_MODE = 0o440

# The operator<->plugin contract (names the plugin's SDK reads): ``vivified_sdk.contract``.
ENV_PLUGIN_ID = contract.ENV_PLUGIN_ID
ENV_PLUGIN_PORT = contract.ENV_PLUGIN_PORT
ENV_CORE_URL = contract.ENV_CORE_URL
ENV_HEARTBEAT_URL = contract.ENV_HEARTBEAT_URL
ENV_TOKEN_FILE = contract.ENV_TOKEN_FILE
ENV_JWKS_FILE = contract.ENV_JWKS_FILE
ENV_REVOCATIONS_URL = contract.ENV_REVOCATIONS_URL
ENV_JWKS_URL = contract.ENV_JWKS_URL
#: The core's plugin services (``vivified.dataplane.plugin_api``), under ``core_url``.
CORE_HEARTBEAT_PATH = contract.CORE_HEARTBEAT_PATH
CORE_REVOCATIONS_PATH = contract.CORE_REVOCATIONS_PATH
CORE_JWKS_PATH = contract.CORE_JWKS_PATH
#: The proxy lane (issue 9): the core's port ``proxy``; the standard variables, both cases.
PROXY_PORT = contract.CORE_PROXY_PORT
ENV_PROXY_NAMES = contract.ENV_PROXY_NAMES
#: Names the operator sets; user ``env`` entries with these names (or the ``VIVIFIED_``
#: prefix, which the spec validation rejects) are dropped rather than overriding them.
RESERVED_ENV_NAMES: frozenset[str] = frozenset(
    {*SPEC_RESERVED_ENV_NAMES, ENV_PLUGIN_ID, ENV_PLUGIN_PORT, ENV_CORE_URL, ENV_TOKEN_FILE}
    | {ENV_JWKS_FILE, ENV_HEARTBEAT_URL, ENV_REVOCATIONS_URL, ENV_JWKS_URL}
    | set(ENV_PROXY_NAMES)
)


def is_reserved_env_name(name: str) -> bool:
    return name in RESERVED_ENV_NAMES or name.startswith(RESERVED_ENV_PREFIX)


def render_service_account(plugin: PluginInstance, settings: OperatorSettings) -> dict[str, Any]:
    """A dedicated identity with no API token: plugins never talk to the Kubernetes API."""
    del settings  # same shape whatever the settings
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": object_metadata(plugin, child_names(plugin.plugin_id)["ServiceAccount"]),
        "automountServiceAccountToken": False,
    }


def proxy_env(plugin: PluginInstance, settings: OperatorSettings) -> list[dict[str, str]]:
    """``HTTPS_PROXY``/``HTTP_PROXY`` (the core's proxy lane) and ``NO_PROXY`` (the core,
    reached directly) for plugins with ``external_service`` only: the others
    have no egress to configure, and leaving their env alone avoids restarting them.

    The URL carries no credentials (the token rotates): the SDK's egress client sends the
    current token per request; stock clients are configured as in docs/proxy.md."""
    if "external_service" not in plugin.spec.manifest.traits:
        return []
    core = urlsplit(settings.core_url).hostname or ""
    url = f"http://{_url_host(core)}:{PROXY_PORT}"
    bypass = [core]
    no_proxy = ",".join([*bypass, "localhost", "127.0.0.1", "::1"])
    values = {
        contract.ENV_HTTPS_PROXY: url,
        contract.ENV_HTTP_PROXY: url,
        contract.ENV_NO_PROXY: no_proxy,
    }
    return [{"name": name, "value": values[name.upper()]} for name in ENV_PROXY_NAMES]


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def container_env(plugin: PluginInstance, settings: OperatorSettings) -> list[dict[str, str]]:
    """Operator variables first, then the user's ``env`` (reserved names dropped; for a name
    given twice the last value wins, at the first position, as with ``kubectl``)."""
    env: list[dict[str, str]] = [
        {"name": ENV_PLUGIN_ID, "value": plugin.plugin_id},
        {"name": ENV_PLUGIN_PORT, "value": str(plugin.spec.effective_port)},
        {"name": ENV_CORE_URL, "value": settings.core_url},
    ]
    # The core serves every plugin service (vivified.dataplane.plugin_api), whichever replica
    # answers; the operator accepts no plugin traffic. Plugins in other namespaces cannot mount
    # the operator's revocation ConfigMap: the SDK polls the core's list (and fails closed).
    core = settings.core_url.rstrip("/")
    env.append({"name": ENV_HEARTBEAT_URL, "value": core + CORE_HEARTBEAT_PATH})
    env.append({"name": ENV_REVOCATIONS_URL, "value": core + CORE_REVOCATIONS_PATH})
    env.append({"name": ENV_JWKS_URL, "value": core + CORE_JWKS_PATH})
    if plugin.token_secret_name is not None:
        env.append({"name": ENV_TOKEN_FILE, "value": settings.token_file})
        env.append({"name": ENV_JWKS_FILE, "value": settings.jwks_file})
    env.extend(proxy_env(plugin, settings))
    user: dict[str, str] = {}
    for item in plugin.spec.env:
        if not is_reserved_env_name(item.name):
            user[item.name] = item.value
    env.extend({"name": name, "value": value} for name, value in user.items())
    return env


def _pod_security_context(settings: OperatorSettings) -> dict[str, Any]:
    return {
        "fsGroup": settings.fs_group,
        "runAsGroup": settings.run_as_group,
        "runAsNonRoot": True,
        "runAsUser": settings.run_as_user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def render_deployment(plugin: PluginInstance, settings: OperatorSettings) -> dict[str, Any]:
    spec = plugin.spec
    manifest = spec.manifest
    port = spec.effective_port
    labels = plugin_labels(plugin)

    mounts: list[dict[str, Any]] = [{"name": TMP_VOLUME, "mountPath": "/tmp"}]  # noqa: S108
    volumes: list[dict[str, Any]] = [
        {"name": TMP_VOLUME, "emptyDir": {"sizeLimit": memory_quantity(settings.tmp_size_limit_mb)}}
    ]
    if plugin.token_secret_name is not None:
        # A whole-directory mount (never subPath) so the kubelet swaps in re-minted tokens.
        mounts.append(
            {"name": TOKEN_VOLUME, "mountPath": settings.token_mount_dir, "readOnly": True}
        )
        volumes.append(
            {
                "name": TOKEN_VOLUME,
                "secret": {
                    "secretName": plugin.token_secret_name,
                    "defaultMode": SECRET_DEFAULT_MODE,
                    "optional": False,
                },
            }
        )

    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": spec.image,
        "ports": [{"name": PORT_NAME, "containerPort": port, "protocol": "TCP"}],
        "env": container_env(plugin, settings),
        "resources": container_resources(manifest, settings),
        **probes(manifest, port, settings),
        "securityContext": _container_security_context(),
        "volumeMounts": mounts,
    }

    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_metadata(plugin, child_names(plugin.plugin_id)["Deployment"]),
        "spec": {
            "replicas": spec.replicas if plugin.should_run else 0,
            "revisionHistoryLimit": settings.revision_history_limit,
            "selector": {"matchLabels": _selector(plugin.plugin_id)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {ANNOTATION_MANIFEST_HASH: spec_hash(spec)},
                },
                "spec": {
                    "serviceAccountName": child_names(plugin.plugin_id)["ServiceAccount"],
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": settings.termination_grace_period_seconds,
                    "securityContext": _pod_security_context(settings),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def render_service(plugin: PluginInstance, settings: OperatorSettings) -> dict[str, Any]:
    del settings
    port = plugin.spec.effective_port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_metadata(plugin, child_names(plugin.plugin_id)["Service"]),
        "spec": {
            "type": "ClusterIP",
            "selector": _selector(plugin.plugin_id),
            "ports": [
                {"name": PORT_NAME, "port": port, "targetPort": PORT_NAME, "protocol": "TCP"}
            ],
        },
    }
