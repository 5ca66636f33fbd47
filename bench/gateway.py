"""Benchmark: the operator lane (core) vs calling the same target directly, same run.

    python bench/gateway.py [--rates 500,2000] [--duration 10] [--closed-seconds 5]
                            [--concurrency 32] [--ceiling]

Three processes on loopback: a target plugin (aiohttp, answers ``GET /api/users/{id}`` with
a small JSON body), the real core app (``vivified.dataplane.app.build_app`` with a static
directory, the address map pointing at the target, fresh keys; the caller's plugin token is
minted there and handed to this process), and this load generator (one aiohttp session with
keep-alive, like a plugin's SDK client).

* Open loop at each ``--rates`` value: requests are *scheduled* every 1/rate s for
  ``--duration`` s, direct and through ``/v1/invoke/b/user_info/<n>``; latency counts from
  the scheduled time (no coordinated omission). p50/p99/max and achieved req/s.
* Closed loop: ``--concurrency`` workers as fast as possible for ``--closed-seconds``: the
  maximum req/s of each path and their ratio.
* Where each closed-loop request's CPU went (µs per request, per process, from /proc).
* Peak RSS (VmHWM) of the core process.
* ``--ceiling``: a third path in the same run, ``bench/ceiling`` (Go, built here with ``go
  build``): a measuring instrument, not a data path. It keeps the per-call work a compiled
  lane could not cache away (the caller's decision as a cache lookup, the path template, one
  ES256 call token per call, pooled forwarding) and shows how much of direct a compiled
  forwarder keeps on this machine (issue 16's open decision, docs/decisions.md).

Every lane request does the full work: token checks (signature cached per token), policy,
path template, audit call site (NullAuditor), call-token minting (an ES256 signature),
forwarding over a pooled connection. Numbers, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiohttp import web

from vivified import tokens
from vivified.dataplane.app import build_app
from vivified.dataplane.audit.alert import LogAlert
from vivified.dataplane.context import CoreContext
from vivified.dataplane.directory import PluginRecord, StaticDirectory
from vivified.dataplane.settings import CoreSettings
from vivified.dataplane.trust import CoreKey, TrustState
from vivified.manifest import PluginManifest

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- child processes ---------------------------------------------------------------------------
def serve_target(port: int) -> None:
    async def user(request: web.Request) -> web.Response:
        return web.json_response({"id": request.match_info["id"], "plan": "gold"})

    app = web.Application()
    app.router.add_get("/api/users/{id}", user)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


class CollectorPauses:
    """Times every garbage collection of the core process (is a p99 outlier the collector?)."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._started = 0.0

    def callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses[info["generation"]].append((time.perf_counter() - self._started) * 1e3)

    def summary(self) -> dict[str, object]:
        out: dict[str, object] = {
            f"gen{gen}": {
                "count": len(ms),
                "total_ms": round(sum(ms), 1),
                "max_ms": round(max(ms, default=0.0), 2),
                "over_5ms": sum(1 for m in ms if m > 5),
            }
            for gen, ms in self.pauses.items()
        }
        out["frozen_objects"] = gc.get_freeze_count()
        return out


def watch_collector(app: web.Application, stats_file: Path, freeze: bool) -> None:
    """Write the collector's pauses to ``stats_file`` at shutdown; ``freeze``: after start-up,
    move every live object out of the collector's reach (``gc.freeze()``), so a full
    collection no longer walks the app's long-lived objects."""
    pauses = CollectorPauses()

    async def started(app: web.Application) -> None:
        if freeze:  # what `vivified core` does (freeze_startup_heap)
            gc.collect()
            gc.freeze()
        gc.callbacks.append(pauses.callback)

    async def stopped(app: web.Application) -> None:
        stats_file.write_text(json.dumps(pauses.summary()))

    app.on_startup.append(started)
    app.on_shutdown.append(stopped)


