"""The Admin UI's handlers against a small fake Kubernetes API (https, loopback): the signed-in
paths without a cluster. The fake answers like the API server: 401 for an unknown token, 403 for
a patch by a reader, and it records which token made each request."""

from __future__ import annotations

import copy
import re
import secrets
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from tests.cluster_support import self_signed_certificate
from tests.e2e.kube import load_example

from vivified.audit.hook import MemoryAuditor
from vivified.dataplane.ui import UIConfig, create_ui_app

ADMIN, READER = "admin-token", "reader-token"
USERS = {ADMIN: "alice", READER: "bob"}
NS = "team-a"


@dataclass
class FakeAPI:
    plugins: dict[str, dict[str, Any]]
    calls: list[tuple[str, str, str]] = field(default_factory=list)

    def user(self, request: web.Request) -> str | None:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return USERS.get(token)

    async def handle(self, request: web.Request) -> web.Response:
        user = self.user(request)
        self.calls.append((request.method, request.path, user or "?"))
        if user is None:
            return web.json_response(
                {"reason": "Unauthorized", "message": "Unauthorized"}, status=401
            )
        path = request.path
        if path.endswith("/selfsubjectreviews"):
            return web.json_response({"status": {"userInfo": {"username": user, "groups": ["g"]}}})
        if path.endswith("/selfsubjectaccessreviews"):
            attrs = (await request.json())["spec"]["resourceAttributes"]
            allowed = user == "alice" or attrs["verb"] != "patch"
            return web.json_response(
                {"status": {"allowed": allowed, "reason": "" if allowed else "no rule"}}
            )
        if path.endswith("/events"):
            return web.json_response(
                {
                    "items": [
                        {"type": "Normal", "reason": "Created", "message": "made it", "count": 1}
                    ]
                }
            )
        if path.endswith("/vivifiedplugins"):
            return web.json_response({"metadata": {}, "items": list(self.plugins.values())})
        name = path.rsplit("/", 1)[1]
        if name not in self.plugins:
            return web.json_response(
                {"reason": "NotFound", "message": f"{name} not found"}, status=404
            )
        if request.method == "PATCH":
            if user != "alice":
                return web.json_response(
                    {
                        "reason": "Forbidden",
                        "message": f'vivifiedplugins "{name}" is forbidden: '
                        f'User "{user}" cannot patch resource',
                    },
                    status=403,
                )
            self.plugins[name]["spec"]["enabled"] = (await request.json())["spec"]["enabled"]
        return web.json_response(self.plugins[name])


def plugin(example: str, **status: Any) -> dict[str, Any]:
    obj = copy.deepcopy(load_example(example))
    obj["metadata"]["namespace"] = NS
    obj["status"] = {"phase": "Active", "health": "healthy", "ready": "1/1", **status}
    return obj


