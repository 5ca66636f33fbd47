"""The event lane for plugins: publish CloudEvents through the core, receive deliveries.

Plugins never talk to NATS; they POST to the core (``POST /v1/events``,
:data:`contract.CORE_EVENTS_PATH`) and receive HTTP POSTs at the path their manifest names in
``endpoints.events``. The core sets ``source`` to ``vivified://plugins/<publisher>`` (a body
carrying another ``source`` is refused), adds ``time`` and the type's classification, and
answers only after JetStream stored the event.

Each delivery carries ``Authorization: Bearer <call token>`` minted by the core for this
plugin (``aud`` = this plugin, ``caller`` = the publisher, ``operation`` =
:data:`contract.EVENT_DELIVERY_OPERATION`). :class:`EventReceiver` verifies it with a
:class:`~vivified_sdk.CallVerifier` (the core's JWKS), refuses a token minted for an
operator-lane call (another ``operation``) and an event whose ``source`` is not the caller.

Delivery is **at least once**: the same event can arrive twice (a core restart, a lost
acknowledgement). Make handlers idempotent, keyed on ``(source, id)``: a unique constraint in
the plugin's own store is the durable way; :class:`SeenEvents` is a per-process guard for
handlers that are cheap to repeat anyway. Answer 2xx only after the event is safely handled:
any other answer (or a timeout) is retried with backoff, and after the configured attempts
the event is dead-lettered.

    async with CoreClient.from_env() as core:
        event_id = await publish(core, "UserCreated", {"user_id": "u1", "email": "a@b.c"})

    calls = CallVerifier.from_env(); calls.start()       # the core's JWKS, this plugin's id
    receiver = EventReceiver(calls, on_event)
    status, body = await receiver.receive(request.headers, await request.body())  # FastAPI
    asgi_app = receiver.asgi()                            # a bare ASGI app, any ASGI server

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

from . import contract as c
from ._client import CoreClient
from ._errors import TokenInvalid
from ._invoke import CallIdentity

__all__ = ["EventHandler", "EventReceiver", "PublishRefused", "SeenEvents", "publish"]


class PublishRefused(Exception):  # noqa: N818 - reads as what happened
    """The core refused the event; ``reason`` is its problem+json ``reason``
    (e.g. ``type_not_declared``, ``schema_invalid``, ``source_spoofed``)."""

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
    re-sent id). Re-send with the same ``event_id`` after an error: the core stores it once
    (JetStream's de-duplication window). Raises :class:`PublishRefused` otherwise."""
    body: dict[str, Any] = {
        **(extensions or {}),
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "type": type_name,
        "data": data,
    }
    if subject is not None:
        body["subject"] = subject
    reply = await core.post(
        c.CORE_EVENTS_PATH,
        content=json.dumps(body),
        headers={"Content-Type": c.CLOUDEVENTS_CONTENT_TYPE},
    )
    if reply.status_code in (200, 201):
        return str(reply.json()["id"])
    try:
        problem = reply.json()
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    raise PublishRefused(
        reply.status_code, str(problem.get("reason", "http_error")), str(problem.get("detail", ""))
    )


class CallTokenVerifier(Protocol):
    """:class:`~vivified_sdk.CallVerifier` satisfies this."""

    def verify(self, token: object) -> CallIdentity: ...


EventHandler = Callable[[dict[str, Any]], Awaitable[None] | None]
"""Called once per delivered event (the parsed CloudEvent); raise to have it retried."""


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
    ``(source, id)`` in this process. Answers (status, JSON body):

    * 204 handled (or already handled);
    * 401 ``unauthenticated`` / ``token_invalid`` / ``not_a_delivery`` (a call token minted
      for an operator-lane call, not for a delivery);
    * 400 ``malformed_json`` / ``not_a_cloudevent``; 403 ``source_mismatch`` (the event's
      ``source`` is not the publisher the core vouched for);
    * 500 ``handler_failed`` when the handler raised, so the core retries.
    """

    def __init__(
        self,
        verifier: CallTokenVerifier,
        handler: EventHandler,
        seen: SeenEvents | None = None,
    ) -> None:
        self.verifier = verifier
        self.handler = handler
        self.seen = seen if seen is not None else SeenEvents()

    async def receive(self, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, str]]:
        lowered = {k.lower(): v for k, v in headers.items()}
        scheme, _, token = lowered.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return 401, {"reason": "unauthenticated"}
        try:
            identity = self.verifier.verify(token.strip())
        except TokenInvalid as exc:
            return 401, {"reason": "token_invalid", "detail": exc.reason}
        if identity.operation != c.EVENT_DELIVERY_OPERATION:
            return 401, {"reason": "not_a_delivery", "detail": "not an event-delivery token"}
        try:
            event = json.loads(body)
        except ValueError:
            return 400, {"reason": "malformed_json"}
        if not isinstance(event, dict) or "id" not in event or "type" not in event:
            return 400, {"reason": "not_a_cloudevent"}
        if event.get("source") != c.EVENT_SOURCE_PREFIX + identity.caller:
            return 403, {"reason": "source_mismatch"}
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
        """A bare ASGI app (POST only): serve it at the manifest's ``endpoints.events``."""

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