def serve_core(
    port: int,
    target_port: int,
    *,
    audit_sink: str = "",
    audit_level: str = "basic",
    gc_stats: str = "",
    gc_freeze: bool = False,
) -> None:
    """The real core app; ``audit_sink`` (``VIVIFIED_AUDIT_SINK`` syntax) swaps the default
    NullAuditor for the real chained auditor (bench/audit.py), plugins at ``audit_level``;
    ``gc_stats`` writes this process's collector pauses there at exit."""
    now = datetime.now(UTC)

    def manifest(pid: str, **extra: object) -> PluginManifest:
        return PluginManifest.model_validate(
            {
                "id": pid,
                "name": pid,
                "version": "1.0.0",
                "contracts": ["IdentityPlugin"],
                "traits": ["handles_pii", "audit_required"],
                "security": {"authentication_required": True, "data_classification": ["pii"]},
                "compliance": {"audit_level": audit_level},
                **extra,
            }
        )

    a = manifest("a", dependencies=["b"])
    b = manifest("b", endpoints={"user_info": "/api/users/{id}"})
    ring = tokens.KeyRing(active=tokens.generate_signing_key(now))
    trust = TrustState(CoreKey(tokens.generate_signing_key(now)))
    trust.set_jwks(tokens.jwks_to_configmap_data(tokens.jwks(ring)))
    trust.set_revocations(tokens.revocations_to_configmap_data(tokens.RevocationList()))
    directory = StaticDirectory(
        [PluginRecord(m.id, "bench", m, "Active", "healthy") for m in (a, b)]
    )
    settings = CoreSettings(address_map={"b": f"127.0.0.1:{target_port}"})
    ctx = CoreContext(settings=settings, directory=directory, trust=trust)
    token = tokens.mint_plugin_token(
        ring,
        a,
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        ttl_seconds=3600,
        now=now,
    )
    app = build_app(ctx)
    if audit_sink:
        from vivified.dataplane.audit.auditor import ChainAuditor  # noqa: PLC0415
        from vivified.dataplane.audit.setup import AuditSettings, open_auditor  # noqa: PLC0415

        async def audited(app: web.Application) -> AsyncIterator[None]:
            env = {"VIVIFIED_AUDIT_SINK": audit_sink, "VIVIFIED_AUDIT_WRITER": f"bench-{port}"}
            auditor = await open_auditor(AuditSettings.from_env(env), alert=LogAlert())
            ctx.auditor = auditor
            yield
            if isinstance(auditor, ChainAuditor):
                await auditor.close()

        app.cleanup_ctx.append(audited)
    if gc_stats:
        watch_collector(app, Path(gc_stats), gc_freeze)
    print(json.dumps({"token": token.token}), flush=True)  # the bench's own test credential
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# -- load --------------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def open_loop(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], rate: int, seconds: float
) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    total = int(rate * seconds)

    async def one(i: int, due: float) -> None:
        nonlocal errors
        try:
            async with session.get(f"{url}/{i}", headers=headers) as response:
                await response.read()
                if response.status != 200:
                    errors += 1
        except aiohttp.ClientError:
            errors += 1
        latencies.append(loop.time() - due)

    # Each request is started at its due time (thousands of sleeping tasks created up front
    # cost the generator more than the requests did); latency still counts from the due time.
    started: list[asyncio.Task[None]] = []
    for i in range(total):
        due = start + i / rate
        if (delay := due - loop.time()) > 0:
            await asyncio.sleep(delay)
        started.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*started)
    elapsed = loop.time() - start
    return {
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies) * 1000,
        "rps": len(latencies) / elapsed,
        "errors": errors,
    }


async def closed_loop(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    workers: int,
    seconds: float,
    *,
    failed: list[int] | None = None,
) -> float:
    """Answers of status 200 per second (a 503 is not throughput); ``failed`` gets the
    count of the others."""
    done = errors = 0
    stop = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal done, errors
        i = 0
        while time.perf_counter() < stop:
            async with session.get(f"{url}/{w}-{i}", headers=headers) as response:
                await response.read()
            if response.status == 200:
                done += 1
            else:
                errors += 1
            i += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    if failed is not None:
        failed.append(errors)
    return done / (time.perf_counter() - started)


