"""Benchmark: what the audit trail costs: record throughput, added latency, lane throughput.

    python bench/audit.py [--records 5000] [--concurrency 32] [--rate 500] [--duration 10]
                          [--closed-seconds 5] [--rounds 3] [--lane-only] [--gc-freeze]

1. Sink throughput and latency: ``ChainAuditor.record()`` of ``detailed`` entries into the
   file sink and into JetStream (a real nats-server on loopback, file storage), one caller
   and ``--concurrency`` callers; p50/p99 of one call.
2. Lane cost, through the real core app: ``bench/gateway.py``'s target plugin and its core
   process (``build_app``: token checks, policy, the gateway's audit call site, call token,
   forwarding), started twice in the same run: plugins at ``detailed`` with the real chained
   auditor on JetStream, and the same with auditing off (``NullAuditor``). Measured
   alternately ``--rounds`` times with gateway.py's load generator: open loop at ``--rate``
   (p50/p99 from the scheduled time) and closed loop with ``--concurrency`` workers (req/s
   of answers with status 200). Measuring starts once the audited core's trail is up (its
   sink connects in the background; until then an ``audit_required`` call answers 503).
   During the closed loop, the CPU time per call of the core and of nats-server is read from
   /proc (a busy machine skews req/s; it skews CPU per call much less). Each core reports
   its garbage collector's pauses; ``--gc-freeze`` freezes both cores'
   start-up objects (``gc.freeze()``).

Numbers, not pass/fail. The goal is <= 10 % throughput cost and <= 1 ms added p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "operator"))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

import aiohttp  # noqa: E402
import gateway  # noqa: E402  (bench/gateway.py: the target, the core process, the load)

from nats_support import NatsServer, nats_server_binary  # noqa: E402
from vivified.audit import AuditEntry  # noqa: E402
from vivified.audit.checkpoint import Signer  # noqa: E402
from vivified.dataplane.audit.auditor import ChainAuditor  # noqa: E402
from vivified.dataplane.audit.file import FileSink  # noqa: E402
from vivified.dataplane.audit.jetstream import JetStreamSink, StreamSettings  # noqa: E402

SIGNER = Signer.generate()


def entry(n: int) -> AuditEntry:
    return AuditEntry(
        action="invoke",
        agent="billing",
        outcome="allowed",
        entity={"target": "user-management", "operation": "user_info"},
        details={
            "method": "GET",
            "status": 200,
            "request_bytes": 0,
            "response_bytes": 512,
            "duration_ms": 1.25,
            "headers": {"Content-Type": "application/json", "User-Agent": f"bench/{n}"},
        },
        audit_level="detailed",
    )


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def sink_bench(auditor: ChainAuditor, records: int, concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    counter = iter(range(records))

    async def worker() -> None:
        for n in counter:
            start = time.perf_counter()
            await auditor.record(entry(n))
            latencies.append((time.perf_counter() - start) * 1000)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    return {
        "concurrency": concurrency,
        "records_per_s": round(records / elapsed),
        "p50_ms": round(pct(latencies, 50), 3),
        "p99_ms": round(pct(latencies, 99), 3),
    }


async def ready(session: aiohttp.ClientSession, url: str, auth: dict[str, str]) -> None:
    """Wait until a lane call answers 200: the audited core's sink connects in the
    background, and its ``audit_required`` calls answer 503 until then."""
    for _ in range(300):
        async with session.get(f"{url}/ready", headers=auth) as response:
            if response.status == 200:
                return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} never answered 200 (is the trail up?)")


async def lane_cost(
    args: argparse.Namespace, nats_url: str, nats_pid: int, work: Path
) -> dict[str, Any]:
    """Audit detailed (real sink) vs audit off, through the real core, alternating."""
    target, target_port = gateway.start_target()
    level = ("--audit-level", "detailed")
    freeze = ("--gc-freeze",) if args.gc_freeze else ()
    stats = {mode: work / f"gc-{mode}.json" for mode in ("off", "detailed")}
    cores = {
        "off": gateway.start_core(target_port, *level, *freeze, "--gc-stats", str(stats["off"])),
        "detailed": gateway.start_core(
            target_port,
            *level,
            *freeze,
            "--gc-stats",
            str(stats["detailed"]),
            "--audit-sink",
            nats_url,
        ),
    }
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in cores}
    try:
        await gateway.wait_port(target_port)
        for _, port, _ in cores.values():
            await gateway.wait_port(port)
        connector = aiohttp.TCPConnector(limit=256)
        async with aiohttp.ClientSession(connector=connector) as session:
            for _, port, token in cores.values():
                url = f"http://127.0.0.1:{port}/v1/invoke/b/user_info"
                await ready(session, url, {"Authorization": f"Bearer {token}"})
            for round_ in range(args.rounds):
                for mode, (_, port, token) in cores.items():
                    url = f"http://127.0.0.1:{port}/v1/invoke/b/user_info"
                    auth = {"Authorization": f"Bearer {token}"}
                    if round_ == 0:
                        await gateway.open_loop(session, url, auth, 200, 1.0)  # warm-up
                    row = await gateway.open_loop(session, url, auth, args.rate, args.duration)
                    failed: list[int] = []
                    pids = (cores[mode][0].pid, nats_pid)
                    cpu = [gateway.cpu_seconds(pid) for pid in pids]
                    started = time.perf_counter()
                    row["closed_rps"] = await gateway.closed_loop(
                        session, url, auth, args.concurrency, args.closed, failed=failed
                    )
                    calls = row["closed_rps"] * (time.perf_counter() - started)
                    # CPU per call, robust to a busy machine (throughput is not).
                    row["core_cpu_us"], row["nats_cpu_us"] = (
                        (gateway.cpu_seconds(pid) - before) / calls * 1e6
                        for pid, before in zip(pids, cpu, strict=True)
                    )
                    row["errors"] += failed[0]
                    runs[mode].append(row)
                    print("lane", mode, json.dumps(row), flush=True)
            # Proof that the audited core really wrote its trail (and the other did not).
            for mode, (_, port, _) in cores.items():
                async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                    text = await response.text()
                written = [
                    line.split()[-1]
                    for line in text.splitlines()
                    if line.startswith("vivified_audit_records_written_total ")
                ]
                runs[mode][-1]["records_written"] = int(written[0]) if written else 0
    finally:
        for proc in (*(core for core, _, _ in cores.values()), target):
            proc.terminate()
            proc.wait(timeout=10)
    result: dict[str, Any] = {}
    for mode, rows in runs.items():
        result[mode] = {
            "closed_rps": round(statistics.median(r["closed_rps"] for r in rows)),
            f"open_rps@{args.rate}": round(statistics.median(r["rps"] for r in rows)),
            "p50_ms": round(statistics.median(r["p50_ms"] for r in rows), 3),
            "p99_ms": round(statistics.median(r["p99_ms"] for r in rows), 3),
            "errors": sum(int(r["errors"]) for r in rows),
            "core_cpu_us_per_call": round(statistics.median(r["core_cpu_us"] for r in rows)),
            "nats_cpu_us_per_call": round(statistics.median(r["nats_cpu_us"] for r in rows)),
            "audit_records_written": rows[-1]["records_written"],
            "gc": json.loads(stats[mode].read_text()) if stats[mode].exists() else None,
        }
    off, on = result["off"], result["detailed"]
    result["throughput_ratio"] = round(on["closed_rps"] / off["closed_rps"], 3)
    result["throughput_cost_pct"] = round(100 * (1 - on["closed_rps"] / off["closed_rps"]), 1)
    result["added_p50_ms"] = round(on["p50_ms"] - off["p50_ms"], 3)
    result["added_p99_ms"] = round(on["p99_ms"] - off["p99_ms"], 3)
    result["added_core_cpu_us_per_call"] = on["core_cpu_us_per_call"] - off["core_cpu_us_per_call"]
    return result


async def main(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="vivified-audit-bench-"))
    server = NatsServer(nats_server_binary(), work / "nats")
    server.start()
    results: dict[str, Any] = {"sinks": {}, "code": str(REPO)}
    try:
        for name in () if args.lane_only else ("file", "jetstream"):
            for concurrency in (1, args.concurrency):
                if name == "file":
                    sink: Any = FileSink(work / f"trail-{concurrency}.jsonl")
                else:
                    sink = await JetStreamSink.open(StreamSettings(url=server.url))
                auditor = ChainAuditor(sink, f"bench-{name}-{concurrency}", signer=SIGNER)
                await auditor.start()
                row = await sink_bench(auditor, args.records, concurrency)
                await auditor.close()
                results["sinks"].setdefault(name, []).append(row)
                print(name, row, flush=True)
        assert server._proc is not None  # started above
        results["lane"] = await lane_cost(args, server.url, server._proc.pid, work)
    finally:
        server.stop()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=int, default=500, help="open-loop requests per second")
    parser.add_argument("--duration", type=float, default=10.0, help="open-loop seconds")
    parser.add_argument("--closed", "--closed-seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lane-only", action="store_true", help="skip the sink benchmarks")
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() in both cores")
    asyncio.run(main(parser.parse_args()))
