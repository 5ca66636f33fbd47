"""The SDK's event receiver: token first, then the event, once per (source, id)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from vivified.sdk.events import EventReceiver, SeenEvents
from vivified.tokens import TokenInvalid


class Verifier:
    def verify(self, token: str) -> object:
        if token != "good":
            raise TokenInvalid("bad signature")
        return token


EVENT = {"specversion": "1.0", "id": "1", "type": "UserCreated", "source": "vivified://plugins/x"}


async def _post(app: Any, body: bytes, token: str | None = "good") -> httpx.Response:  # noqa: S107
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://p") as client:
        return await client.post("/events", content=body, headers=headers)


async def test_asgi_receiver_verifies_handles_once_and_refuses_why() -> None:
    got: list[dict[str, Any]] = []
    app = EventReceiver(Verifier(), got.append, SeenEvents(size=2)).asgi()
    assert (await _post(app, json.dumps(EVENT).encode())).status_code == 204
    assert (await _post(app, json.dumps(EVENT).encode())).status_code == 204
    assert len(got) == 1  # the redelivered duplicate is not handled twice
    assert (await _post(app, b"{}", token=None)).json()["reason"] == "unauthenticated"
    assert (await _post(app, b"{}", token="forged")).json()["reason"] == "token_invalid"
    assert (await _post(app, b"{x")).json()["reason"] == "malformed_json"
    assert (await _post(app, b"{}")).json()["reason"] == "not_a_cloudevent"


async def test_a_failing_handler_answers_500_so_the_core_retries() -> None:
    def boom(_: dict[str, Any]) -> None:
        raise RuntimeError("db down")

    receiver = EventReceiver(Verifier(), boom)
    status, body = await receiver.receive(
        {"Authorization": "Bearer good"}, json.dumps(EVENT).encode()
    )
    assert (status, body["reason"]) == (500, "handler_failed")
    assert not receiver.seen.seen(EVENT)