async def wait_port(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


ME = [sys.executable, __file__]
# The core imports the code of this tree (bench/audit.py runs a copy of an older tree too).
ENV = {**os.environ, "PYTHONPATH": f"{REPO / 'operator'}{os.pathsep}{REPO}"}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_target() -> tuple[subprocess.Popen[bytes], int]:
    """The target plugin in its own process, and its port."""
    port = free_port()
    return subprocess.Popen([*ME, "--serve-target", str(port)], env=ENV), port


def start_core(target_port: int, *extra: str) -> tuple[subprocess.Popen[bytes], int, str]:
    """The real core app in its own process (``extra``: ``--audit-sink``/``--audit-level``),
    its port and the caller's plugin token it minted."""
    port = free_port()
    core = subprocess.Popen(
        [*ME, "--serve-core", str(port), str(target_port), *extra],
        env=ENV,
        stdout=subprocess.PIPE,
    )
    assert core.stdout is not None
    token = json.loads(core.stdout.readline())["token"]
    return core, port, token


def start_ceiling(
    target_port: int, token: str, build_dir: Path
) -> tuple[subprocess.Popen[bytes], int]:
    """``bench/ceiling`` built with the machine's Go and started in front of the target."""
    binary = build_dir / "ceiling"
    subprocess.run(
        ["go", "build", "-o", str(binary), "."], cwd=REPO / "bench" / "ceiling", check=True
    )
    port = free_port()
    argv = [str(binary), "-listen", f"127.0.0.1:{port}", "-target", f"127.0.0.1:{target_port}",
            "-token", token]  # fmt: skip
    return subprocess.Popen(argv), port


async def run(args: argparse.Namespace) -> dict[str, object]:
    target, target_port = start_target()
    core, core_port, token = start_core(target_port)
    procs = [core, target]
    build = tempfile.TemporaryDirectory(prefix="vivified-ceiling-")
    try:
        await wait_port(target_port)
        await wait_port(core_port)
        auth = {"Authorization": f"Bearer {token}"}
        paths = {
            "direct": (f"http://127.0.0.1:{target_port}/api/users", {}),
            "lane": (f"http://127.0.0.1:{core_port}/v1/invoke/b/user_info", auth),
        }
        named = {"target": target.pid, "core": core.pid, "load_generator": os.getpid()}
        if args.ceiling:
            ceiling, ceiling_port = start_ceiling(target_port, token, Path(build.name))
            procs.insert(0, ceiling)
            named["ceiling"] = ceiling.pid
            await wait_port(ceiling_port)
            paths["ceiling"] = (f"http://127.0.0.1:{ceiling_port}/v1/invoke/b/user_info", auth)
        connector = aiohttp.TCPConnector(limit=256)
        async with aiohttp.ClientSession(connector=connector) as session:
            for url, headers in paths.values():  # warm up every path
                await open_loop(session, url, headers, 200, 1.0)
            results: dict[str, object] = {}
            for rate in args.rates:
                for name, (url, headers) in paths.items():
                    results[f"{name}@{rate}"] = await open_loop(
                        session, url, headers, rate, args.duration
                    )
            top: dict[str, float] = {}
            for name, (url, headers) in paths.items():
                before = {who: cpu_seconds(pid) for who, pid in named.items()}
                started = time.perf_counter()
                top[name] = await closed_loop(session, url, headers, args.concurrency, args.closed)
                calls = top[name] * (time.perf_counter() - started)
                after = {who: cpu_seconds(pid) for who, pid in named.items()}
                # Where each request's CPU went (µs): what a share is bounded by on 2 cores.
                results[f"cpu_us_per_request[{name}]"] = {
                    who: round((after[who] - before[who]) / calls * 1e6, 1)
                    for who in after
                    if after[who] > before[who]
                }
            closed: dict[str, object] = {f"{name}_rps": round(rps) for name, rps in top.items()}
            for name in sorted(paths.keys() - {"direct"}):
                closed[f"{name}_share"] = round(top[name] / top["direct"], 3)
            results["closed_loop"] = closed
        results["core_peak_rss_mib"] = round(peak_rss_mib(core.pid), 1)
        return results
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
        build.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve-target", type=int)
    parser.add_argument("--serve-core", type=int, nargs=2)
    parser.add_argument("--audit-sink", default="", help="with --serve-core: the real trail")
    parser.add_argument("--audit-level", default="basic", help="with --serve-core")
    parser.add_argument("--gc-stats", default="", help="with --serve-core: write GC pauses")
    parser.add_argument("--gc-freeze", action="store_true", help="with --serve-core")
    parser.add_argument("--rates", default="500,2000")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--closed", "--closed-seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--ceiling", action="store_true", help="also measure bench/ceiling (Go)")
    args = parser.parse_args()
    if args.serve_target:
        serve_target(args.serve_target)
        return
    if args.serve_core:
        port, target_port = args.serve_core
        serve_core(
            port,
            target_port,
            audit_sink=args.audit_sink,
            audit_level=args.audit_level,
            gc_stats=args.gc_stats,
            gc_freeze=args.gc_freeze,
        )
        return
    args.rates = [int(r) for r in args.rates.split(",")]
    results = asyncio.run(run(args))
    for name, value in results.items():
        if isinstance(value, dict):
            shown = ", ".join(
                f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items()
            )
            print(f"{name:>14}: {shown}")
        else:
            print(f"{name:>14}: {value}")


if __name__ == "__main__":
    main()
