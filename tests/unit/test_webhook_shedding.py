"""Load shedding of the admission webhook (shell/webhook.py ``SheddingWebhookServer``): over
its in-flight limit a review is answered 429 at once with a reason; under it, never.

The server is the operator's own, over HTTPS on loopback; the overload case parks reviews on a
gate instead of timing anything, so the limit is reached exactly.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.chaos import webhook_load as wl
from tests.cluster_support import self_signed_certificate

from vivified.settings import SettingsError
from vivified.shell.webhook import (
    OVERLOADED_CODE,
    SheddingWebhookServer,
    WebhookSettings,
    overloaded_status,
    webhook_server,
)


def server_for(directory: Path, limit: int) -> SheddingWebhookServer:
    cert, key = directory / "tls.crt", directory / "tls.key"
    return SheddingWebhookServer(
        max_in_flight=limit, addr="127.0.0.1", port=0, certfile=str(cert), pkeyfile=str(key)
    )


@pytest.fixture
async def session(tmp_path: Path) -> AsyncIterator[aiohttp.ClientSession]:
    """A client trusting the serving certificate made in TMP_PATH (its own CA)."""
    cert, _ = self_signed_certificate(tmp_path)
    context = wl.client_context(cert)
    # force_close: one connection per request, so concurrent requests really are concurrent.
    connector = aiohttp.TCPConnector(ssl=context, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as s:
        yield s


async def post(session: aiohttp.ClientSession, url: str, body: bytes) -> tuple[int, Any, str]:
    async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
        return r.status, json.loads(await r.read()), r.headers.get("Retry-After", "")


class Gate:
    """A webhook function that parks every review until released (a slow handler)."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.arrived = 0
        self.all_arrived = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, request: Any, **kwargs: Any) -> dict[str, Any]:
        self.arrived += 1
        if self.arrived == self.expected:
            self.all_arrived.set()
        await self.release.wait()
        uid = request["request"]["uid"]
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "response": {"uid": uid, "allowed": True}}  # fmt: skip


async def test_over_the_limit_a_review_gets_429_with_the_reason(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    server = server_for(tmp_path, limit=3)
    gate = Gate(expected=3)
    body = wl.review_bodies(1)[0]
    async with wl.serving(server, gate) as url:
        parked = [asyncio.create_task(post(session, url, body)) for _ in range(3)]
        await gate.all_arrived.wait()
        assert server.in_flight == 3

        status, answer, retry_after = await post(session, url, body)
        assert status == OVERLOADED_CODE == 429
        assert retry_after == "1"
        assert answer["kind"] == "Status"
        assert answer["reason"] == "TooManyRequests"
        assert "limit 3" in answer["message"]
        assert "VIVIFIED_WEBHOOK_MAX_IN_FLIGHT" in answer["message"]

        gate.release.set()
        assert [s for s, _, _ in await asyncio.gather(*parked)] == [200, 200, 200]
        # Back under the limit: served again.
        assert (await post(session, url, body))[0] == 200
    assert (server.served, server.shed, server.in_flight) == (4, 1, 0)


async def test_load_within_the_limit_is_never_shed(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """Two clients, one review at a time each, on a limit of two: every review is decided by
    the real handler (allowed, or denied with its errors), none is shed."""
    server = server_for(tmp_path, limit=2)
    bodies = wl.review_bodies(16)

    async def client() -> list[tuple[int, Any, str]]:
        return [await post(session, url, b) for b in bodies]

    async with wl.serving(server, wl.admission_fn()) as url:
        answers = [a for batch in await asyncio.gather(client(), client()) for a in batch]
    assert {status for status, _, _ in answers} == {200}
    allowed = [answer["response"]["allowed"] for _, answer, _ in answers]
    assert allowed.count(False) == 4  # 2 of 16 bodies are invalid, sent by 2 clients
    denied = next(a for _, a, _ in answers if not a["response"]["allowed"])
    assert denied["response"]["status"]["code"] == 400
    assert (server.served, server.shed) == (32, 0)


async def test_a_burst_is_answered_200_or_429_and_nothing_else(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    server = server_for(tmp_path, limit=4)
    bodies = wl.review_bodies(8)
    async with wl.serving(server, wl.admission_fn()) as url:
        answers = await asyncio.gather(*(post(session, url, bodies[i % 8]) for i in range(120)))
    statuses = [status for status, _, _ in answers]
    assert set(statuses) <= {200, 429}
    assert (server.served, server.shed) == (statuses.count(200), statuses.count(429))
    assert server.in_flight == 0


def test_the_overload_status_says_what_and_what_to_do() -> None:
    status = overloaded_status(in_flight=32, limit=32)
    assert (status["code"], status["reason"], status["status"]) == (429, "TooManyRequests",
                                                                    "Failure")  # fmt: skip
    assert status["message"] == (
        "vivified admission webhook overloaded: 32 reviews in flight (limit 32, "
        "VIVIFIED_WEBHOOK_MAX_IN_FLIGHT); retry in 1s"
    )


def test_the_limit_comes_from_the_settings(tmp_path: Path) -> None:
    self_signed_certificate(tmp_path)
    env = {"VIVIFIED_WEBHOOK_PORT": "9443", "VIVIFIED_WEBHOOK_CERT_DIR": str(tmp_path)}
    assert WebhookSettings.from_env(env).max_in_flight == 32  # the default
    settings = WebhookSettings.from_env({**env, "VIVIFIED_WEBHOOK_MAX_IN_FLIGHT": "5"})
    server = webhook_server(settings)
    assert isinstance(server, SheddingWebhookServer)
    assert server.max_in_flight == 5


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_an_unusable_limit_names_the_variable(value: str) -> None:
    env = {"VIVIFIED_WEBHOOK_MAX_IN_FLIGHT": value}
    with pytest.raises(SettingsError) as caught:
        WebhookSettings.from_env(env)
    assert caught.value.name == "VIVIFIED_WEBHOOK_MAX_IN_FLIGHT"


def test_the_server_refuses_a_limit_below_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SheddingWebhookServer(max_in_flight=0)
