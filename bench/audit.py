"""Benchmark: what the audit trail costs: record throughput, added latency, lane throughput.

    python bench/audit.py [--records 5000] [--concurrency 32] [--requests 4000]

1. Sink throughput and latency: ``ChainAuditor.record()`` of ``detailed`` entries into the
   file sink and into JetStream (a real nats-server on loopback, file storage), one caller
   and ``--concurrency`` callers; p50/p99 of one call.
2. Lane cost: an aiohttp stand-in for the operator lane (verify the caller's ES256 JWT,
   forward to a target plugin in another process, answer its 512-byte JSON), driven by
   ``--concurrency`` keep-alive clients from a third process, audited ``detailed`` to
   JetStream vs. a ``NullAuditor``, in the same run, alternating ``--rounds`` times. The
   core's real operator lane (issue 16) was not on main when this was written.

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

import subprocess  # noqa: E402

import aiohttp  # noqa: E402
import jwt  # noqa: E402
from aiohttp import web  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from nats_support import NatsServer, nats_server_binary  # noqa: E402
from vivified.audit import AuditEntry, Auditor, NullAuditor  # noqa: E402
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


def lane_app(auditor: Auditor, target: str, public_key: Any) -> web.Application:
    """A stand-in for the operator lane: verify the caller's ES256 JWT, forward, answer."""

    async def invoke(request: web.Request) -> web.Response:
        started = time.perf_counter()
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        claims = jwt.decode(token, public_key, algorithms=["ES256"], audience="vivified-core")
        session: aiohttp.ClientSession = request.app["session"]
        async with session.get(f"{target}/{request.match_info['op']}") as upstream:
            body = await upstream.read()
            status = upstream.status
        await auditor.record(
            AuditEntry(
                action="invoke",
                agent=str(claims["sub"]),
                outcome="allowed",
                entity={"target": "user-management", "operation": request.match_info["op"]},
                details={
                    "method": request.method,
                    "status": status,
                    "response_bytes": len(body),
                    "duration_ms": (time.perf_counter() - started) * 1000,
                    "headers": dict(request.headers),
                },
                audit_level="detailed",
            )
        )
        return web.Response(body=body, status=status, content_type="application/json")

    async def session_ctx(app: web.Application) -> Any:
        app["session"] = aiohttp.ClientSession()
        yield
        await app["session"].close()

    app = web.Application()
    app.cleanup_ctx.append(session_ctx)
    app.router.add_get("/v1/invoke/user-management/{op}", invoke)
    return app


PEER = r"""
import asyncio, json, sys, time
import aiohttp
from aiohttp import web

async def target():
    app = web.Application()
    payload = json.dumps({"user": "u" * 480}).encode()
    async def handle(request):
        return web.Response(body=payload, content_type="application/json")
    app.router.add_get("/{op}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(site._server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

async def drive(url, requests, concurrency, token):
    latencies = []
    counter = iter(range(requests))
    headers = {"Authorization": "Bearer " + token, "User-Agent": "bench"}
    async with aiohttp.ClientSession() as session:
        async def worker():
            for _ in counter:
                start = time.perf_counter()
                async with session.get(url, headers=headers) as resp:
                    await resp.read()
                    assert resp.status == 200, resp.status
                latencies.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    pick = lambda p: latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]
    print(json.dumps({"rps": round(requests / elapsed), "p50_ms": round(pick(50), 3),
                      "p99_ms": round(pick(99), 3)}))

if sys.argv[1] == "target":
    asyncio.run(target())
else:
    asyncio.run(drive(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]))
"""


async def drive(url: str, requests: int, concurrency: int, token: str) -> dict[str, Any]:
    """The load comes from another process, so it does not share the lane's event loop."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        PEER,
        "drive",
        url,
        str(requests),
        str(concurrency),
        token,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    result: dict[str, Any] = json.loads(out)
    return result


async def serve(auditor: Auditor, target: str, public_key: Any) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(lane_app(auditor, target, public_key), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/v1/invoke/user-management/user_info"


async def main(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="vivified-audit-bench-"))
    server = NatsServer(nats_server_binary(), work / "nats")
    server.start()
    results: dict[str, Any] = {"sinks": {}, "lane": {}}
    try:
        for name in ("file", "jetstream"):
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

        key = ec.generate_private_key(ec.SECP256R1())
        token = jwt.encode(
            {"sub": "billing", "aud": "vivified-core", "exp": int(time.time()) + 3600},
            key,
            algorithm="ES256",
        )
        peer = subprocess.Popen([sys.executable, "-c", PEER, "target"], stdout=subprocess.PIPE)
        assert peer.stdout is not None
        target = f"http://127.0.0.1:{int(peer.stdout.readline())}"
        runs: dict[str, list[dict[str, Any]]] = {"off": [], "detailed": []}
        for round_ in range(args.rounds):
            for mode in ("off", "detailed"):
                if mode == "off":
                    lane_auditor: Any = NullAuditor()
                else:
                    lane_auditor = ChainAuditor(
                        await JetStreamSink.open(StreamSettings(url=server.url)),
                        f"bench-lane-{round_}",
                        signer=SIGNER,
                    )
                    await lane_auditor.start()
                runner, url = await serve(lane_auditor, target, key.public_key())
                await drive(url, 200, args.concurrency, token)  # warm-up
                row = await drive(url, args.requests, args.concurrency, token)
                await runner.cleanup()
                if mode == "detailed":
                    await lane_auditor.close()
                runs[mode].append(row)
                print("lane", mode, row, flush=True)
        for mode, rows in runs.items():
            results["lane"][mode] = {
                "rps": round(statistics.median(r["rps"] for r in rows)),
                "p50_ms": round(statistics.median(r["p50_ms"] for r in rows), 3),
                "p99_ms": round(statistics.median(r["p99_ms"] for r in rows), 3),
            }
        off, on = results["lane"]["off"], results["lane"]["detailed"]
        results["lane"]["throughput_cost_pct"] = round(100 * (1 - on["rps"] / off["rps"]), 1)
        results["lane"]["added_p99_ms"] = round(on["p99_ms"] - off["p99_ms"], 3)
        peer.kill()
        peer.wait()
    finally:
        server.stop()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
