"""Webhook load bench: the admission webhook's latency at a steady rate, and what it does at
ten times that rate (issue 13: it is ``failurePolicy: Fail``, so a slow webhook blocks every
apply).

    python bench/webhook.py [--rate 200] [--overload 10] [--duration 20] [--max-in-flight 32]
                            [--workers 2] [--connections 256] [--timeout 5]

The server is the operator's own webhook server (``shell.webhook.SheddingWebhookServer``,
HTTPS on loopback) in its own process, running kopf's real admission path into our handler
(tests/chaos/webhook_load.py); the plugin index is empty. The clients are ``--workers``
processes sending AdmissionReviews (7 of 8 valid, 1 of 8 denied) **open loop**: each request
leaves at its due time whether or not earlier ones were answered, and its latency is measured
from that due time, so queueing cannot hide behind late sends (no coordinated omission).
Connections are kept alive (as kube-apiserver does), at most ``--connections`` in all; the
client timeout is the chart's ``webhook.timeoutSeconds`` (5 s).

After ``--warmup`` seconds at ``--rate`` (not reported: connections and handshakes), three
phases of ``--duration`` seconds: ``steady`` at ``--rate``, ``overload`` at
``--rate x --overload``, ``after`` at ``--rate`` again (does it recover?). Per phase: sent,
answers by kind (allowed / denied / 429 / timeout / errors), p50, p99 and max latency of the
decided answers (200) and p99 of the shed ones, the server's CPU seconds and its peak RSS, and
the client's worst send lateness (a large value means the *client* could not keep the rate:
the numbers of that phase then understate the load). Prints the load average before and
after: on a shared machine, numbers are only as good as the quiet. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "operator"))

from tests.chaos import webhook_load as wl  # noqa: E402
from tests.cluster_support import self_signed_certificate  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Phase:
    name: str
    rate: float


@dataclass(frozen=True)
class Load:
    """What one client process sends (picklable: it crosses into the worker)."""

    url: str
    cafile: str
    rate: float
    duration: float
    timeout: float
    connections: int


def client(load: Load) -> tuple[list[tuple[float, float, str]], float]:
    """One client process: open loop at its rate; returns (due, latency, outcome) per request
    and its worst send lateness."""
    samples, late = asyncio.run(
        wl.open_loop(
            load.url,
            wl.client_context(Path(load.cafile)),
            wl.review_bodies(),
            rate=load.rate,
            duration=load.duration,
            timeout=load.timeout,
            connections=load.connections,
        )
    )
    return [(s.due, s.latency, s.outcome) for s in samples], late


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


class Peak(threading.Thread):
    """Samples the server's RSS every 50 ms while a phase runs."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.05):
            try:
                self.peak = max(self.peak, rss_bytes(self.pid))
            except (OSError, ValueError):
                return


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"


@dataclass(frozen=True)
class Target:
    pool: concurrent.futures.ProcessPoolExecutor
    server: subprocess.Popen[str]
    url: str
    cafile: Path
    args: argparse.Namespace


