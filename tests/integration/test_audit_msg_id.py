"""A re-sealed batch over the same sequence range cannot pass for a duplicate (issue 13).

After a timeout the auditor does not know whether its batch landed. If it reads the chain head
before the batch is stored (the server was slow, or the batch sat in the client's reconnect
buffer), it seals a *different* batch over the same range: the refused ``complete`` entry is
gone, new ones are in. Its ``Nats-Msg-Id`` (``writer:first-last``) is the landed batch's, so
had JetStream consulted its duplicate window first, it would have answered "duplicate, stored"
without storing it: acknowledged records lost, the chain broken at the next batch. It does not:
the pinned nats-server checks ``Nats-Expected-Last-Subject-Sequence`` first and refuses any
publish that does not follow the writer's last stored record, identical re-sends included, so
the auditor re-reads the head and re-seals. These tests hold that order (and the header) in
place; without the header the second one loses records.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import nats
import pytest

from nats_support import NatsServer
from vivified.audit import AuditEntry, AuditUnavailable
from vivified.audit.chain import Head, seal_line
from vivified.audit.verify import verify_trail
from vivified.dataplane.audit.auditor import ChainAuditor
from vivified.dataplane.audit.jetstream import JetStreamSink, StreamSettings, read_stream
from vivified.dataplane.audit.sink import SinkUnavailable


def body(n: int) -> dict[str, object]:
    return {"v": 1, "action": "invoke", "outcome": "allowed", "entity": {"n": str(n)}}


def batch(head: Head, ns: Sequence[int]) -> tuple[list[dict[str, object]], bytes, Head]:
    records, lines = [], []
    for n in ns:
        record, line, head = seal_line(body(n), head)
        records.append(record)
        lines.append(line)
    return records, b"\n".join(lines), head


async def stored(url: str) -> list[dict[str, object]]:
    nc = await nats.connect(url)
    try:
        lines = await read_stream(nc.jetstream(), StreamSettings.stream)
    finally:
        await nc.close()
    return [json.loads(line) for line in lines]


async def test_a_different_batch_over_a_stored_range_is_refused_not_deduplicated(
    nats_server: NatsServer,
) -> None:
    """The sink's contract: ``append`` returns only once *its* payload is stored, so a publish
    that does not follow the stored head is refused, never acknowledged as a duplicate."""
    sink = await JetStreamSink.open(StreamSettings(url=nats_server.url))
    try:
        assert await sink.last("core-0") is None
        first, payload, _ = batch(Head("core-0"), [1, 2])
        await sink.append(first, payload)
        sink._last_seq["core-0"] = 0  # the head as read before that batch landed
        other, other_payload, _ = batch(Head("core-0"), [1, 3])  # same range, other content
        with pytest.raises(SinkUnavailable):
            await sink.append(other, other_payload)
        sink._last_seq["core-0"] = 0
        with pytest.raises(SinkUnavailable):  # even the identical batch: the head moved on
            await sink.append(first, payload)
    finally:
        await sink.close()
    assert [r["entity"] for r in await stored(nats_server.url)] == [{"n": "1"}, {"n": "2"}]


class LostAckStaleHead:
    """A real JetStream sink with two failpoints: the first batch's acknowledgement is lost
    (the batch is stored, the auditor hears a timeout), and the next head read returns the
    head from before that batch (as when the read overtakes the late store)."""

    def __init__(self, sink: JetStreamSink) -> None:
        self.sink = sink
        self.lost_ack = False
        self.stale: Mapping[str, object] | bool | None = False

    async def last(self, writer: str) -> Mapping[str, object] | None:
        if self.stale is not False and self.lost_ack:
            head, self.stale = self.stale, True
            if head is not True:
                self.sink._last_seq[writer] = 0
                return head  # type: ignore[return-value]
        found = await self.sink.last(writer)
        if self.stale is False:
            self.stale = found
        return found

    async def append(self, records: Sequence[Mapping[str, object]], payload: bytes) -> None:
        await self.sink.append(records, payload)
        if not self.lost_ack:
            self.lost_ack = True
            raise SinkUnavailable("no acknowledgement within 1.0s")

    async def checkpoint(self, checkpoint: Mapping[str, object], line: bytes) -> None:
        await self.sink.checkpoint(checkpoint, line)

    async def ping(self) -> None:
        await self.sink.ping()

    async def close(self) -> None:
        await self.sink.close()


def entry(n: int, level: str = "basic") -> AuditEntry:
    return AuditEntry(
        action="invoke", agent="caller", outcome="allowed", entity={"n": str(n)}, audit_level=level
    )


async def test_the_auditor_after_a_lost_ack_and_a_stale_head_keeps_every_record(
    nats_server: NatsServer,
) -> None:
    import asyncio  # noqa: PLC0415

    sink = LostAckStaleHead(await JetStreamSink.open(StreamSettings(url=nats_server.url)))
    auditor = ChainAuditor(sink, "core-0", retry_seconds=0.05)
    await auditor.start()
    # One batch: a basic entry and a complete one; its ack is lost, so the complete one is
    # refused (its caller got 503) and the basic one held.
    results = await asyncio.gather(
        auditor.record(entry(1)), auditor.record(entry(2, "complete")), return_exceptions=True
    )
    assert results[0] is None
    assert isinstance(results[1], AuditUnavailable)
    await auditor.record(entry(3))  # held during the outage
    for _ in range(200):
        if auditor.metrics.sink_up and auditor.metrics.backlog == 0:
            break
        await asyncio.sleep(0.05)
    await auditor.record(entry(4))
    await auditor.close()
    records = await stored(nats_server.url)
    report = verify_trail([json.dumps(r) for r in records], [])
    assert report.intact, [str(p) for p in report.problems]
    kept = {r["entity"]["n"] for r in records}  # type: ignore[index]
    assert {"1", "3", "4"} <= kept, f"acknowledged records missing from {sorted(kept)}"
