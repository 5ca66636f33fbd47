"""``POST /v1/events``: authenticate, decide (pure), audit, store in JetStream, then 201.

The publisher is authenticated like on every lane (``ctx.authenticator``: signature, expiry,
revocation, plugin Active); the decision is ``vivified.policy.events``; the single audit call
site records it before anything is stored, so a refusal and an acceptance are both on the
trail, and an audit outage refuses with 503 (fail closed) when the plugin's level needs it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from typing import TYPE_CHECKING

from aiohttp import web
from nats.errors import Error as NatsError
from nats.js.errors import Error as JsError

from vivified.audit.hook import AuditEntry, AuditUnavailable
from vivified.dataplane.auth import AuthFailure, Caller
from vivified.dataplane.events import names
from vivified.dataplane.events.delivery import SUBJECT_HEADER
from vivified.dataplane.events.metrics import LANE
from vivified.dataplane.problem import problem
from vivified.policy.events import EventDecision, decide_publish, parse_body
from vivified_sdk import contract

if TYPE_CHECKING:
    from vivified.dataplane.events.lane import EventLane

log = logging.getLogger(__name__)
_CONTENT_TYPES = (contract.CLOUDEVENTS_CONTENT_TYPE, "application/json")


async def _read_limited(request: web.Request, limit: int) -> bytes:
    """The body, or its first ``limit + 1`` bytes (enough to refuse it as too large)."""
    if request.content_length is not None:  # checked against the limit already: one read
        try:
            return await request.content.readexactly(request.content_length)
        except asyncio.IncompleteReadError as short:  # the client hung up: what came
            return short.partial
    body = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            break
    return bytes(body)


async def handle_publish(lane: EventLane, request: web.Request) -> web.Response:
    started = time.perf_counter()
    response, reason = await _handle(lane, request)
    status = response.status
    outcome = "allowed" if status < 300 else "error" if status >= 500 else "refused"
    lane.ctx.metrics.requests.inc(LANE, outcome, reason)
    lane.ctx.metrics.latency.observe(time.perf_counter() - started, LANE, outcome)
    return response


Answer = tuple[web.Response, str]
"""The response and its reason (the metrics label)."""


async def _handle(lane: EventLane, request: web.Request) -> Answer:
    try:
        caller = lane.ctx.authenticator.authenticate(request.headers)
    except AuthFailure as failure:
        decision = EventDecision(False, failure.reason, failure.detail, failure.status)
        return await _finish(lane, None, decision)
    if request.content_type not in _CONTENT_TYPES:
        decision = EventDecision(
            False,
            "unsupported_media_type",
            "send a CloudEvents structured JSON body as " + contract.CLOUDEVENTS_CONTENT_TYPE,
            415,
        )
        return await _finish(lane, caller, decision)
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
                caller.record, decision.event, lane.registry, lane.ctx.clock()
            )
    return await _finish(lane, caller, decision)


async def _finish(lane: EventLane, caller: Caller | None, decision: EventDecision) -> Answer:
    ctx = lane.ctx
    event = decision.event
    type_name = str(event.get("type", "")) if event else ""
    record = caller.record if caller is not None else None
    entry = AuditEntry(
        action="event.publish",
        agent=caller.plugin_id if caller is not None else "anonymous",
        outcome="allowed" if decision.allowed else "refused",
        reason="" if decision.allowed else decision.reason,
        entity={"event_type": type_name[:128], "event_id": str(event.get("id", ""))[:256]}
        if event
        else {},
        details={"status": decision.status},
        audit_level=record.manifest.compliance.audit_level if record else "basic",
        audit_required=bool(record and "audit_required" in record.manifest.traits),
    )
    try:
        await ctx.auditor.record(entry)
    except AuditUnavailable:
        ctx.metrics.decisions.inc(LANE, "error", "audit_unavailable")
        reply = problem(503, "audit_unavailable", "the audit trail cannot record this; retry")
        return reply, "audit_unavailable"
    outcome = "allowed" if decision.allowed else "refused"
    ctx.metrics.decisions.inc(LANE, outcome, decision.reason)
    label = type_name if lane.registry.get(type_name) is not None else "-"
    lane.metrics.published.inc(label, decision.reason)
    if not decision.allowed or event is None or caller is None:
        challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        headers = challenge if decision.status == 401 else {}
        reply = problem(decision.status, decision.reason, decision.message, headers=headers)
        return reply, decision.reason
    if not lane.ready:
        reply = problem(503, "engine_unavailable", "the event store is not connected yet; retry")
        return reply, "engine_unavailable"
    payload = json.dumps(event, separators=(",", ":")).encode()
    headers = {"Nats-Msg-Id": names.msg_id(caller.plugin_id, str(event["id"]))}
    subject = event.get("subject")
    if isinstance(subject, str):  # the ordering key of concurrent deliveries (a digest:
        # a header value must not carry what the body may, e.g. a line break)
        headers[SUBJECT_HEADER] = hashlib.blake2b(subject.encode(), digest_size=12).hexdigest()
    try:
        ack = await lane.js.publish(
            names.subject(type_name),
            payload,
            timeout=5.0,
            stream=lane.settings.stream,
            headers=headers,
        )
    except (NatsError, JsError, TimeoutError) as exc:
        log.warning("event not stored (%s): %s", type_name, type(exc).__name__)
        reply = problem(503, "engine_unavailable", "the event store did not confirm; retry")
        return reply, "engine_unavailable"
    body = {"id": event["id"], "type": type_name, "source": event["source"]}
    if ack.duplicate:
        return web.json_response({**body, "duplicate": True}, status=200), "duplicate"
    return web.json_response(body, status=201), decision.reason
