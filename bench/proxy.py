"""Benchmark: the proxy lane on loopback — bulk transfer through a CONNECT tunnel vs direct,
and tunnel set-up latency with 200 tunnels open.

    python bench/proxy.py [--mb 512] [--tunnels 200] [--setups 1000] [--parallel-mb 4]
                          [--transport-relay] [--setup-only] [--profile FILE] [--json]

The real ``ProxyServer`` runs in its own process (as in the core), with a static directory,
the core's ``Authenticator`` (trust from a JWKS file), a null auditor, and the TEST-ONLY static
resolver (a dict look-up: "DNS excluded"). This process runs a loopback upstream (a byte
source) and the clients. Reported:

* bulk: one stream of ``--mb`` MiB, upstream → client, direct and through a tunnel (MiB/s and
  the ratio; goal ≥ 80 %);
* parallel: ``--tunnels`` streams of ``--parallel-mb`` MiB at once, direct and tunnelled;
* set-up: with ``--tunnels`` tunnels held open, ``--setups`` new tunnels opened one after the
  other: time from TCP connect to the ``200`` line (p50/p99/max; goal p99 ≤ 5 ms), and the
  same for ``--tunnels`` tunnels opened in one burst.

The proxy's CPU per set-up (``proxy_cpu_ms_per_setup``, utime + stime of the proxy process)
is the number to compare on a loaded machine; wall-clock set-up times there mostly measure
the wait for a CPU. ``--setup-only`` skips the transfers; ``--profile FILE`` runs the proxy
process under cProfile during the set-up phases and writes the stats to FILE (read them with
``python -m pstats FILE``).

Not a test: it prints numbers (and JSON with ``--json``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "operator"))
sys.path.insert(0, str(REPO))

from vivified import tokens  # noqa: E402
from vivified.audit.hook import NullAuditor  # noqa: E402
from vivified.dataplane.auth import Authenticator  # noqa: E402
from vivified.dataplane.directory import StaticDirectory  # noqa: E402
from vivified.dataplane.proxy import ProxyServer, ProxySettings  # noqa: E402
from vivified.dataplane.settings import CoreSettings  # noqa: E402
from vivified.dataplane.trust import CoreKey, TrustState  # noqa: E402

HOST = "bench.partner.test"
ISS, AUD = "vivified-operator", "vivified-platform"


# ----------------------------------------------------------------------------- proxy process


async def run_proxy(config: dict[str, Any]) -> None:
    from tests.unit.egress_fixtures import egress_record  # noqa: PLC0415

    directory = StaticDirectory([egress_record("bench", domains=(HOST,))])
    now = datetime.now(UTC)
    trust = TrustState(CoreKey(tokens.generate_signing_key(now)))
    trust.set_jwks({tokens.JWKS_CONFIGMAP_KEY: Path(config["jwks"]).read_text()})
    trust.set_revocations(tokens.revocations_to_configmap_data(tokens.RevocationList()))
    settings_core = CoreSettings(token_issuer=ISS, token_audience=AUD)
    verifier = Authenticator(trust, directory, settings_core, lambda: datetime.now(UTC))
    settings = ProxySettings(
        host="127.0.0.1",
        port=0,
        allowed_ports=frozenset({config["upstream_port"]}),
        test_static_hosts={HOST: ("127.0.0.1",)},
        test_allow_networks=("127.0.0.0/8",),
        max_tunnels_per_plugin=10_000,
        max_pending_per_peer=10_000,
        rate_per_second=1e6,
        rate_burst=1_000_000,
        kernel_splice=config.get("kernel_splice", True),
    )
    server = ProxyServer(settings, directory, verifier, NullAuditor())
    await server.start()
    profile = config.get("profile")
    if profile:
        # SIGUSR1 starts the profiler, SIGUSR2 stops it and writes the stats.
        import cProfile  # noqa: PLC0415
        import signal  # noqa: PLC0415

        profiler = cProfile.Profile()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, profiler.enable)

        def dump() -> None:
            profiler.disable()
            profiler.dump_stats(profile)
            print("profiled", flush=True)

        loop.add_signal_handler(signal.SIGUSR2, dump)
    print(server.port, flush=True)
    await asyncio.Event().wait()


# ----------------------------------------------------------------------------- upstream + clients


#: The bulk endpoints move bytes with sendfile(2) and recv_into a reused buffer (both paths
#: alike): they share this one Python process, and with stream reads and writes their own CPU,
#: not the path under test, limited a transfer (about 0.8 s per GiB).
ZEROS_BYTES = 16 * 1024 * 1024
ZEROS = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the bench
ZEROS.write(b"\0" * ZEROS_BYTES)
ZEROS.flush()
RECV_BYTES = 4 * 1024 * 1024


async def source(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads a decimal byte count and a newline, sends that many zero bytes, closes."""
    loop = asyncio.get_running_loop()
    try:
        line = await reader.readline()
        remaining = int(line)
        while remaining > 0:
            count = min(ZEROS_BYTES, remaining)
            await loop.sendfile(writer.transport, ZEROS, 0, count)
            remaining -= count
        writer.close()
    except (ConnectionError, ValueError, asyncio.CancelledError):
        writer.close()