@dataclass
class Env:
    ui: TestClient[web.Request, web.Application]
    api: FakeAPI
    auditor: MemoryAuditor


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    cert, key = self_signed_certificate(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    api = FakeAPI(
        {
            "user-management": plugin("user-management.yaml", metrics={"users": 3}),
            "external-crm": plugin(
                "external-crm.yaml", health="unhealthy", consecutiveFailures=4, lastError="refused"
            ),
        }
    )
    api_app = web.Application()
    api_app.router.add_route("*", "/{tail:.*}", api.handle)
    runner = web.AppRunner(api_app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    auditor = MemoryAuditor()
    config = UIConfig(
        api_server=f"https://127.0.0.1:{port}",
        ca_pem=cert.read_bytes(),
        session_key=secrets.token_bytes(32),
        secure_cookie=False,
        default_namespace=NS,
    )
    root = web.Application()
    root.add_subapp("/ui", create_ui_app(config, auditor=auditor))
    async with TestClient(TestServer(root)) as ui:
        yield Env(ui, api, auditor)
    await runner.cleanup()


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match
    return match.group(1)


async def sign_in(env: Env, token: str) -> str:
    csrf = csrf_of(await (await env.ui.get("/ui/login")).text())
    r = await env.ui.post("/ui/login", data={"token": token, "csrf": csrf, "namespace": NS})
    assert r.status == 200, await r.text()
    return await r.text()


async def test_wrong_token_stays_on_the_sign_in_page(env: Env) -> None:
    csrf = csrf_of(await (await env.ui.get("/ui/login")).text())
    r = await env.ui.post("/ui/login", data={"token": "nope", "csrf": csrf})
    assert r.status == 401
    assert "did not accept this token" in await r.text()


async def test_admin_sees_the_list_and_can_disable(env: Env) -> None:
    html = await sign_in(env, ADMIN)
    assert 'Signed in as <strong class="user">alice</strong>' in html
    assert html.index('<h2 id="g-Identity">') < html.index('<h2 id="g-Communication">')
    assert "(4 failed)" in html
    assert ">PII</li>" in html
    detail = await (await env.ui.get(f"/ui/plugins/{NS}/user-management")).text()
    for text in ("Recent events", "made it", "users", "Manifest", "audit store is\nnot connected"):
        assert text in detail, text
    confirm = await (await env.ui.get(f"/ui/plugins/{NS}/user-management/confirm")).text()
    assert "scales it to 0, revokes its token" in confirm
    r = await env.ui.post(
        f"/ui/plugins/{NS}/user-management/enabled",
        data={"enabled": "false", "csrf": csrf_of(confirm)},
        allow_redirects=False,
    )
    assert r.status == 303
    assert r.headers["Location"] == f"/ui/plugins/{NS}/user-management?done=disabled"
    assert env.api.plugins["user-management"]["spec"]["enabled"] is False
    assert (
        "PATCH",
        f"/apis/vivified.dev/v1alpha1/namespaces/{NS}/vivifiedplugins/user-management",
        "alice",
    ) in env.api.calls
    [entry] = env.auditor.entries
    assert (entry.action, entry.agent, entry.outcome) == ("ui.disable", "user:alice", "allowed")
    assert entry.audit_level == "detailed"
    assert entry.audit_required
    poll = await (await env.ui.get(f"/ui/api/status?namespace={NS}&name=user-management")).json()
    assert poll["plugins"][f"{NS}/user-management"]["enabled"] is False


async def test_reader_gets_disabled_buttons_and_the_api_servers_403(env: Env) -> None:
    html = await sign_in(env, READER)
    assert "disabled aria-describedby" in html
    assert "may read this plugin but not change it" in html
    r = await env.ui.post(
        f"/ui/plugins/{NS}/user-management/enabled",
        data={"enabled": "false", "csrf": csrf_of(html)},
    )
    assert r.status == 403
    assert "The Kubernetes API refused the change (403)" in await r.text()
    assert env.api.plugins["user-management"]["spec"]["enabled"] is True
    [entry] = env.auditor.entries
    assert (entry.outcome, entry.reason) == ("refused", "kubernetes_403")


async def test_every_api_call_carries_the_users_token(env: Env) -> None:
    await sign_in(env, READER)
    await env.ui.get(f"/ui/plugins/{NS}/external-crm")
    assert env.api.calls
    assert {user for _, _, user in env.api.calls} == {"bob"}


async def test_a_missing_plugin_is_a_404_page(env: Env) -> None:
    await sign_in(env, ADMIN)
    r = await env.ui.get(f"/ui/plugins/{NS}/nope")
    assert r.status == 404
    assert "nope not found" in await r.text()


async def test_sign_out_clears_the_session(env: Env) -> None:
    html = await sign_in(env, ADMIN)
    r = await env.ui.post("/ui/logout", data={"csrf": csrf_of(html)})
    assert "You are signed out" in await r.text()
    r = await env.ui.get("/ui/", allow_redirects=False)
    assert r.status == 303