def run_phase(target: Target, phase: Phase, duration: float | None = None) -> dict[str, Any]:
    args, server = target.args, target.server
    peak = Peak(server.pid)
    peak.start()
    cpu_before = cpu_seconds(server.pid)
    load = Load(
        target.url,
        str(target.cafile),
        phase.rate / args.workers,
        args.duration if duration is None else duration,
        args.timeout,
        max(1, args.connections // args.workers),
    )
    futures = [target.pool.submit(client, load) for _ in range(args.workers)]
    samples: list[tuple[float, float, str]] = []
    late = 0.0
    for future in futures:
        got, worker_late = future.result()
        samples.extend(got)
        late = max(late, worker_late)
    peak.done.set()
    peak.join()
    outcomes = Counter(outcome for _, _, outcome in samples)
    decided = [lat for _, lat, o in samples if o in ("allowed", "denied")]
    shed = [lat for _, lat, o in samples if o == "429"]
    return {
        "phase": phase.name,
        "rate": phase.rate,
        "sent": len(samples),
        "outcomes": dict(outcomes.most_common()),
        "p50": quantile(decided, 0.50),
        "p99": quantile(decided, 0.99),
        "max": max(decided) if decided else None,
        "shed_p99": quantile(shed, 0.99),
        "server_cpu": cpu_seconds(server.pid) - cpu_before,
        "rss_peak": peak.peak,
        "client_late": late,
        "alive": server.poll() is None,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=200.0, help="steady requests per second")
    parser.add_argument("--overload", type=float, default=10.0, help="overload = rate x this")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase")
    parser.add_argument("--max-in-flight", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="client processes")
    parser.add_argument("--connections", type=int, default=256, help="keep-alive pool, all")
    parser.add_argument("--timeout", type=float, default=5.0, help="client timeout (seconds)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unreported seconds first")
    parser.add_argument("--json", action="store_true", help="also print the rows as JSON")
    args = parser.parse_args()

    certs = Path(tempfile.mkdtemp(prefix="webhook-bench-"))
    cafile, _ = self_signed_certificate(certs)
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'operator'}"}
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.chaos.webhook_load", "--cert-dir", str(certs),
         "--max-in-flight", str(args.max_in_flight)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert server.stdout is not None
    line = server.stdout.readline().split()
    if line[:1] != ["URL"]:
        server.kill()
        raise SystemExit(f"the webhook server did not start: {line}")
    url = line[1]
    idle_rss = rss_bytes(server.pid)
    load_before = os.getloadavg()
    phases = [
        Phase("steady", args.rate),
        Phase("overload", args.rate * args.overload),
        Phase("after", args.rate),
    ]
    rows = []
    context = multiprocessing.get_context("fork")
    try:
        with concurrent.futures.ProcessPoolExecutor(args.workers, mp_context=context) as pool:
            target = Target(pool, server, url, cafile, args)
            if args.warmup > 0:  # connections and handshakes made, caches warm; not reported
                run_phase(target, Phase("warmup", args.rate), args.warmup)
            for phase in phases:
                rows.append(run_phase(target, phase))
                time.sleep(1.0)  # let the last answers drain between phases
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=30)
    stats: dict[str, Any] = next(
        (json.loads(s[6:]) for s in out.splitlines() if s.startswith("STATS ")), {}
    )
    load_after = os.getloadavg()

    print(
        f"webhook bench: max_in_flight={args.max_in_flight} workers={args.workers} "
        f"connections={args.connections} timeout={args.timeout}s duration={args.duration}s"
    )
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print(f"server idle RSS {idle_rss / 2**20:.1f} MiB; totals {stats}")
    header = (
        f"{'phase':<9} {'req/s':>6} {'sent':>6} {'p50ms':>7} {'p99ms':>7} {'maxms':>8} "
        f"{'shed99':>7} {'cpu s':>6} {'RSS MiB':>8} {'late s':>7}  outcomes"
    )
    print(header)
    for r in rows:
        print(
            f"{r['phase']:<9} {r['rate']:>6.0f} {r['sent']:>6} {ms(r['p50']):>7} "
            f"{ms(r['p99']):>7} {ms(r['max']):>8} {ms(r['shed_p99']):>7} "
            f"{r['server_cpu']:>6.1f} {r['rss_peak'] / 2**20:>8.1f} {r['client_late']:>7.2f}  "
            f"{r['outcomes']}{'' if r['alive'] else '  SERVER DIED'}"
        )
    steady, overload, after = rows
    print(f"steady p99 {ms(steady['p99'])} ms (goal <= 20 ms at {args.rate:.0f} req/s)")
    print(
        f"overload: shed {overload['outcomes'].get('429', 0)} with 429, "
        f"{overload['outcomes'].get('timeout', 0)} timeouts, server "
        f"{'alive' if overload['alive'] else 'DEAD'}, RSS peak "
        f"{overload['rss_peak'] / 2**20:.1f} MiB (idle {idle_rss / 2**20:.1f}); "
        f"after: p99 {ms(after['p99'])} ms"
    )
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
