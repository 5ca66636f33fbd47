"""Benchmark: one delivery POST over a kept-alive connection, by client, in one run.

    python bench/delivery_post.py [--requests 5000]

The event lane POSTs each event to its subscriber one after another (in-flight 1), so what a
client costs per request is the lane's ceiling. A subscriber (aiohttp, its own process, as in
bench/events.py) answers 204; each client sends ``--requests`` POSTs of a 200-byte CloudEvent
with the lane's headers over one persistent connection. Reported per client: wall µs per
request and the client process's CPU µs per request (the number that matters on a shared
machine), and each client's ratio to aiohttp's. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
from aiohttp import web

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "operator"))

from vivified.dataplane.events.post import DeliveryClient  # noqa: E402

BODY = json.dumps(
    {
        "specversion": "1.0",
        "id": "bench-1",
        "type": "UserCreated",
        "source": "vivified://plugins/user-management",
        "data": {"user_id": "u1", "email": "u1@example.org"},
    }
).encode()
HEADERS = {
    "Content-Type": "application/cloudevents+json",
    "Authorization": "Bearer " + "x" * 600,  # a call token's size
    "Vivified-Delivery-Attempt": "1",
}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def serve(port: int) -> None:
    async def on_event(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/events", on_event)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


Post = Callable[[], Awaitable[int]]


async def measure(name: str, post: Post, n: int) -> dict[str, float | str]:
    for _ in range(200):  # warm: connection open, caches filled
        assert await post() == 204
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        await post()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {
        "client": name,
        "wall_us_per_post": round(wall * 1e6 / n, 1),
        "cpu_us_per_post": round(cpu * 1e6 / n, 1),
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=5000)
    n = parser.parse_args().requests
    port = _port()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/events"
    results = []
    try:
        for _ in range(300):  # the subscriber listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        async with aiohttp.ClientSession() as session:

            async def aio() -> int:
                async with session.post(url, data=BODY, headers=HEADERS) as r:
                    await r.read()
                    return r.status

            results.append(await measure("aiohttp 3.14 ClientSession", aio, n))
        async with httpx.AsyncClient() as hx:

            async def hxpost() -> int:
                return (await hx.post(url, content=BODY, headers=HEADERS)).status_code

            results.append(await measure("httpx 0.28 AsyncClient (pooled)", hxpost, n))
        own = DeliveryClient()

        async def ownpost() -> int:
            return (await own.post(url, BODY, HEADERS, timeout=10.0)).status

        results.append(await measure("vivified DeliveryClient (httptools)", ownpost, n))
        await own.close()
    finally:
        server.terminate()
        server.wait()
    base = float(results[0]["cpu_us_per_post"])
    for r in results:
        r["cpu_vs_aiohttp"] = round(float(r["cpu_us_per_post"]) / base, 3)
        print(json.dumps(r))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]))
    else:
        asyncio.run(main())
