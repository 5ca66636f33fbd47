"""The chained auditor over a file sink: sink down, back-pressure, resume, zero records lost."""

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


class FlakySink(FileSink):
    """A file sink that can be switched off, or made to hang."""

    down = False
    hang = False

    async def _gate(self) -> None:
        if self.hang:
            await asyncio.sleep(60)
        if self.down:
            raise SinkUnavailable("switched off")

    async def append(self, records: Sequence[Mapping[str, object]], payload: bytes) -> None:
        await self._gate()
        await super().append(records, payload)

    async def checkpoint(self, checkpoint: Mapping[str, object], line: bytes) -> None:
        await self._gate()
        await super().checkpoint(checkpoint, line)

    async def ping(self) -> None:
        await self._gate()


class Alerts:
    def __init__(self) -> None:
        self.seen: list[str] = []

    async def outage_started(self, reason: str) -> None:
        self.seen.append(f"down: {reason}")

    async def outage_ended(self, held: int) -> None:
        self.seen.append(f"up: {held}")


def call(level: str, n: int = 0, **extra: object) -> AuditEntry:
    return AuditEntry(
        action="invoke",
        agent="billing",
        outcome="allowed",
        entity={"target": "user-management", "operation": "user_info", "n": str(n)},
        details={"method": "GET", "status": 200},
        audit_level=level,
        **extra,  # type: ignore[arg-type]
    )


def verify(path: Path) -> int:
    report = verify_trail(
        iter_lines(path),
        iter_lines(path.with_name(path.name + ".checkpoints")),
        SIGNER.key.public_key(),
    )
    assert report.intact, [str(p) for p in report.problems]
    return report.records


async def make(path: Path, **kwargs: object) -> tuple[ChainAuditor, FlakySink, Alerts]:
    sink = FlakySink(path)
    alerts = Alerts()
    options: dict[str, object] = {"retry_seconds": 0.05, **kwargs}
    auditor = ChainAuditor(sink, "core-0", signer=SIGNER, alert=alerts, **options)  # type: ignore[arg-type]
    await auditor.start()
    return auditor, sink, alerts


async def test_records_are_chained_checkpointed_and_verify(tmp_path: Path) -> None:
    auditor, _, _ = await make(tmp_path / "trail", checkpoint_every=3)
    for n in range(7):
        await auditor.record(call("detailed", n))
    await auditor.record(call("none"))  # not kept
    await auditor.close()
    assert verify(tmp_path / "trail") == 7
    assert auditor.metrics.records_written_total == 7
    assert auditor.metrics.records_skipped_total == 1
    assert len(list(iter_lines(tmp_path / "trail.checkpoints"))) == 3  # seq 3, 6, close


async def test_chain_resumes_after_restart(tmp_path: Path) -> None:
    auditor, _, _ = await make(tmp_path / "trail")
    await auditor.record(call("basic", 1))
    await auditor.close()
    again, _, _ = await make(tmp_path / "trail")
    await again.record(call("basic", 2))
    await again.close()
    assert verify(tmp_path / "trail") == 2
    assert again.head is not None
    assert again.head.seq == 2


@pytest.mark.parametrize("extra", [{"audit_level": "complete"}, {"audit_required": True}])
async def test_sink_down_fails_required_entries_closed(
    tmp_path: Path, extra: dict[str, object]
) -> None:
    auditor, sink, alerts = await make(tmp_path / "trail")
    sink.down = True
    level = str(extra.pop("audit_level", "basic"))
    with pytest.raises(AuditUnavailable, match="audit_unavailable"):
        await auditor.record(call(level, **extra))  # type: ignore[arg-type]
    assert auditor.metrics.refused_unavailable_total == 1
    assert alerts.seen == ["down: switched off"]
    sink.down = False
    await auditor.close()


async def test_sink_down_basic_passes_counted_and_nothing_lost(tmp_path: Path) -> None:
    auditor, sink, alerts = await make(tmp_path / "trail")
    await auditor.record(call("basic", 0))
    sink.down = True
    for n in range(1, 51):  # every one returns: the lane answers
        await auditor.record(call("basic", n))
    assert auditor.metrics.outages_total == 1
    assert auditor.metrics.records_held_total == 50
    assert auditor.metrics.sink_up == 0
    with pytest.raises(AuditUnavailable):  # complete still fails closed during the outage
        await auditor.record(call("complete"))
    sink.down = False
    for _ in range(100):
        if auditor.metrics.backlog == 0:
            break
        await asyncio.sleep(0.02)
    await auditor.record(call("basic", 51))
    await auditor.close()
    assert alerts.seen == ["down: switched off", "up: 50"]
    assert verify(tmp_path / "trail") == 52
    kept = [json.loads(line)["entity"]["n"] for line in iter_lines(tmp_path / "trail")]
    assert kept == [str(n) for n in range(52)]  # zero lost, in order


async def test_full_backlog_pushes_back_instead_of_dropping(tmp_path: Path) -> None:
    auditor, sink, _ = await make(tmp_path / "trail", backlog_limit=3, retry_seconds=60)
    sink.down = True
    for n in range(3):
        await auditor.record(call("basic", n))
    with pytest.raises(AuditUnavailable, match="audit_backlog_full"):
        await auditor.record(call("basic", 3))
    assert auditor.metrics.refused_backpressure_total == 1
    sink.down = False
    await auditor.close()
    assert verify(tmp_path / "trail") == 3


async def test_a_hanging_sink_costs_at_most_the_timeout(tmp_path: Path) -> None:
    auditor, sink, _ = await make(tmp_path / "trail", append_timeout=0.05, retry_seconds=60)
    sink.hang = True
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(AuditUnavailable):
        await auditor.record(call("complete"))
    await auditor.record(call("basic"))  # held at once: the outage is known
    assert loop.time() - started < 1.0
    sink.hang = False
    await auditor.close()
    assert verify(tmp_path / "trail") == 1


async def test_sink_down_at_start(tmp_path: Path) -> None:
    sink = FlakySink(tmp_path / "trail")
    sink.down = True

    async def last(writer: str) -> None:
        raise SinkUnavailable("no stream")

    sink.last = last  # type: ignore[method-assign]
    auditor = ChainAuditor(sink, "core-0", signer=SIGNER, retry_seconds=60)
    await auditor.start()
    with pytest.raises(AuditUnavailable):
        await auditor.record(call("complete"))
    await auditor.record(call("basic"))
    assert auditor.metrics.backlog == 1
    del sink.last
    sink.down = False
    await auditor.close()
    assert verify(tmp_path / "trail") == 1
