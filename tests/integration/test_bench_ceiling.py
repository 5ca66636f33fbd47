"""bench/ceiling, the Go instrument behind `bench/gateway.py --ceiling`, measures what it claims.

Its throughput share is only meaningful if it does the per-call work it says it does: it
forwards the one operation's path, mints a fresh ES256 call token per call (so the target
never sees the caller's token), and refuses other tokens and paths. Built with the machine's
Go, run against a real target server on loopback.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from threading import Thread
from typing import Any

import httpx
import pytest
from aiohttp import web

REPO = Path(__file__).resolve().parents[2]
CALLER_TOKEN = "caller.token.value"

pytestmark = pytest.mark.skipif(shutil.which("go") is None, reason="needs Go (the VM has it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def claims_of(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")

    def decode(part: str) -> dict[str, Any]:
        return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))

    return decode(header), decode(payload)


@pytest.fixture(scope="module")
def target() -> Iterator[tuple[int, list[dict[str, str]]]]:
    """A target that records the path and Authorization of every request it is sent."""
    seen: list[dict[str, str]] = []
    port = free_port()

    async def user(request: web.Request) -> web.Response:
        seen.append(
            {"path": request.path, "authorization": request.headers.get("Authorization", "")}
        )
        return web.json_response({"id": request.match_info["id"]})

    app = web.Application()
    app.router.add_get("/api/users/{id}", user)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield port, seen
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@pytest.fixture(scope="module")
def ceiling(
    target: tuple[int, list[dict[str, str]]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    binary = tmp_path_factory.mktemp("ceiling") / "ceiling"
    subprocess.run(
        ["go", "build", "-o", str(binary), "."], cwd=REPO / "bench" / "ceiling", check=True
    )
    port = free_port()
    process = subprocess.Popen(
        [
            str(binary),
            "-listen",
            f"127.0.0.1:{port}",
            "-target",
            f"127.0.0.1:{target[0]}",
            "-token",
            CALLER_TOKEN,
        ]
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_call_is_forwarded_with_a_fresh_es256_call_token_not_the_callers(
    ceiling: str, target: tuple[int, list[dict[str, str]]]
) -> None:
    _, seen = target
    seen.clear()
    auth = {"Authorization": f"Bearer {CALLER_TOKEN}"}
    answers = [httpx.get(f"{ceiling}/v1/invoke/b/user_info/{i}", headers=auth) for i in (1, 2)]
    assert [a.status_code for a in answers] == [200, 200]
    assert [a.json() for a in answers] == [{"id": "1"}, {"id": "2"}]
    assert [s["path"] for s in seen] == ["/api/users/1", "/api/users/2"]
    tokens = [s["authorization"].removeprefix("Bearer ") for s in seen]
    assert CALLER_TOKEN not in tokens
    (header, first), (_, second) = claims_of(tokens[0]), claims_of(tokens[1])
    assert header["alg"] == "ES256"
    assert (first["aud"], first["caller"], first["type"]) == ("b", "a", "call")
    assert first["jti"] != second["jti"], "one call token per call"
    assert len(base64.urlsafe_b64decode(tokens[0].split(".")[2] + "==")) == 64


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/v1/invoke/b/user_info/1", {}, 401),
        ("/v1/invoke/b/user_info/1", {"Authorization": "Bearer someone.else.token"}, 401),
        ("/v1/invoke/b/other_op/1", {"Authorization": f"Bearer {CALLER_TOKEN}"}, 404),
        ("/v1/invoke/b/user_info/1/more", {"Authorization": f"Bearer {CALLER_TOKEN}"}, 404),
    ],
    ids=["no token", "another token", "another operation", "a second path segment"],
)
def test_anything_else_is_refused_and_never_reaches_the_target(
    ceiling: str,
    target: tuple[int, list[dict[str, str]]],
    path: str,
    headers: dict[str, str],
    status: int,
) -> None:
    _, seen = target
    seen.clear()
    assert httpx.get(ceiling + path, headers=headers).status_code == status
    assert seen == []
