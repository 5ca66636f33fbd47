"""Records of answered calls (``after_answer``) and the writer's two old bugs, on a fake sink.

An ``invoke.result`` must not hold the answer for a second round trip, yet it must land in
chain order, survive an outage and a close, and be counted when it cannot be kept. The
regressions: a cancelled caller plus a failed batch killed the writer task; a record queued
while close() waited for an in-flight batch was written twice.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from vivified.audit import AuditEntry, AuditUnavailable
from vivified.audit.checkpoint import Signer
from vivified.audit.verify import verify_trail
from vivified.dataplane.audit.auditor import ChainAuditor
from vivified.dataplane.audit.file import FileSink, iter_lines
from vivified.dataplane.audit.sink import SinkUnavailable

SIGNER = Signer.generate()


class GatedSink(FileSink):
    """A file sink whose appends can be held at a gate, failed, or switched off."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = asyncio.Event()
        self.gate.set()
        self.entered = asyncio.Event()
        self.fail_next = False
        self.down = False
        self.appends: list[int] = []

    async def append(self, records: Sequence[Mapping[str, object]], payload: bytes) -> None:
        self.entered.set()
        await self.gate.wait()
        if self.fail_next or self.down:
            self.fail_next = False
            raise SinkUnavailable("failed on purpose")
        self.appends.append(len(records))
        await super().append(records, payload)

    async def ping(self) -> None:
        if self.down:
            raise SinkUnavailable("switched off")


def entry(n: int, *, after: bool = False, level: str = "detailed", **extra: object) -> AuditEntry:
    return AuditEntry(
        action="invoke.result" if after else "invoke",
        agent="billing",
        outcome="allowed",
        entity={"target": "user-management", "operation": "user_info", "n": str(n)},
        details={"method": "GET", "status": 200},
        audit_level=level,
        after_answer=after,
        **extra,  # type: ignore[arg-type]
    )


async def make(path: Path, **options: object) -> tuple[ChainAuditor, GatedSink]:
    sink = GatedSink(path)
    settings: dict[str, object] = {"retry_seconds": 0.02, "linger": 60.0, **options}
    auditor = ChainAuditor(sink, "core-0", signer=SIGNER, **settings)  # type: ignore[arg-type]
    await auditor.start()
    return auditor, sink


def trail(path: Path) -> list[tuple[str, str]]:
    """The stored (action, n) pairs, after checking the chain and checkpoints verify."""
    report = verify_trail(
        iter_lines(path),
        iter_lines(path.with_name(path.name + ".checkpoints")),
        SIGNER.key.public_key(),
    )
    assert report.intact, [str(p) for p in report.problems]
    records = [json.loads(line) for line in iter_lines(path)]
    return [(r["action"], r["entity"]["n"]) for r in records]


async def eventually(condition: object, what: str) -> None:
    for _ in range(200):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(what)


async def test_an_answered_calls_record_does_not_wait_and_rides_the_next_batch(
    tmp_path: Path,
) -> None:
    auditor, sink = await make(tmp_path / "trail")
    sink.gate.clear()  # the sink would hold any caller
    await asyncio.wait_for(auditor.record(entry(0, after=True)), 0.5)
    assert auditor.metrics.pending == 1
    assert auditor.metrics.records_after_answer_total == 1
    sink.gate.set()
    await auditor.record(entry(1))  # a decision: one batch takes both, in order
    assert sink.appends == [2]
    assert auditor.metrics.pending == 0
    await auditor.close()
    assert trail(tmp_path / "trail") == [("invoke.result", "0"), ("invoke", "1")]


async def test_alone_it_is_written_after_the_linger(tmp_path: Path) -> None:
    auditor, sink = await make(tmp_path / "trail", linger=0.01)
    await auditor.record(entry(0, after=True))
    await eventually(lambda: sink.appends == [1], "the linger timer wrote the record")
    await auditor.close()
    assert trail(tmp_path / "trail") == [("invoke.result", "0")]


