"""The audit trail on a real JetStream: resume, sink outage, and kill -9 during a burst."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import nats
import pytest

from nats_support import NatsServer
from vivified.audit import AuditEntry, AuditUnavailable
from vivified.audit.checkpoint import Signer
from vivified.audit.verify import verify_trail
from vivified.dataplane.audit.auditor import ChainAuditor
from vivified.dataplane.audit.jetstream import JetStreamSink, StreamSettings, read_stream

WRITER = Path(__file__).with_name("audit_burst_writer.py")
SIGNER = Signer.generate()


def call(level: str, n: int) -> AuditEntry:
    return AuditEntry(
        action="invoke",
        agent="billing",
        outcome="allowed",
        entity={"target": "user-management", "operation": "user_info", "n": str(n)},
        audit_level=level,
    )


async def read_trail(
    url: str, settings: StreamSettings | None = None
) -> tuple[list[bytes], list[bytes]]:
    settings = settings or StreamSettings(url=url)
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        return (
            await read_stream(js, settings.stream),
            await read_stream(js, settings.checkpoint_stream),
        )
    finally:
        await nc.close()


async def test_stream_config_and_resume(nats_server: NatsServer) -> None:
    settings = StreamSettings(url=nats_server.url, max_age_days=3000)
    sink = await JetStreamSink.open(settings)
    auditor = ChainAuditor(sink, "core-0", signer=SIGNER)
    await auditor.start()
    for n in range(3):
        await auditor.record(call("basic", n))
    await auditor.close()
    again = ChainAuditor(await JetStreamSink.open(settings), "core-0", signer=SIGNER)
    await again.start()
    await again.record(call("basic", 3))
    await again.close()

    nc = await nats.connect(nats_server.url)
    info = await nc.jetstream().stream_info(settings.stream)
    await nc.close()
    assert info.config.deny_delete
    assert info.config.deny_purge
    assert info.config.max_age == pytest.approx(3000 * 86400)
    assert str(getattr(info.config.storage, "value", info.config.storage)) == "file"
    records, checkpoints = await read_trail(nats_server.url)
    report = verify_trail(records, checkpoints, SIGNER.key.public_key())
    assert report.intact, [str(p) for p in report.problems]
    assert report.heads["core-0"].seq == 4
    assert report.checkpoints == 2


async def test_default_retention_is_at_least_six_years() -> None:
    assert StreamSettings().max_age_days >= 6 * 365.25


async def test_sink_down_complete_refused_basic_held_zero_lost(nats_server: NatsServer) -> None:
    sink = await JetStreamSink.open(StreamSettings(url=nats_server.url, timeout=0.5))
    auditor = ChainAuditor(sink, "core-0", signer=SIGNER, retry_seconds=0.1, append_timeout=0.5)
    await auditor.start()
    await auditor.record(call("basic", 0))
    await asyncio.to_thread(nats_server.stop)
    with pytest.raises(AuditUnavailable):
        await auditor.record(call("complete", -1))
    for n in range(1, 21):
        await auditor.record(call("basic", n))
    assert auditor.metrics.outages_total == 1
    assert auditor.metrics.records_held_total == 20
    await asyncio.to_thread(nats_server.start)
    for _ in range(200):
        if auditor.metrics.backlog == 0 and auditor.metrics.sink_up:
            break
        await asyncio.sleep(0.05)
    assert auditor.metrics.backlog == 0
    await auditor.record(call("complete", 21))
    await auditor.close()
    records, checkpoints = await read_trail(nats_server.url)
    report = verify_trail(records, checkpoints, SIGNER.key.public_key())
    assert report.intact, [str(p) for p in report.problems]
    numbers = [json.loads(r)["entity"]["n"] for r in records]
    assert numbers == [str(n) for n in range(22)]  # the refused one is absent, none lost


def _burst(url: str, key: Path, start: int, count: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, str(WRITER), url, str(key), str(start), str(count)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


async def test_kill_during_burst_loses_no_acknowledged_record(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    key = tmp_path / "audit-key.pem"
    key.write_bytes(SIGNER.private_pem())
    total = 2000
    writer = _burst(nats_server.url, key, 0, total)
    assert writer.stdout is not None
    acked: list[int] = []
    for line in writer.stdout:
        acked.append(int(line.split()[1]))
        if len(acked) == 700:
            os.kill(writer.pid, signal.SIGKILL)
            break
    writer.wait(timeout=30)
    rest = acked[-1] + 1
    again = _burst(nats_server.url, key, rest, total - rest)
    out, _ = again.communicate(timeout=240)
    assert again.returncode == 0
    acked.extend(int(line.split()[1]) for line in out.splitlines())

    records, checkpoints = await read_trail(nats_server.url)
    report = verify_trail(records, checkpoints, SIGNER.key.public_key())
    assert report.intact, [str(p) for p in report.problems]
    stored = [int(json.loads(r)["entity"]["n"]) for r in records]
    assert set(acked) <= set(stored), "an acknowledged entry has no record"
    assert len(acked) == total
    # At most the one entry in flight at the kill can be stored twice or without its ACK.
    assert len(stored) - len(set(stored)) <= 1
    print(f"acknowledged {len(acked)}, stored {len(stored)}, checkpoints {report.checkpoints}")


async def test_stream_trail_reader_for_the_ui(nats_server: NatsServer) -> None:
    from vivified.dataplane.audit.reader import StreamTrailReader  # noqa: PLC0415

    auditor = ChainAuditor(await JetStreamSink.open(StreamSettings(url=nats_server.url)), "c")
    await auditor.start()
    for n in range(5):
        await auditor.record(call("basic", n))
    await auditor.close()
    nc = await nats.connect(nats_server.url)
    try:
        recent = await StreamTrailReader(nc.jetstream()).recent("ns", "billing", 2)
    finally:
        await nc.close()
    assert [r["entity"]["n"] for r in recent] == ["4", "3"]


async def test_cli_verifies_queries_and_exports_the_stream(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    import io  # noqa: PLC0415

    from vivified.cli import Streams, main  # noqa: PLC0415

    auditor = ChainAuditor(
        await JetStreamSink.open(StreamSettings(url=nats_server.url)), "core-0", signer=SIGNER
    )
    await auditor.start()
    for n in range(4):
        await auditor.record(call("detailed", n))
    await auditor.close()
    key = tmp_path / "key.pub"
    key.write_bytes(SIGNER.public_pem())

    def run(*argv: str) -> tuple[int, str]:
        out = io.StringIO()
        return main(list(argv), Streams(out, io.StringIO())), out.getvalue()

    code, out = await asyncio.to_thread(
        run, "audit", "verify", "--nats", nats_server.url, "--public-key", str(key)
    )
    assert code == 0, out
    assert out.startswith("intact: 4 records, 1 checkpoints")
    code, out = await asyncio.to_thread(
        run, "audit", "query", "--nats", nats_server.url, "--plugin", "billing", "-o", "json"
    )
    assert [r["seq"] for r in json.loads(out)] == [1, 2, 3, 4]
    export = tmp_path / "trail.jsonl"
    code, _ = await asyncio.to_thread(
        run, "audit", "export", "--nats", nats_server.url, "--to", str(export)
    )
    assert code == 0
    lines = export.read_bytes().splitlines(keepends=True)
    export.write_bytes(b"".join(lines[:2]))  # the tail cut off the export
    code, out = await asyncio.to_thread(
        run, "audit", "verify", "--file", str(export), "--public-key", str(key)
    )
    assert code == 1
    assert "tail cut off" in out
    code, _ = await asyncio.to_thread(run, "audit", "verify", "--nats", "nats://127.0.0.1:1")
    assert code == 2


async def test_core_starts_while_nats_is_down(nats_server: NatsServer) -> None:
    await asyncio.to_thread(nats_server.stop)
    sink = await JetStreamSink.open(StreamSettings(url=nats_server.url), wait=False)
    auditor = ChainAuditor(sink, "core-0", signer=SIGNER, retry_seconds=0.1)
    await auditor.start()
    with pytest.raises(AuditUnavailable):
        await auditor.record(call("complete", 0))
    await auditor.record(call("basic", 1))
    assert auditor.metrics.sink_up == 0
    await asyncio.to_thread(nats_server.start)
    for _ in range(200):
        if auditor.metrics.backlog == 0 and auditor.metrics.sink_up:
            break
        await asyncio.sleep(0.05)
    await auditor.record(call("complete", 2))
    await auditor.close()
    records, _ = await read_trail(nats_server.url)
    assert [json.loads(r)["entity"]["n"] for r in records] == ["1", "2"]
