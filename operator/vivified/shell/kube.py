"""A small async Kubernetes REST client for the handful of kinds the operator touches.

kopf brings its own client for watching VivifiedPlugins; everything else (server-side apply of
children, status, label-selected watches) goes through this one. It speaks plain dicts, so what
the pure renderer produces is exactly what is sent, and it counts its writes so tests can prove
that an unchanged plugin causes none.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from vivified.shell import credentials as creds

APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
MERGE_PATCH_CONTENT_TYPE = "application/merge-patch+json"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

_SCOPE: ContextVar[Counter[str] | None] = ContextVar("vivified_write_scope", default=None)


@contextlib.contextmanager
def counting_writes() -> Iterator[Counter[str]]:
    """Count the writes made by this task (and tasks it starts) only.

    Concurrent reconciles share one client; a delta of its global counter would include the
    other reconciles' writes. A context variable follows the task, not the client.
    """
    scope: Counter[str] = Counter()
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)


def write_kind(path: str) -> str:
    """A write's path without namespace and object name (``/api/v1/namespaces/*/secrets/*``).

    The client's running total is keyed by this, so it stays a few dozen keys whatever the
    number of plugins (keyed by full path it held ~7 keys per plugin for the process's life).
    """
    parts = path.split("/")
    for i, part in enumerate(parts[:-1]):
        if part == "namespaces" and i + 2 < len(parts):
            parts[i + 1] = "*"
    names = {kind.plural for kind in KINDS.values()} | {"events", "namespaces", "leases"}
    for i, part in enumerate(parts[:-1]):
        if part in names and parts[i + 1] != "*":
            parts[i + 1] = "*"
    return "/".join(parts)


def record_write(writes: Counter[str], method: str, path: str) -> None:
    """Count one write in the client's total (by kind) and in the current task's scope."""
    writes[f"{method} {write_kind(path)}"] += 1
    scope = _SCOPE.get()
    if scope is not None:
        scope[f"{method} {path}"] += 1


@dataclass(frozen=True)
class ResourceKind:
    """Where a kind lives in the REST API."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    @property
    def base(self) -> str:
        return "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        parts = [self.base]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{quote(namespace, safe='')}")
        parts.append(self.plural)
        if name:
            parts.append(quote(name, safe=""))
        return "/".join(parts)


KINDS: dict[str, ResourceKind] = {
    k.kind: k
    for k in (
        ResourceKind("v1", "ServiceAccount", "serviceaccounts"),
        ResourceKind("v1", "Secret", "secrets"),
        ResourceKind("v1", "ConfigMap", "configmaps"),
        ResourceKind("v1", "Service", "services"),
        ResourceKind("v1", "Namespace", "namespaces", namespaced=False),
        ResourceKind("apps/v1", "Deployment", "deployments"),
        ResourceKind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
        ResourceKind("vivified.dev/v1alpha1", "VivifiedPlugin", "vivifiedplugins"),
    )
}