async def test_it_is_written_on_close(tmp_path: Path) -> None:
    auditor, _ = await make(tmp_path / "trail")  # linger 60 s: only close() writes it
    await auditor.record(entry(0, after=True))
    await auditor.close()
    assert trail(tmp_path / "trail") == [("invoke.result", "0")]
    assert auditor.metrics.records_lost_total == 0


@pytest.mark.parametrize("extra", [{"level": "complete"}, {"audit_required": True}])
async def test_an_outage_holds_it_even_for_plugins_that_fail_closed(
    tmp_path: Path, extra: dict[str, object]
) -> None:
    auditor, sink = await make(tmp_path / "trail")
    sink.down = True
    with pytest.raises(AuditUnavailable):  # the decision of the next call is refused
        await auditor.record(entry(0, **extra))  # type: ignore[arg-type]
    await auditor.record(entry(1, after=True, **extra))  # type: ignore[arg-type]
    assert auditor.metrics.backlog == 1
    sink.down = False
    await eventually(lambda: auditor.metrics.backlog == 0, "held record written")
    await auditor.close()
    assert trail(tmp_path / "trail") == [("invoke.result", "1")]


async def test_a_full_backlog_counts_it_lost(tmp_path: Path) -> None:
    auditor, sink = await make(tmp_path / "trail", backlog_limit=1, retry_seconds=60)
    sink.down = True
    await auditor.record(entry(0, level="basic"))  # held, fills the backlog
    await auditor.record(entry(1, after=True))  # cannot be refused: counted lost
    assert auditor.metrics.records_lost_total == 1
    assert auditor.metrics.refused_backpressure_total == 0
    sink.down = False
    await auditor.close()
    assert trail(tmp_path / "trail") == [("invoke", "0")]


async def test_a_failed_batch_holds_queued_answered_records(tmp_path: Path) -> None:
    auditor, sink = await make(tmp_path / "trail")
    await auditor.record(entry(0, after=True))
    sink.fail_next = True
    await auditor.record(entry(1, level="basic"))  # held: basic passes an outage
    assert auditor.metrics.backlog == 2
    await eventually(lambda: auditor.metrics.backlog == 0, "held records written")
    await auditor.close()
    assert trail(tmp_path / "trail") == [("invoke.result", "0"), ("invoke", "1")]


async def test_regression_a_cancelled_caller_and_a_failed_batch_leave_the_writer_alive(
    tmp_path: Path,
) -> None:
    auditor, sink = await make(tmp_path / "trail")
    sink.gate.clear()
    caller = asyncio.create_task(auditor.record(entry(0, level="basic")))
    await sink.entered.wait()  # its batch is in flight
    caller.cancel()  # the client went away
    sink.fail_next = True
    sink.gate.set()  # ... and the batch fails: the writer settles a cancelled caller
    with pytest.raises(asyncio.CancelledError):
        await caller
    await eventually(lambda: auditor.metrics.sink_up == 1, "the probe found the sink back")
    await asyncio.wait_for(auditor.record(entry(1, level="basic")), 2.0)  # the writer lives
    await auditor.close()
    assert trail(tmp_path / "trail") == [("invoke", "0"), ("invoke", "1")]


async def test_regression_a_record_during_close_is_written_once(tmp_path: Path) -> None:
    auditor, sink = await make(tmp_path / "trail")
    sink.gate.clear()
    first = asyncio.create_task(auditor.record(entry(0, level="basic")))
    await sink.entered.wait()  # its batch is in flight
    closing = asyncio.create_task(auditor.close())
    await asyncio.sleep(0)  # close() is waiting for the writer
    second = asyncio.create_task(auditor.record(entry(1, level="basic")))
    await asyncio.sleep(0)
    sink.gate.set()
    await asyncio.wait_for(asyncio.gather(first, second, closing), 2.0)
    assert trail(tmp_path / "trail") == [("invoke", "0"), ("invoke", "1")]
    assert auditor.metrics.records_written_total == 2
