"""``POST /v1/events``: authenticate, decide (pure), audit, store in JetStream, then 201."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from aiohttp import web
from nats.errors import Error as NatsError
from nats.js.errors import Error as JsError

from vivified.audit.hook import AuditEntry, AuditUnavailable
from vivified.dataplane.events import names
from vivified.dataplane.events.problem import problem
from vivified.dataplane.events.tokens import TokenInvalid
from vivified.policy.events import EventDecision, decide_publish, parse_body

if TYPE_CHECKING:
    from vivified.dataplane.events.lane import EventLane

log = logging.getLogger(__name__)
_CONTENT_TYPES = ("application/cloudevents+json", "application/json")


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def _read_limited(request: web.Request, limit: int) -> bytes:
    """The body, or its first ``limit + 1`` bytes (enough to refuse it as too large)."""
    body = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            break
    return bytes(body)


async def handle_publish(lane: EventLane, request: web.Request) -> web.Response:
    token = bearer(request)
    if token is None:
        return problem(401, "unauthenticated", "send 'Authorization: Bearer <plugin token>'")
    try:
        verified = lane.deps.authenticator.verify(token)
    except TokenInvalid as exc:
        return problem(401, "token_invalid", f"the plugin token was refused: {exc}")
    publisher_id = verified.plugin_id
    if request.content_type not in _CONTENT_TYPES:
        return problem(
            415,
            "unsupported_media_type",
            "send a CloudEvents structured JSON body as application/cloudevents+json",
        )
    limit = lane.settings.max_event_bytes
    if request.content_length is not None and request.content_length > limit:
        decision = EventDecision(
            False,
            "event_too_large",
            f"the event is {request.content_length} bytes; the limit is {limit}",
            413,
        )
    else:
        decision = parse_body(await _read_limited(request, limit), limit)
        if decision.allowed and decision.event is not None:
            decision = decide_publish(
                lane.deps.directory.get(publisher_id),
                decision.event,
                lane.registry,
                lane.deps.clock(),
            )
    return await _finish(lane, publisher_id, decision)


async def _finish(lane: EventLane, publisher_id: str, decision: EventDecision) -> web.Response:
    event = decision.event
    type_name = str(event.get("type", "")) if event else ""
    record = lane.deps.directory.get(publisher_id)
    entry = AuditEntry(
        action="event.publish",
        agent=publisher_id,
        outcome="allowed" if decision.allowed else "refused",
        reason=decision.reason,
        entity={"event_type": type_name[:128], "event_id": str(event.get("id", ""))[:256]}
        if event
        else {},
        details={"status": decision.status},
        audit_level=record.manifest.compliance.audit_level if record else "basic",
        audit_required=bool(record and "audit_required" in record.manifest.traits),
    )
    try:
        await lane.deps.auditor.record(entry)
    except AuditUnavailable:
        return problem(503, "audit_unavailable", "the audit trail cannot record this; retry")
    lane.metrics.published[(type_name[:128] or "-", decision.reason)] += 1
    if not decision.allowed or event is None:
        return problem(decision.status, decision.reason, decision.message)
    payload = json.dumps(event, separators=(",", ":")).encode()
    try:
        ack = await lane.js.publish(
            names.subject(type_name),
            payload,
            timeout=5.0,
            stream=lane.settings.stream,
            headers={"Nats-Msg-Id": names.msg_id(publisher_id, str(event["id"]))},
        )
    except (NatsError, JsError, TimeoutError) as exc:
        log.warning("event not stored (%s): %s", type_name, type(exc).__name__)
        return problem(503, "engine_unavailable", "the event store did not confirm; retry")
    body = {"id": event["id"], "type": type_name, "source": event["source"]}
    if ack.duplicate:
        return web.json_response({**body, "duplicate": True}, status=200)
    return web.json_response(body, status=201)
