"""The Kubernetes API as the signed-in user: every call carries *their* bearer token.

So the API server authenticates the person, RBAC decides, and the API server's audit log names
them, exactly as if they had used kubectl. The UI adds no authority of its own: it has none.
Tokens go only into the Authorization header of requests to the API server; they are never
logged (httpx logs URLs, not headers) and never part of an error message.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote

import httpx

from vivified.resource import GROUP, PLURAL, VERSION

USER_AGENT = "vivified-ui"
FIELD_MANAGER = "vivified-ui"
LIST_CHUNK = 500
#: A list is cut here (and the page says so): a browser page of more than this is no use.
MAX_LIST_ITEMS = 20000
TIMEOUT_SECONDS = 10.0

JSON = dict[str, Any]


class KubeError(Exception):
    """The API server refused or failed a request; ``message`` is its own words."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class UserInfo:
    username: str
    groups: tuple[str, ...]


@dataclass(frozen=True)
class Access:
    allowed: bool
    reason: str


@dataclass(frozen=True)
class PluginList:
    items: list[JSON]
    truncated: bool


def _ssl_context(ca_pem: bytes | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_pem is not None:
        context = ssl.create_default_context(cadata=ca_pem.decode())
    return context


def _error(response: httpx.Response) -> KubeError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    message = str(body.get("message") or response.reason_phrase or "no message")
    return KubeError(response.status_code, str(body.get("reason") or ""), message[:2000])


class KubeAPI:
    """A pooled HTTPS client for the API server; each method takes the caller's token."""

    def __init__(self, api_server: str, ca_pem: bytes | None) -> None:
        self._client = httpx.AsyncClient(
            base_url=api_server,
            verify=_ssl_context(ca_pem),
            timeout=TIMEOUT_SECONDS,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            trust_env=False,  # the API server is reached directly, never through a proxy
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def _call(
        self,
        token: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: JSON | None = None,
        content_type: str = "application/json",
    ) -> JSON:
        headers = {"Authorization": f"Bearer {token}"}
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            response = await self._client.request(
                method, path, params=params, json=body, headers=headers
            )
        except httpx.HTTPError as error:
            raise KubeError(
                502, "Unreachable", f"the Kubernetes API did not answer: {type(error).__name__}"
            ) from error
        if response.status_code >= 400:
            raise _error(response)
        return cast(JSON, response.json())

    async def whoami(self, token: str) -> UserInfo:
        """SelfSubjectReview: who the API server says this token is (401 if it is no one)."""
        review = await self._call(
            token,
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
        info = review.get("status", {}).get("userInfo", {})
        return UserInfo(str(info.get("username", "")), tuple(info.get("groups") or ()))

    async def can(
        self, token: str, verb: str, namespace: str, resource: str = PLURAL, group: str = GROUP
    ) -> Access:
        """SelfSubjectAccessReview: may this user ``verb`` ``resource`` in ``namespace``?"""
        review = await self._call(
            token,
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            body={
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {
                    "resourceAttributes": {
                        "verb": verb,
                        "group": group,
                        "resource": resource,
                        "namespace": namespace,
                    }
                },
            },
        )
        status = review.get("status", {})
        return Access(bool(status.get("allowed")), str(status.get("reason") or ""))

    async def list_plugins(self, token: str, namespace: str) -> PluginList:
        """Every VivifiedPlugin in ``namespace`` ("" = all), fetched in chunks."""
        base = f"/apis/{GROUP}/{VERSION}"
        path = (
            f"{base}/namespaces/{quote(namespace, safe='')}/{PLURAL}"
            if namespace
            else (f"{base}/{PLURAL}")
        )
        items: list[JSON] = []
        params = {"limit": str(LIST_CHUNK)}
        while True:
            page = await self._call(token, "GET", path, params=params)
            items.extend(page.get("items") or [])
            cont = (page.get("metadata") or {}).get("continue")
            if not cont:
                return PluginList(items, truncated=False)
            if len(items) >= MAX_LIST_ITEMS:
                return PluginList(items[:MAX_LIST_ITEMS], truncated=True)
            params = {"limit": str(LIST_CHUNK), "continue": str(cont)}

    def _plugin_path(self, namespace: str, name: str) -> str:
        return (
            f"/apis/{GROUP}/{VERSION}/namespaces/{quote(namespace, safe='')}/{PLURAL}/"
            f"{quote(name, safe='')}"
        )

    async def get_plugin(self, token: str, namespace: str, name: str) -> JSON:
        return await self._call(token, "GET", self._plugin_path(namespace, name))

    async def events(self, token: str, namespace: str, name: str) -> list[JSON]:
        """Events about this plugin, as ``kubectl describe`` shows them."""
        page = await self._call(
            token,
            "GET",
            f"/api/v1/namespaces/{quote(namespace, safe='')}/events",
            params={
                "fieldSelector": f"involvedObject.kind=VivifiedPlugin,involvedObject.name={name}",
                "limit": "100",
            },
        )
        return list(page.get("items") or [])

    async def set_enabled(self, token: str, namespace: str, name: str, enabled: bool) -> JSON:
        """Merge-patch ``spec.enabled``: the user's own patch, in their name."""
        return await self._call(
            token,
            "PATCH",
            self._plugin_path(namespace, name),
            params={"fieldManager": FIELD_MANAGER},
            body={"spec": {"enabled": enabled}},
            content_type="application/merge-patch+json",
        )