def connect_request(upstream_port: int, token: str) -> bytes:
    target = f"{HOST}:{upstream_port}"
    return (
        f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
        f"Proxy-Authorization: Bearer {token}\r\n\r\n"
    ).encode()


async def open_tunnel(
    proxy_port: int, upstream_port: int, token: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, float]:
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
    writer.write(connect_request(upstream_port, token))
    head = await reader.readuntil(b"\r\n\r\n")
    elapsed = time.perf_counter() - t0
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head.decode("latin-1", "replace"))
    return reader, writer, elapsed


async def _connect(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def _drain_into_nothing(sock: socket.socket, size: int, got: int = 0) -> int:
    """Asks the source for ``size`` bytes and counts them as they arrive; closes."""
    loop = asyncio.get_running_loop()
    buffer = bytearray(RECV_BYTES)
    try:
        await loop.sock_sendall(sock, f"{size}\n".encode())
        while n := await loop.sock_recv_into(sock, buffer):
            got += n
    finally:
        sock.close()
    return got


async def direct(upstream_port: int, size: int) -> int:
    return await _drain_into_nothing(await _connect(upstream_port), size)


async def tunnelled(proxy_port: int, upstream_port: int, token: str, size: int) -> int:
    loop = asyncio.get_running_loop()
    sock = await _connect(proxy_port)
    await loop.sock_sendall(sock, connect_request(upstream_port, token))
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = await loop.sock_recv(sock, 4096)
        if not chunk:
            raise RuntimeError(f"proxy closed during CONNECT: {head!r}")
        head += chunk
    head, _, extra = head.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        sock.close()
        raise RuntimeError(head.decode("latin-1", "replace"))
    return await _drain_into_nothing(sock, size, got=len(extra))


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    user, system = cpu_split(pid)
    return user + system


def cpu_split(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process in seconds: Python's work vs the kernel's (syscalls)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def per_setup(before: tuple[float, float], pid: int, count: int) -> dict[str, float]:
    """The proxy's CPU per set-up since ``before``, in ms: total, user (Python), system."""
    user, system = cpu_split(pid)
    du, ds = user - before[0], system - before[1]
    return {
        "proxy_cpu_ms_per_setup": round((du + ds) / count * 1e3, 3),
        "proxy_user_ms_per_setup": round(du / count * 1e3, 3),
        "proxy_sys_ms_per_setup": round(ds / count * 1e3, 3),
    }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(values) * 1000, 3),
        "p99_ms": round(pct(values, 0.99) * 1000, 3),
        "max_ms": round(max(values) * 1000, 3),
    }


async def bulk(
    mib: int, proxy_port: int, upstream_port: int, token: str, pid: int
) -> dict[str, Any]:
    """One stream of ``mib`` MiB direct, then through a tunnel; CPU of proxy and endpoints."""
    size, gib = mib * 1024 * 1024, mib / 1024
    t0, own0 = time.perf_counter(), cpu_seconds(os.getpid())
    assert await direct(upstream_port, size) == size
    d = time.perf_counter() - t0
    own_direct = cpu_seconds(os.getpid()) - own0
    t0, cpu0, own0 = time.perf_counter(), cpu_seconds(pid), cpu_seconds(os.getpid())
    assert await tunnelled(proxy_port, upstream_port, token, size) == size
    p = time.perf_counter() - t0
    return {
        "mib": mib,
        "direct_mib_s": round(mib / d, 1),
        "proxy_mib_s": round(mib / p, 1),
        "ratio": round(d / p, 3),
        "proxy_cpu_s_per_gib": round((cpu_seconds(pid) - cpu0) / gib, 3),
        # The endpoints (upstream source + client, this process) for comparison.
        "endpoints_cpu_s_per_gib_direct": round(own_direct / gib, 3),
        "endpoints_cpu_s_per_gib_tunnel": round((cpu_seconds(os.getpid()) - own0) / gib, 3),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }


