"""Benchmark: one HealthMonitor probing many plugins over real HTTP on loopback.

    python bench/health_probes.py [--plugins 500] [--interval 1] [--duration 60] [--warmup 5]
                                  [--servers 4] [--concurrency 64] [--flapping 0.02]

A separate process serves ``/p<i>/health`` for every plugin on a few 127.0.0.1 ports
(aiohttp), returning JSON with a changing uptime, like a real plugin. This process runs the
real ``HealthMonitor`` (its scheduler, semaphore and shared ``httpx.AsyncClient``) with the
probe addresses given as overrides, and an in-memory Kubernetes sink that counts status
writes and events instead of sending them. ``--flapping`` makes that fraction of plugins fail
three probes in a row every 20 s, so health changes are part of the load.

Reported for the steady state after ``--warmup`` seconds (the first probe of every plugin,
with its unknown -> healthy write, is summarised separately): probe scheduling lag (actual
start minus due time; p50/p90/p99/max), probes per second, status writes and events per
minute, and this process's CPU time. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "operator"))

from vivified.health import ProbeAddressResolver, ProbeKind, ProbeTarget  # noqa: E402
from vivified.settings import OperatorSettings  # noqa: E402
from vivified.shell.events import EventRecorder  # noqa: E402
from vivified.shell.monitor import HealthMonitor  # noqa: E402

NAMESPACE = "bench"

SERVER = r"""
import asyncio, json, sys, time
from aiohttp import web

ports = [int(p) for p in sys.argv[1].split(",")]
flapping = set(int(i) for i in sys.argv[2].split(",") if i)
started = time.monotonic()

async def health(request):
    i = int(request.match_info["i"])
    if i in flapping and int(time.monotonic() - started) % 20 < 3:
        return web.Response(status=503)
    return web.json_response({
        "status": "healthy", "plugin": f"p{i}",
        "uptime_seconds": round(time.monotonic() - started, 3), "memory_usage": 52428800,
    })

async def main():
    app = web.Application()
    app.router.add_get("/p{i}/health", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    for port in ports:
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


class CountingKube:
    """Stands in for the API server: counts status patches and posted events."""

    def __init__(self) -> None:
        self.writes: Counter[str] = Counter()
        self.by_minute: Counter[int] = Counter()
        self.started = time.monotonic()

    async def patch_status(
        self, kind: str, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        self.writes["status" if "health" not in status else "status+health"] += 1
        self.by_minute[int((time.monotonic() - self.started) // 60)] += 1
        return {}

    async def request(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        self.writes[f"{method} {path.rsplit('/', 1)[-1]}"] += 1
        return {}


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    ports = free_ports(args.servers)
    n_flapping = int(args.plugins * args.flapping)
    flapping = [i * (args.plugins // max(1, n_flapping)) for i in range(n_flapping)]
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, ",".join(map(str, ports)), ",".join(map(str, flapping))],
        stdout=subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == b"ready"
        overrides = {
            f"{NAMESPACE}/p{i}": f"127.0.0.1:{ports[i % len(ports)]}" for i in range(args.plugins)
        }
        settings = OperatorSettings(
            probe_mode="overrides",
            probe_address_overrides=overrides,
            probe_concurrency=args.concurrency,
        )
        kube = CountingKube()

        def clock() -> datetime:
            return datetime.now(UTC)

        monitor = HealthMonitor(
            kube,  # type: ignore[arg-type]
            EventRecorder(kube, clock),  # type: ignore[arg-type]
            settings,
            clock,
            resolver=ProbeAddressResolver(settings),
        )
        for i in range(args.plugins):
            target = ProbeTarget(
                plugin_id=f"p{i}",
                kind=ProbeKind.HTTP,
                port=8000,
                path=f"/p{i}/health",
                interval_seconds=args.interval,
                timeout_seconds=min(5, args.interval),
                failure_threshold=3,
                source="health_check",
            )
            body = {"metadata": {"name": f"p{i}", "namespace": NAMESPACE, "uid": f"u{i}"}}
            monitor.track((NAMESPACE, f"p{i}"), target, body)
        await monitor.start()
        # Warm-up: the first probe of every plugin (connections opened, unknown -> healthy
        # written) is reported separately from the steady state.
        await asyncio.sleep(args.warmup)
        warmup_lags = list(monitor.stats.lags)
        warmup_writes = sum(kube.writes.values())
        monitor.stats.lags.clear()
        checks_before = monitor.stats.checks
        writes_before = Counter(kube.writes)
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.monotonic()
        await asyncio.sleep(args.duration)
        elapsed = time.monotonic() - started
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        lags = list(monitor.stats.lags)
        checks = monitor.stats.checks - checks_before
        writes = Counter(kube.writes)
        writes.subtract(writes_before)
        await monitor.stop()
    finally:
        server.terminate()
        server.wait()
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    status_writes = writes["status"] + writes["status+health"]
    return {
        "plugins": args.plugins,
        "interval_s": args.interval,
        "concurrency": args.concurrency,
        "flapping_plugins": n_flapping,
        "warmup": {
            "seconds": args.warmup,
            "writes_and_events": warmup_writes,
            "lag_ms_p99": round(percentile(warmup_lags, 0.99) * 1000, 2) if warmup_lags else None,
        },
        "measured_s": round(elapsed, 1),
        "probes": checks,
        "probes_per_s": round(checks / elapsed, 1),
        "expected_probes_per_s": round(args.plugins / args.interval, 1),
        "lag_ms": {
            "p50": round(statistics.median(lags) * 1000, 2),
            "p90": round(percentile(lags, 0.90) * 1000, 2),
            "p99": round(percentile(lags, 0.99) * 1000, 2),
            "max": round(max(lags) * 1000, 2),
        },
        "status_writes": status_writes,
        "status_writes_per_min": round(status_writes / elapsed * 60, 1),
        "health_change_writes": writes["status+health"],
        "events": writes["POST events"],
        "spec_patches": sum(v for k, v in writes.items() if k.startswith("PATCH")),
        "cpu_s_per_s": round(cpu / elapsed, 3),
        "max_in_flight": monitor.stats.max_in_flight,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plugins", type=int, default=500)
    parser.add_argument("--interval", type=int, default=1)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--servers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--flapping", type=float, default=0.02)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    result["pid"] = os.getpid()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
