"""The plugin's own token (kubelet-swapped file) and authenticated calls to the core."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from sdk_support import KubeletMount
from vivified_sdk import CoreClient, TokenAuth, TokenFile, TokenFileError

# --------------------------------------------------------------------------------------------
# TokenFile
# --------------------------------------------------------------------------------------------


def test_token_file_follows_the_kubelet_swap(tmp_path: Path) -> None:
    mount = KubeletMount(tmp_path)
    mount.write({"token": "first-token"})
    token_file = TokenFile(tmp_path / "token")
    assert token_file.read() == "first-token"
    assert token_file.read() == "first-token"
    mount.write({"token": "second-token\n"})
    assert token_file.read() == "second-token"


def test_token_file_does_not_reread_an_unchanged_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "token"
    path.write_text("abc")
    token_file = TokenFile(path)
    assert token_file.read() == "abc"
    opened: list[Path] = []
    original = Path.open

    def spy(self: Path, *args: Any, **kwargs: Any) -> Any:
        opened.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", spy)
    for _ in range(5):
        assert token_file.read() == "abc"
    assert opened == []
    assert token_file.read(force=True) == "abc"
    assert opened == [path]


def test_token_file_errors_never_show_the_token(tmp_path: Path) -> None:
    path = tmp_path / "token"
    with pytest.raises(TokenFileError, match="cannot read"):
        TokenFile(path).read()
    path.write_text("  \n")
    with pytest.raises(TokenFileError, match="empty"):
        TokenFile(path).read()
    path.write_text("secret-token-value")
    token_file = TokenFile(path)
    token_file.read()
    assert "secret-token-value" not in repr(token_file)
    path.write_text("x" * 20_000)
    with pytest.raises(TokenFileError, match="too large"):
        TokenFile(path).read()


def test_token_file_keeps_the_last_token_while_the_file_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("abc")
    token_file = TokenFile(path)
    token_file.read()
    path.unlink()
    assert token_file.read() == "abc"
    with pytest.raises(TokenFileError):
        token_file.read(force=True)


def test_token_file_from_env(tmp_path: Path) -> None:
    assert TokenFile.from_env({}).path == Path("/var/run/vivified/token")
    assert TokenFile.from_env({"PLUGIN_TOKEN_FILE": str(tmp_path / "t")}).path == tmp_path / "t"


# --------------------------------------------------------------------------------------------
# CoreClient / TokenAuth
# --------------------------------------------------------------------------------------------


async def test_core_client_sends_the_current_token(tmp_path: Path) -> None:
    mount = KubeletMount(tmp_path)
    mount.write({"token": "t1"})
    seen: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((str(request.url), request.headers["Authorization"]))
        return httpx.Response(200, json={"ok": True})

    client = CoreClient(
        "http://core.test",
        token_file=TokenFile(tmp_path / "token"),
        transport=httpx.MockTransport(handler),
    )
    async with client:
        await client.get("/api/a")
        mount.write({"token": "t2"})
        await client.post("/api/b", json={})
    assert seen == [
        ("http://core.test/api/a", "Bearer t1"),
        ("http://core.test/api/b", "Bearer t2"),
    ]


async def test_a_401_during_rotation_is_retried_with_the_new_token(tmp_path: Path) -> None:
    mount = KubeletMount(tmp_path)
    mount.write({"token": "old"})
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        if request.headers["Authorization"] == "Bearer old":
            mount.write({"token": "new"})  # rotated just as the request went out
            return httpx.Response(401)
        return httpx.Response(200)

    async with CoreClient(
        "http://core.test",
        token_file=TokenFile(tmp_path / "token"),
        transport=httpx.MockTransport(handler),
    ) as client:
        assert (await client.get("/x")).status_code == 200
    assert seen == ["Bearer old", "Bearer new"]


async def test_a_401_with_the_same_token_is_not_retried(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t")
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(401)

    async with CoreClient(
        "http://core.test",
        token_file=TokenFile(tmp_path / "token"),
        transport=httpx.MockTransport(handler),
    ) as client:
        assert (await client.get("/x")).status_code == 401
    assert len(calls) == 1


def test_token_auth_works_with_sync_clients(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("sync-token")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=request.headers["Authorization"])

    with httpx.Client(
        auth=TokenAuth(TokenFile(tmp_path / "token")), transport=httpx.MockTransport(handler)
    ) as client:
        assert client.get("http://core.test/").text == "Bearer sync-token"


async def test_core_client_does_not_follow_redirects(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t")
    hosts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        return httpx.Response(302, headers={"Location": "http://evil.test/steal"})

    async with CoreClient(
        "http://core.test",
        token_file=TokenFile(tmp_path / "token"),
        transport=httpx.MockTransport(handler),
    ) as client:
        assert (await client.get("/x")).status_code == 302
    assert hosts == ["core.test"]


async def test_heartbeat(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t")
    bodies: list[tuple[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append((str(request.url), json.loads(request.content)))
        return httpx.Response(200, json={"health": "healthy"})

    env = {
        "VIVIFIED_CORE_URL": "http://core.test",
        "PLUGIN_TOKEN_FILE": str(tmp_path / "token"),
        "VIVIFIED_HEARTBEAT_URL": "http://vivified-core.test:8080/v1/heartbeat",
    }
    async with CoreClient.from_env(env, transport=httpx.MockTransport(handler)) as client:
        await client.heartbeat("degraded", metrics={"queue": 3}, message="slow disk")
    assert bodies == [
        (
            "http://vivified-core.test:8080/v1/heartbeat",
            {"status": "degraded", "metrics": {"queue": 3}, "message": "slow disk"},
        )
    ]
    async with CoreClient("http://core.test", token_file=TokenFile(tmp_path / "token")) as bare:
        with pytest.raises(RuntimeError, match="VIVIFIED_HEARTBEAT_URL"):
            await bare.heartbeat()


def test_core_client_needs_a_core_url() -> None:
    with pytest.raises(RuntimeError, match="VIVIFIED_CORE_URL"):
        CoreClient.from_env({})