async def parallel(
    args: argparse.Namespace, proxy_port: int, upstream_port: int, token: str
) -> dict[str, Any]:
    """``--tunnels`` streams at once, direct and then tunnelled."""
    psize = args.parallel_mb * 1024 * 1024
    t0 = time.perf_counter()
    await asyncio.gather(*(direct(upstream_port, psize) for _ in range(args.tunnels)))
    d = time.perf_counter() - t0
    t0 = time.perf_counter()
    await asyncio.gather(
        *(tunnelled(proxy_port, upstream_port, token, psize) for _ in range(args.tunnels))
    )
    p = time.perf_counter() - t0
    total = args.parallel_mb * args.tunnels
    return {
        "streams": args.tunnels,
        "mib_total": total,
        "direct_mib_s": round(total / d, 1),
        "proxy_mib_s": round(total / p, 1),
        "ratio": round(d / p, 3),
    }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0)
    ring = tokens.KeyRing(active=tokens.generate_signing_key(now))
    tmp = Path(tempfile.mkdtemp(prefix="vivified-bench-proxy-"))
    jwks = tmp / "jwks.json"
    jwks.write_text(json.dumps(tokens.jwks(ring)))
    from tests.unit.egress_fixtures import egress_manifest  # noqa: PLC0415

    token = tokens.mint_plugin_token(
        ring,
        egress_manifest("bench", domains=(HOST,)),
        issuer=ISS,
        audience=AUD,
        ttl_seconds=3600,
        now=now,
    ).token

    upstream = await asyncio.start_server(source, "127.0.0.1", 0, backlog=1024)
    upstream_port = int(upstream.sockets[0].getsockname()[1])
    config = tmp / "config.json"
    config.write_text(
        json.dumps(
            {
                "jwks": str(jwks),
                "upstream_port": upstream_port,
                "kernel_splice": not args.transport_relay,
                "profile": str(Path(args.profile).resolve()) if args.profile else "",
            }
        )
    )
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-proxy", str(config)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": f"{REPO / 'operator'}:{REPO}"},
    )
    try:
        assert proc.stdout is not None
        proxy_port = int(proc.stdout.readline())
        results: dict[str, Any] = {}
        await tunnelled(proxy_port, upstream_port, token, 1024)  # warm up (token cache)

        if not args.setup_only:
            results["bulk"] = await bulk(args.mb, proxy_port, upstream_port, token, proc.pid)
            results["parallel"] = await parallel(args, proxy_port, upstream_port, token)

        if args.profile:
            proc.send_signal(signal.SIGUSR1)
            await asyncio.sleep(0.5)
        cpu0 = cpu_split(proc.pid)
        burst = await asyncio.gather(
            *(open_tunnel(proxy_port, upstream_port, token) for _ in range(args.tunnels))
        )
        results["setup_burst"] = {
            "tunnels": args.tunnels,
            **ms([b[2] for b in burst]),
            **per_setup(cpu0, proc.pid, args.tunnels),
        }
        cpu0 = cpu_split(proc.pid)
        setups: list[float] = []
        for _ in range(args.setups):
            _, writer, elapsed = await open_tunnel(proxy_port, upstream_port, token)
            setups.append(elapsed)
            writer.close()
        results["setup_with_open_tunnels"] = {
            "open_tunnels": args.tunnels,
            "setups": args.setups,
            **ms(setups),
            **per_setup(cpu0, proc.pid, args.setups),
        }
        for _, writer, _ in burst:
            writer.close()
        results["setup_with_open_tunnels"]["load_average"] = [round(x, 2) for x in os.getloadavg()]
        if args.profile:
            proc.send_signal(signal.SIGUSR2)
            assert proc.stdout.readline().strip() == "profiled"
        return results
    finally:
        proc.terminate()
        proc.wait(10)
        upstream.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=512)
    parser.add_argument("--tunnels", type=int, default=200)
    parser.add_argument("--setups", type=int, default=1000)
    parser.add_argument("--parallel-mb", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--transport-relay",
        action="store_true",
        help="relay CONNECT tunnels through asyncio transports instead of splice(2)",
    )
    parser.add_argument("--setup-only", action="store_true", help="skip the transfers")
    parser.add_argument("--profile", help="cProfile the proxy during set-ups; stats to FILE")
    parser.add_argument("--serve-proxy", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_proxy:
        asyncio.run(run_proxy(json.loads(Path(args.serve_proxy).read_text())))
        return
    results = asyncio.run(bench(args))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name, values in results.items():
        print(f"{name:26s} " + "  ".join(f"{k}={v}" for k, v in values.items()))


if __name__ == "__main__":
    main()
