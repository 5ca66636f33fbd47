"""The event lane for plugins: publish CloudEvents through the core, receive deliveries.

Plugins never talk to NATS; they POST to the core (``/v1/events``) and receive HTTP POSTs
at ``endpoints.events``. Delivery is **at least once**: the same event can arrive twice (a
core restart, a lost acknowledgement). Make handlers idempotent, keyed on ``(source, id)``:
a unique constraint in the plugin's own store is the durable way; :class:`SeenEvents` is a
per-process guard for handlers that are cheap to repeat anyway. Answer 2xx only after the
event is safely handled: any other answer (or a timeout) is retried with backoff, and after
the configured attempts the event is dead-lettered.

    async with CoreClient.from_env() as core:
        event_id = await publish(core, "UserCreated", {"user_id": "u1", "email": "a@b.c"})

    receiver = EventReceiver(verifier, on_event)       # verifier: .verify(token)
    status, body = await receiver.receive(request.headers, await request.body())  # FastAPI
    asgi_app = receiver.asgi()                         # a bare ASGI app, for any ASGI server

(FastAPI/Starlette: use a ``POST`` route as above; ``app.mount("/events", ...)`` would
redirect the exact path ``/events`` to ``/events/``.)
"""

from __future__ import annotations

import inspect
import json
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from vivified.tokens import TokenInvalid

from .client import CoreClient

__all__ = ["EventReceiver", "PublishRefused", "SeenEvents", "publish"]

EVENTS_PATH = "/v1/events"


class PublishRefused(Exception):  # noqa: N818 - reads as what happened
    """The core refused the event; ``reason`` is its problem+json reason."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(f"{status} {reason}: {detail}")
        self.status = status
        self.reason = reason
        self.detail = detail


async def publish(
    core: CoreClient,
    type_name: str,
    data: Any,
    *,
    event_id: str | None = None,
    subject: str | None = None,
    extensions: Mapping[str, str | int | bool] | None = None,
) -> str:
    """Publish one event; returns its id once the core has stored it (201, or 200 for a
    re-sent id). Re-send with the same ``event_id`` after an error: the core stores it once."""
    body: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "type": type_name,
        "data": data,
        **(extensions or {}),
    }
    if subject is not None:
        body["subject"] = subject
    reply = await core.post(
        EVENTS_PATH,
        content=json.dumps(body),
        headers={"Content-Type": "application/cloudevents+json"},
    )
    if reply.status_code in (200, 201):
        return str(reply.json()["id"])
    try:
        problem = reply.json()
    except ValueError:
        problem = {}
    raise PublishRefused(
        reply.status_code, str(problem.get("reason", "http_error")), str(problem.get("detail", ""))
    )


class CallTokenVerifier(Protocol):
    def verify(self, token: str) -> object: ...


Handler = Callable[[dict[str, Any]], Awaitable[None] | None]


class SeenEvents:
    """The last ``size`` ``(source, id)`` pairs handled by this process (bounded memory)."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()

    def seen(self, event: Mapping[str, Any]) -> bool:
        return (str(event.get("source")), str(event.get("id"))) in self._seen

    def add(self, event: Mapping[str, Any]) -> None:
        self._seen[(str(event.get("source")), str(event.get("id")))] = None
        while len(self._seen) > self.size:
            self._seen.popitem(last=False)


class EventReceiver:
    """Verifies the core's call token, parses the CloudEvent, calls ``handler`` once per
    ``(source, id)`` in this process; 204 when handled, 401 for a bad token, 400 for a body
    that is not an event, 500 when the handler raised (so the core retries)."""

    def __init__(
        self, verifier: CallTokenVerifier, handler: Handler, seen: SeenEvents | None = None
    ) -> None:
        self.verifier = verifier
        self.handler = handler
        self.seen = seen if seen is not None else SeenEvents()

    async def receive(self, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, str]]:
        lowered = {k.lower(): v for k, v in headers.items()}
        scheme, _, token = lowered.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return 401, {"reason": "unauthenticated"}
        try:
            self.verifier.verify(token.strip())
        except TokenInvalid as exc:
            return 401, {"reason": "token_invalid", "detail": str(exc)}
        try:
            event = json.loads(body)
        except ValueError:
            return 400, {"reason": "malformed_json"}
        if not isinstance(event, dict) or "id" not in event or "type" not in event:
            return 400, {"reason": "not_a_cloudevent"}
        if self.seen.seen(event):
            return 204, {}
        try:
            result = self.handler(event)
            if inspect.isawaitable(result):
                await result
        except Exception:  # the core retries; the plugin logs its own error
            return 500, {"reason": "handler_failed"}
        self.seen.add(event)
        return 204, {}

    def asgi(self) -> Callable[..., Awaitable[None]]:
        """A bare ASGI app (POST only): mount it at the manifest's ``endpoints.events``."""

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return
            if scope["method"] != "POST":
                await _respond(send, 405, {"reason": "method_not_allowed"})
                return
            chunks: list[bytes] = []
            more = True
            while more:
                message = await receive()
                chunks.append(message.get("body", b""))
                more = message.get("more_body", False)
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            status, body = await self.receive(headers, b"".join(chunks))
            await _respond(send, status, body)

        return app


async def _respond(send: Any, status: int, body: Mapping[str, str]) -> None:
    payload = json.dumps(body).encode() if body else b""
    headers = [(b"content-type", b"application/json")] if payload else []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
