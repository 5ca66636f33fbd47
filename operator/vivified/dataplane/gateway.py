"""The operator lane: ``{METHOD} /v1/invoke/{target}/{operation}[/{rest}]``.

One request, in order: authenticate the caller (``auth``), parse the path from the *raw*
request target (never a normalised one: ``..`` and ``%2F`` must be seen to be refused), ask
``vivified.policy.invoke.decide_invoke``, fill the operation's path template, record the
decision (the lane's single ``auditor.record`` call site), then forward (``forward``) with a
call token minted for the target. A refusal at any step answers problem+json with its
``reason``, counts it in ``vivified_core_decisions_total`` and never reaches the target.

The decision is recorded *before* forwarding (that is how ``complete`` fails closed); at
``detailed`` and ``complete`` an ``invoke.result`` record follows with what only the exchange
knows: status, sizes, duration and, at ``complete``, the bodies' SHA-256. It is queued
``after_answer``: the answer does not wait for a second round trip to the trail.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field

from aiohttp import web

from vivified.audit.hook import AuditEntry, AuditUnavailable
from vivified.dataplane.auth import AuthFailure, Caller
from vivified.dataplane.call_tokens import CallTokenCache
from vivified.dataplane.context import CONTEXT, CoreContext
from vivified.dataplane.directory import PluginRecord
from vivified.dataplane.forward import Forwarder, ForwardFailure, Tally
from vivified.dataplane.problem import problem
from vivified.manifest import AUDIT_LEVELS
from vivified.policy.invoke import InvokeDecision, PathRefused, decide_invoke, fill_path
from vivified_sdk import contract

__all__ = ["INVOKE_PREFIX", "LANE", "setup"]

logger = logging.getLogger(__name__)

LANE = "invoke"
INVOKE_PREFIX = contract.CORE_INVOKE_PATH + "/"
_PLUGIN_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_OPERATION = re.compile(r"[A-Za-z0-9_-]{1,64}")
FORWARDER: web.AppKey[Forwarder] = web.AppKey("vivified_invoke_forwarder", Forwarder)
CALL_TOKENS: web.AppKey[CallTokenCache] = web.AppKey("vivified_call_tokens", CallTokenCache)


@dataclass
class _Call:
    """What is known about one call so far (for the audit entry and the metrics)."""

    caller: Caller | None = None
    target_id: str = ""
    operation: str = ""
    target: PluginRecord | None = None
    path: str = ""
    #: The refusal's reason, once there is one (metrics label).
    reason: str = ""
    details: dict[str, object] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)


def _parse(raw_path: str) -> tuple[str, str, str, str]:
    """``(target, operation, rest, query)`` from the raw request target. Raises PathRefused."""
    path, _, query = raw_path.partition("?")
    if "#" in raw_path:
        raise PathRefused("invalid_path", "fragments are refused")
    tail = path[len(INVOKE_PREFIX) :]
    target, _, after = tail.partition("/")
    operation, slash, rest = after.partition("/")
    if not _PLUGIN_ID.fullmatch(target):
        raise PathRefused("invalid_path", "the target is not a plugin id")
    if not _OPERATION.fullmatch(operation):
        raise PathRefused("invalid_path", "the operation is not an operation name")
    return target, operation, slash + rest, query


def _audit_terms(call: _Call) -> tuple[str, bool]:
    """How a decision is audited: the stricter of caller and target. A call touches both
    plugins' data, so a basic caller cannot lower what a ``complete`` (PHI) target requires,
    nor the reverse; an unauthenticated request is audited at ``basic``."""
    manifests = [
        p.manifest
        for p in (call.caller.record if call.caller is not None else None, call.target)
        if p is not None
    ]
    levels = [m.compliance.audit_level for m in manifests] or ["basic"]
    level = max(levels, key=AUDIT_LEVELS.index)
    return level, any("audit_required" in m.traits for m in manifests)


async def _decided(ctx: CoreContext, call: _Call, decision: InvokeDecision) -> web.Response | None:
    """Record the decision once (audit + metrics). None = go on and forward."""
    agent = call.caller.plugin_id if call.caller is not None else "anonymous"
    level, required = _audit_terms(call)
    entry = AuditEntry(
        action="invoke",
        agent=agent,
        outcome="allowed" if decision.allowed else "refused",
        reason="" if decision.allowed else decision.reason,
        entity={"target": call.target_id, "operation": call.operation},
        details=dict(call.details),
        audit_level=level,
        audit_required=required,
    )
    try:
        await ctx.auditor.record(entry)
    except AuditUnavailable:
        ctx.metrics.decisions.inc(LANE, "error", "audit_unavailable")
        call.reason = "audit_unavailable"
        return problem(503, "audit_unavailable", "the audit trail cannot take this call")
    outcome = "allowed" if decision.allowed else "refused"
    ctx.metrics.decisions.inc(LANE, outcome, decision.reason)
    if decision.allowed:
        return None
    call.reason = decision.reason
    if decision.status >= 500:
        logger.info("invoke %s→%s refused: %s", agent, call.target_id, decision.reason)
    headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if decision.status == 401 else {}
    return problem(decision.status, decision.reason, decision.message, headers=headers)


async def _refuse(ctx: CoreContext, call: _Call, decision: InvokeDecision) -> web.Response:
    response = await _decided(ctx, call, decision)
    if response is None:  # a refusal always answers; kept explicit for the type checker
        raise RuntimeError("a refusal produced no response")
    return response


async def _handle(request: web.Request, ctx: CoreContext, call: _Call) -> web.StreamResponse:
    call.details["method"] = request.method
    # Request headers go to the record builder, which keeps only its allowlist (no credential).
    call.details["headers"] = request.headers
    if request.content_length is not None:
        call.details["request_bytes"] = request.content_length
    try:
        call.caller = ctx.authenticator.authenticate(request.headers)
    except AuthFailure as failure:
        return await _refuse(
            ctx, call, InvokeDecision.refuse(failure.status, failure.reason, failure.detail)
        )
    try:
        call.target_id, call.operation, rest, query = _parse(request.raw_path)
    except PathRefused as bad:
        return await _refuse(ctx, call, InvokeDecision.refuse(400, bad.reason, bad.message))
    call.target = ctx.directory.get(call.target_id)
    decision = decide_invoke(
        call.caller.record,
        call.target_id,
        call.target,
        call.operation,
        ctx.settings.dangerous_operations,
    )
    if decision.allowed and call.target is not None:
        try:
            call.path = fill_path(call.target.manifest.endpoints[call.operation], rest, query)
        except PathRefused as bad:
            decision = InvokeDecision.refuse(400, bad.reason, bad.message)
    refused = await _decided(ctx, call, decision)
    if refused is not None:
        return refused
    if call.target is None:  # decide_invoke allows only known targets
        raise RuntimeError("allowed call without a target")
    key = ctx.trust.core_key
    call_token = request.app[CALL_TOKENS].token(
        key.private_key,
        key.kid,
        caller=call.caller.plugin_id,
        caller_traits=tuple(call.caller.record.manifest.traits),
        target=call.target_id,
        operation=call.operation,
        now=ctx.clock(),
    )
    level, required = _audit_terms(call)
    detailed = AUDIT_LEVELS.index(level) >= AUDIT_LEVELS.index("detailed")
    tally = Tally(digests=level == "complete") if detailed else None
    response: web.StreamResponse
    try:
        response = await request.app[FORWARDER].forward(
            request,
            call.target,
            call.path,
            call_token=call_token,
            caller=call.caller.plugin_id,
            operation=call.operation,
            tally=tally,
        )
    except ForwardFailure as failure:
        logger.info(
            "invoke %s→%s failed upstream: %s",
            call.caller.plugin_id,
            call.target_id,
            failure.reason,
        )
        call.reason = failure.reason
        response = problem(failure.status, failure.reason, failure.message)
    if tally is not None:
        await _result(ctx, call, response.status, tally, (level, required))
    return response


async def _result(
    ctx: CoreContext, call: _Call, status: int, tally: Tally, terms: tuple[str, bool]
) -> None:
    """The ``invoke.result`` record, queued without waiting for the sink (``after_answer``):
    the decision is stored already and an outage cannot refuse the answer any more."""
    entry = AuditEntry(
        action="invoke.result",
        agent=call.caller.plugin_id if call.caller is not None else "anonymous",
        outcome="error" if call.reason else "allowed",
        reason=call.reason,
        entity={"target": call.target_id, "operation": call.operation},
        details={
            "method": call.details.get("method", ""),
            "status": status,
            "duration_ms": round((time.perf_counter() - call.started) * 1000, 3),
            **tally.details(),
        },
        audit_level=terms[0],
        audit_required=terms[1],
        after_answer=True,
    )
    try:
        await ctx.auditor.record(entry)
    except AuditUnavailable as exc:
        logger.warning("invoke.result of %s→%s not recorded: %s", entry.agent, call.target_id, exc)


async def invoke(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    started = time.perf_counter()
    call = _Call()
    response = await _handle(request, ctx, call)
    outcome = "allowed" if not call.reason else "error" if response.status >= 500 else "refused"
    ctx.metrics.requests.inc(LANE, outcome, call.reason)
    ctx.metrics.latency.observe(time.perf_counter() - started, LANE, outcome)
    return response


async def _close_forwarder(app: web.Application) -> None:
    await app[FORWARDER].close()


def setup(app: web.Application, ctx: CoreContext) -> None:
    app[FORWARDER] = Forwarder(ctx.settings)
    app[CALL_TOKENS] = CallTokenCache(
        issuer=ctx.settings.call_token_issuer, ttl_seconds=ctx.settings.call_token_ttl_seconds
    )
    app.on_cleanup.append(_close_forwarder)
    app.router.add_route("*", INVOKE_PREFIX + "{tail:.*}", invoke)
