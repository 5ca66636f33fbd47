"""The event lane's plugin side: ``publish`` and the ``EventReceiver`` (call token first, then
the event, once per (source, id))."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from sdk_support import NOW, Signer
from vivified_sdk import (
    CallVerifier,
    CoreClient,
    EventReceiver,
    PublishRefused,
    SeenEvents,
    StaticJwks,
    TokenFile,
    contract,
    publish,
)

CORE = "vivified-core"
EVENT = {
    "specversion": "1.0",
    "id": "1",
    "type": "UserCreated",
    "source": contract.EVENT_SOURCE_PREFIX + "user-management",
    "data": {"user_id": "u1"},
}


def delivery_token(
    signer: Signer,
    *,
    caller: str = "user-management",
    target: str = "accounting",
    operation: str = contract.EVENT_DELIVERY_OPERATION,
) -> str:
    """A call token shaped like the core's (``vivified.tokens.mint_call_token``)."""
    claims = signer.claims(
        caller,
        iss=CORE,
        aud=target,
        type=contract.CALL_TOKEN_TYPE,
        caller=caller,
        operation=operation,
        act={"sub": CORE},
        data_classification=None,
        version=None,
    )
    del claims["plugin_id"]
    return jwt.encode(claims, signer.key, algorithm="ES256", headers={"kid": signer.kid})


def receiver_for(signer: Signer, handler: Any, seen: SeenEvents | None = None) -> EventReceiver:
    verifier = CallVerifier(
        StaticJwks(signer.jwks()), plugin_id="accounting", issuer=CORE, clock=lambda: NOW
    )  # the tokens are minted at NOW (sdk_support), however long the suite has run
    return EventReceiver(verifier, handler, seen)


async def _post(app: Any, body: bytes, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://p") as client:
        return await client.post("/events", content=body, headers=headers)


async def test_asgi_receiver_verifies_handles_once_and_refuses_why(signer: Signer) -> None:
    got: list[dict[str, Any]] = []
    app = receiver_for(signer, got.append, SeenEvents(size=2)).asgi()
    good = delivery_token(signer)
    body = json.dumps(EVENT).encode()
    assert (await _post(app, body, good)).status_code == 204
    assert (await _post(app, body, good)).status_code == 204
    assert got == [EVENT]  # the redelivered duplicate is not handled twice

    async def reason(raw: bytes, token: str | None) -> tuple[int, str]:
        reply = await _post(app, raw, token)
        return reply.status_code, reply.json()["reason"]

    assert await reason(b"{}", None) == (401, "unauthenticated")
    assert await reason(b"{}", Signer().mint("user-management")) == (401, "token_invalid")
    assert await reason(b"{}", signer.mint("user-management")) == (401, "token_invalid")
    assert await reason(b"{}", delivery_token(signer, target="billing")) == (401, "token_invalid")
    # A call token the core minted for an operator-lane call cannot post events.
    assert await reason(b"{}", delivery_token(signer, operation="events")) == (
        401,
        "not_a_delivery",
    )
    assert await reason(b"{x", good) == (400, "malformed_json")
    assert await reason(b"{}", good) == (400, "not_a_cloudevent")
    spoofed = json.dumps({**EVENT, "id": "2", "source": "vivified://plugins/hr"}).encode()
    assert await reason(spoofed, good) == (403, "source_mismatch")
    assert len(got) == 1
    answer = await _post(app, b"", good)
    assert answer.status_code == 400


async def test_a_failing_handler_answers_500_so_the_core_retries(signer: Signer) -> None:
    def boom(_: dict[str, Any]) -> None:
        raise RuntimeError("db down")

    receiver = receiver_for(signer, boom)
    status, body = await receiver.receive(
        {"Authorization": f"Bearer {delivery_token(signer)}"}, json.dumps(EVENT).encode()
    )
    assert (status, body["reason"]) == (500, "handler_failed")
    assert not receiver.seen.seen(EVENT)


async def test_an_async_handler_is_awaited(signer: Signer) -> None:
    got: list[str] = []

    async def handler(event: dict[str, Any]) -> None:
        got.append(event["id"])

    receiver = receiver_for(signer, handler)
    headers = {"authorization": f"bearer {delivery_token(signer)}"}
    assert (await receiver.receive(headers, json.dumps(EVENT).encode()))[0] == 204
    assert got == ["1"]


async def test_publish_posts_a_cloudevent_and_returns_the_stored_id(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("plugin-token")
    seen: list[httpx.Request] = []

    def core(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = json.loads(request.content)
        if body["type"] == "Nope":
            return httpx.Response(
                403,
                json={"reason": "type_not_declared", "detail": "declare it"},
                headers={"Content-Type": "application/problem+json"},
            )
        return httpx.Response(201, json={"id": body["id"]})

    async with CoreClient(
        "http://core.test",
        token_file=TokenFile(tmp_path / "token"),
        transport=httpx.MockTransport(core),
    ) as client:
        event_id = await publish(
            client,
            "UserCreated",
            {"user_id": "u1"},
            event_id="e-1",
            subject="u1",
            extensions={"id": "overridden?", "traceparent": "00-abc"},
        )
        with pytest.raises(PublishRefused) as refused:
            await publish(client, "Nope", {})
    assert event_id == "e-1"
    assert refused.value.status == 403
    assert refused.value.reason == "type_not_declared"
    request = seen[0]
    assert request.url.path == contract.CORE_EVENTS_PATH
    assert request.headers["Content-Type"] == contract.CLOUDEVENTS_CONTENT_TYPE
    assert request.headers["Authorization"] == "Bearer plugin-token"
    sent = json.loads(request.content)
    assert sent == {
        "specversion": "1.0",
        "id": "e-1",  # an extension cannot override the core attributes
        "type": "UserCreated",
        "data": {"user_id": "u1"},
        "subject": "u1",
        "traceparent": "00-abc",
    }
    assert "source" not in sent  # the core sets it
