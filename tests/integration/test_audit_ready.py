"""A core's readiness waits for its audit trail (issue 13, found by the core-kill scenario's
reading): a replica restarts with its sink still connecting, so its auditor starts in an
outage and refuses ``audit_required`` requests (503 ``audit_unavailable``) until its probe
finds the sink. Ready before that, it was sent requests no fault explains."""

from __future__ import annotations

import asyncio

from nats_support import NatsServer
from vivified.audit import AuditEntry
from vivified.dataplane.audit.auditor import ChainAuditor
from vivified.dataplane.audit.jetstream import JetStreamSink, StreamSettings


def required(n: int) -> AuditEntry:
    return AuditEntry(
        action="invoke", agent="caller", outcome="allowed", entity={"n": str(n)},
        audit_required=True,
    )  # fmt: skip


async def test_ready_only_once_a_required_record_is_accepted(nats_server: NatsServer) -> None:
    await asyncio.to_thread(nats_server.stop)
    sink = await JetStreamSink.open(StreamSettings(url=nats_server.url), wait=False)
    auditor = ChainAuditor(sink, "core-0", retry_seconds=0.3)
    await auditor.start()
    try:
        assert not auditor.ready_for_traffic()
        await asyncio.to_thread(nats_server.start)
        for _ in range(400):
            if auditor.ready_for_traffic():
                break
            await asyncio.sleep(0.01)
        assert auditor.ready_for_traffic()
        await auditor.record(required(1))  # ready means this is stored, not refused
        await asyncio.to_thread(nats_server.stop)
        await asyncio.sleep(0.5)
        assert auditor.ready_for_traffic(), "a later outage does not flip readiness"
    finally:
        await auditor.close()


async def test_ready_after_the_grace_when_the_trail_stays_down(nats_server: NatsServer) -> None:
    await asyncio.to_thread(nats_server.stop)
    sink = await JetStreamSink.open(StreamSettings(url=nats_server.url), wait=False)
    auditor = ChainAuditor(sink, "core-0", ready_grace_seconds=0.5)
    await auditor.start()
    try:
        assert not auditor.ready_for_traffic()
        await asyncio.sleep(0.6)
        assert auditor.ready_for_traffic()
    finally:
        await auditor.close()