class KubeError(Exception):
    """A non-success answer from the API server."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def _raise_for(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        payload = response.json()
        reason, message = str(payload.get("reason", "")), str(payload.get("message", ""))
    except (ValueError, AttributeError):
        reason, message = response.reason_phrase, response.text[:500]
    raise KubeError(response.status_code, reason, message)


class KubeApi(Protocol):
    """What the operator's parts need from the API server; ``Kube`` and the tests' fake cluster."""

    writes: Counter[str]

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: object = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> dict[str, Any]: ...

    async def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None: ...

    async def list(
        self, kind: str, namespace: str | None = None, *, label_selector: str | None = None
    ) -> dict[str, Any]: ...

    async def apply(
        self, obj: Mapping[str, Any], *, field_manager: str, force: bool = True
    ) -> dict[str, Any]: ...

    async def patch_status(
        self, kind: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]: ...

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]: ...

    async def delete(
        self, kind: str, namespace: str | None, name: str, *, resource_version: str | None = None
    ) -> bool: ...

    def watch(
        self,
        kind: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        resource_version: str,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[dict[str, Any]]: ...

    async def close(self) -> None: ...


class Kube:
    """Async access to the API server with the operator's credentials."""

    def __init__(
        self, credentials: creds.Credentials, *, user_agent: str = "vivified-operator"
    ) -> None:
        self.credentials = credentials
        self._http = httpx.AsyncClient(
            base_url=credentials.server,
            verify=credentials.ssl_context(),
            headers={"User-Agent": user_agent, "Accept": "application/json"},
            timeout=httpx.Timeout(30.0),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )
        self.writes: Counter[str] = Counter()

    @classmethod
    def from_environment(
        cls, kubeconfig: str | None = None, *, user_agent: str = "vivified-operator"
    ) -> Kube:
        """In-cluster service account when present, else ``$KUBECONFIG`` / ``kubeconfig``."""
        return cls(creds.load(kubeconfig), user_agent=user_agent)

    async def close(self) -> None:
        await self._http.aclose()

    def _auth_headers(self) -> dict[str, str]:
        token = self.credentials.bearer()
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: object = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> dict[str, Any]:
        headers = self._auth_headers()
        content = None
        if body is not None:
            headers["Content-Type"] = content_type
            content = json.dumps(body, separators=(",", ":"))
        if method in WRITE_METHODS:
            record_write(self.writes, method, path)
        response = await self._http.request(
            method,
            path,
            params=params,
            content=content,
            headers=headers,
            timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
        )
        _raise_for(response)
        result: dict[str, Any] = response.json() if response.content else {}
        return result

    @property
    def write_count(self) -> int:
        return sum(self.writes.values())

    async def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            return await self.request("GET", KINDS[kind].path(namespace, name))
        except KubeError as error:
            if error.status == 404:
                return None
            raise

    async def list(
        self, kind: str, namespace: str | None = None, *, label_selector: str | None = None
    ) -> dict[str, Any]:
        params = {"labelSelector": label_selector} if label_selector else None
        return await self.request("GET", KINDS[kind].path(namespace), params=params)

    async def apply(
        self, obj: Mapping[str, Any], *, field_manager: str, force: bool = True
    ) -> dict[str, Any]:
        """Server-side apply ``obj`` as ``field_manager``."""
        metadata = obj["metadata"]
        path = KINDS[obj["kind"]].path(metadata.get("namespace"), metadata["name"])
        params = {"fieldManager": field_manager, "force": "true" if force else "false"}
        return await self.request(
            "PATCH", path, params=params, body=obj, content_type=APPLY_CONTENT_TYPE
        )

    async def patch_status(
        self, kind: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch the status subresource (``None`` values remove fields)."""
        path = KINDS[kind].path(namespace, name) + "/status"
        return await self.request(
            "PATCH", path, body={"status": status}, content_type=MERGE_PATCH_CONTENT_TYPE
        )

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        metadata = obj["metadata"]
        return await self.request(
            "POST", KINDS[obj["kind"]].path(metadata.get("namespace")), body=obj
        )

    async def delete(
        self, kind: str, namespace: str | None, name: str, *, resource_version: str | None = None
    ) -> bool:
        """Delete; False when it was already gone. ``resource_version`` guards the delete."""
        body = (
            {"preconditions": {"resourceVersion": resource_version}} if resource_version else None
        )
        try:
            await self.request("DELETE", KINDS[kind].path(namespace, name), body=body)
        except KubeError as error:
            if error.status == 404:
                return False
            raise
        return True

    async def watch(
        self,
        kind: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        resource_version: str,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield watch events until the server closes the stream."""
        params = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        if label_selector:
            params["labelSelector"] = label_selector
        async with self._http.stream(
            "GET",
            KINDS[kind].path(namespace),
            params=params,
            headers=self._auth_headers(),
            timeout=httpx.Timeout(timeout_seconds + 30.0),
        ) as response:
            if not response.is_success:
                await response.aread()
                _raise_for(response)
            async for line in response.aiter_lines():
                if line.strip():
                    yield json.loads(line)
