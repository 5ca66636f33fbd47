"""Sessions, CSRF, cross-site refusal, headers and escaping, through the real aiohttp app.

The API server here is unreachable on purpose: these paths must refuse before any API call.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from tests.e2e.kube import load_example

from vivified.dataplane.ui import UIConfig, create_ui_app, pages, session, views
from vivified.dataplane.ui.security import CSP, cross_site_refusal

KEY = secrets.token_bytes(32)


def config(**changes: object) -> UIConfig:
    base = {
        "api_server": "https://127.0.0.1:9",
        "ca_pem": None,
        "session_key": KEY,
        "secure_cookie": False,
    }
    return UIConfig(**{**base, **changes})  # type: ignore[arg-type]


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    root = web.Application()
    root.add_subapp("/ui", create_ui_app(config()))
    async with TestClient(TestServer(root)) as c:
        yield c


def test_seal_unseal_round_trip_and_tamper() -> None:
    s = session.signed_in(token="t0k", username="alice", groups=("g",), namespace="ns", lifetime=60)
    sealed = session.seal(s, KEY)
    assert "t0k" not in sealed
    assert "alice" not in sealed
    assert session.unseal(sealed, KEY) == s
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    for bad in (flipped, "garbage", "", sealed[:20]):
        with pytest.raises(session.SessionInvalid):
            session.unseal(bad, KEY)
    with pytest.raises(session.SessionInvalid):
        session.unseal(sealed, secrets.token_bytes(32))  # another server's key
    with pytest.raises(session.SessionInvalid, match="expired"):
        session.unseal(sealed, KEY, now=s.expires + 1)
    assert "t0k" not in repr(s)


def test_csrf_is_compared_to_the_session() -> None:
    s = session.anonymous(60)
    assert s.csrf_matches(s.csrf)
    assert not s.csrf_matches(None)
    assert not s.csrf_matches(session.anonymous(60).csrf)


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({"Sec-Fetch-Site": "same-origin", "Origin": "http://ui.test"}, False),
        ({}, False),
        ({"Sec-Fetch-Site": "cross-site"}, True),
        ({"Sec-Fetch-Site": "same-site"}, True),
        ({"Origin": "https://evil.test"}, True),
        ({"Origin": "null"}, True),
    ],
)
def test_cross_site_refusal(headers: dict[str, str], refused: bool) -> None:
    assert (cross_site_refusal(headers, "ui.test") is not None) is refused


def test_config_refuses_plain_http_and_short_keys() -> None:
    with pytest.raises(ValueError, match="https"):
        config(api_server="http://127.0.0.1:8080")
    with pytest.raises(ValueError, match="32 bytes"):
        config(session_key=b"short")


def test_markup_in_a_manifest_renders_as_text() -> None:
    obj = load_example("user-management.yaml")
    obj["metadata"]["namespace"] = "ns"
    obj["spec"]["manifest"]["name"] = "<script>alert(1)</script>"
    obj["spec"]["manifest"]["traits"] = ['"><img src=x onerror=alert(1)>']
    page = views.list_page([obj], views.Filters())
    s = session.signed_in(token="t", username="<b>u</b>", groups=(), namespace="", lifetime=60)
    row = page.rows[0]
    html = pages.render(
        "list.html",
        s,
        page=page,
        filters=page.filters,
        actions={row.key: views.action_for(row, False)},
        denied="",
        phases=views.PHASES,
        healths=views.HEALTHS,
        poll=3,
    ).text
    assert html is not None
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img" not in html
    assert "<b>u</b>" not in html


async def test_no_session_redirects_to_sign_in(
    client: TestClient[web.Request, web.Application],
) -> None:
    for path in ("/ui/", "/ui/plugins/ns/x", "/ui/plugins/ns/x/confirm"):
        r = await client.get(path, allow_redirects=False)
        assert r.status == 303
        assert r.headers["Location"] == "/ui/login?reason=none"
    r = await client.get("/ui/api/status")
    assert r.status == 401


async def test_forged_cookie_is_refused(client: TestClient[web.Request, web.Application]) -> None:
    r = await client.get("/ui/", cookies={"vivified-ui": "forged"}, allow_redirects=False)
    assert r.headers["Location"] == "/ui/login?reason=invalid"
    page = await (await client.get("/ui/login?reason=invalid")).text()
    assert "could not be read" in page


async def test_sign_in_page_headers_and_cookie(
    client: TestClient[web.Request, web.Application],
) -> None:
    r = await client.get("/ui/login")
    assert r.status == 200
    assert r.headers["Content-Security-Policy"] == CSP
    assert "unsafe-inline" not in CSP
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Cache-Control"] == "no-store"
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Max-Age=1800" in cookie
    html = await r.text()
    assert '<script src="/ui/static/ui.js"' in html
    assert not re.search(r"<script>(?!</script>)", html), "no inline script"
    assert "style=" not in html


async def test_secure_cookie_uses_the_host_prefix() -> None:
    root = web.Application()
    root.add_subapp("/ui", create_ui_app(config(secure_cookie=True)))
    async with TestClient(TestServer(root)) as c:
        cookie = (await c.get("/ui/login")).headers["Set-Cookie"]
    assert cookie.startswith("__Host-vivified-ui=")
    assert "Secure" in cookie
    assert "Path=/" in cookie


async def _csrf(client: TestClient[web.Request, web.Application]) -> str:
    html = await (await client.get("/ui/login")).text()
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match
    return match.group(1)


async def test_sign_in_post_needs_the_sessions_csrf_token(
    client: TestClient[web.Request, web.Application],
) -> None:
    await _csrf(client)
    r = await client.post("/ui/login", data={"token": "x", "csrf": "wrong"})
    assert r.status == 403
    assert "CSRF token does not belong to your session" in await r.text()


async def test_cross_site_post_is_refused(client: TestClient[web.Request, web.Application]) -> None:
    csrf = await _csrf(client)
    r = await client.post(
        "/ui/login",
        data={"token": "x", "csrf": csrf},
        headers={"Origin": "https://evil.test", "Sec-Fetch-Site": "cross-site"},
    )
    assert r.status == 403
    assert "Refused: cross-site request" in await r.text()
    r = await client.post(
        "/ui/plugins/ns/x/enabled",
        data={"enabled": "false", "csrf": csrf},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert r.status == 403


async def test_sign_in_bad_input_says_why(client: TestClient[web.Request, web.Application]) -> None:
    cases = {
        "": "Enter a token",
        "a b": "no spaces",
        "x" * 3000: "longer than",
        "well-formed-but-unreachable": "could not check the token",
    }
    for token, why in cases.items():
        csrf = await _csrf(client)
        r = await client.post("/ui/login", data={"token": token, "csrf": csrf})
        assert why in await r.text(), token[:20]
        assert r.status in (400, 502)


async def test_static_assets_are_served_from_the_package(
    client: TestClient[web.Request, web.Application],
) -> None:
    for name in ("ui.js", "ui.css"):
        r = await client.get(f"/ui/static/{name}")
        assert r.status == 200
        assert "X-Content-Type-Options" in r.headers
