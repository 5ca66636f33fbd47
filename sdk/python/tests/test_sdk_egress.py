"""The proxy lane's client side (``vivified_sdk._egress``) against a stand-in proxy on loopback.

The stand-in answers absolute-URI requests itself (no upstream, nothing leaves loopback): 200
for the token it currently accepts, 407 with the challenge otherwise, 403 with a reason header
for ``denied.test``. The core's real proxy is exercised in the operator's test suite.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from vivified_sdk import (
    EgressNotConfigured,
    TokenFile,
    async_egress_client,
    contract,
    egress_client,
    proxy_url_from_env,
    refusal_reason,
)


class StandIn(http.server.ThreadingHTTPServer):
    accepted = "first"
    seen: list[str]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: StandIn

    def do_GET(self) -> None:
        auth = self.headers.get("Proxy-Authorization", "")
        self.server.seen.append(auth)
        if auth != f"Bearer {self.server.accepted}":
            self._answer(407, b"", {"Proxy-Authenticate": 'Basic realm="vivified"'})
        elif self.path.startswith("http://denied.test"):
            self._answer(403, b"{}", {contract.PROXY_REASON_HEADER: "domain_not_allowed"})
        else:
            self._answer(200, self.path.encode(), {})

    def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        del args


@pytest.fixture
def proxy() -> Iterator[StandIn]:
    server = StandIn(("127.0.0.1", 0), _Handler)
    server.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server: StandIn) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_proxy_url_from_env() -> None:
    assert proxy_url_from_env({contract.ENV_HTTPS_PROXY: " http://core:3128 "}) == (
        "http://core:3128"
    )
    assert proxy_url_from_env({"https_proxy": "http://lower:3128"}) == "http://lower:3128"
    with pytest.raises(EgressNotConfigured, match="external_service"):
        proxy_url_from_env({})


def test_the_client_sends_the_current_token_and_follows_rotation(
    proxy: StandIn, tmp_path: Path
) -> None:
    path = tmp_path / "token"
    path.write_text("first\n")
    with egress_client(proxy_url=_url(proxy), token_file=TokenFile(path)) as http_:
        assert http_.get("http://api.partner.test/a").text == "http://api.partner.test/a"
        # Re-minted: the kubelet swaps the file; the proxy now accepts only the new token.
        new = tmp_path / "token.new"
        new.write_text("second")
        new.replace(path)
        proxy.accepted = "second"
        assert http_.get("http://api.partner.test/b").status_code == 200
        refused = http_.get("http://denied.test/")
        assert refused.status_code == 403
        assert refusal_reason(refused) == "domain_not_allowed"
        assert refusal_reason(http_.get("http://api.partner.test/c")) is None
    assert proxy.seen[:2] == ["Bearer first", "Bearer second"]
    assert "first" not in repr(TokenFile(path))


def test_a_407_is_retried_once_with_the_file_read_again(proxy: StandIn, tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first")
    with egress_client(proxy_url=_url(proxy), token_file=TokenFile(path)) as http_:
        assert http_.get("http://api.partner.test/").status_code == 200
        proxy.accepted = "nobody"  # the proxy no longer takes any token we have
        assert http_.get("http://api.partner.test/").status_code == 407
    assert proxy.seen == ["Bearer first", "Bearer first", "Bearer first"]


async def test_the_async_client(proxy: StandIn, tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first")
    async with async_egress_client(proxy_url=_url(proxy), token_file=TokenFile(path)) as http_:
        assert (await http_.get("http://api.partner.test/x")).status_code == 200
        path.write_text("second")
        proxy.accepted = "second"
        assert (await http_.get("http://api.partner.test/y")).status_code == 200
    assert proxy.seen == ["Bearer first", "Bearer second"]


def test_no_proxy_variables_do_not_bypass_the_proxy(
    proxy: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_PROXY", "*")
    path = tmp_path / "token"
    path.write_text("first")
    with egress_client(proxy_url=_url(proxy), token_file=TokenFile(path)) as http_:
        assert http_.get("http://api.partner.test/").status_code == 200
    assert proxy.seen == ["Bearer first"]  # it went through the proxy, NO_PROXY or not
