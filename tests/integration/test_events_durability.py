"""Nothing acknowledged is lost: kill the core, or nats-server, with 1,000 events in flight."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from events_support import Subscriber, World, manifest, record, user_created
from nats_support import NatsServer

HERE = Path(__file__).resolve().parent.parent
N = 1000


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class CoreProcess:
    def __init__(self, config: dict[str, object], tmp: Path, token: str) -> None:
        self.path = tmp / "core.json"
        self.path.write_text(json.dumps(config))
        self.url = f"http://127.0.0.1:{config['port']}"
        self.token = token
        self.log = tmp / "core.log"
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(HERE / "events_core.py"), str(self.path)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        status_url = f"{self.url}/v1/events/status/user-management"
        headers = {"Authorization": f"Bearer {self.token}"}
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                try:  # 503 until the lane is connected to JetStream
                    async with http.get(status_url, headers=headers) as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"core did not start: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)


async def _publish_all(core: CoreProcess, n: int) -> set[str]:
    """Publishes n events (16 at a time); returns the ids the core acknowledged (201)."""
    acked: set[str] = set()
    sem = asyncio.Semaphore(16)
    url = core.url
    headers = {"Authorization": f"Bearer {core.token}"}
    async with aiohttp.ClientSession(headers=headers) as http:

        async def one(i: int) -> None:
            async with sem, http.post(f"{url}/v1/events", json=user_created(i)) as r:
                if r.status == 201:
                    acked.add(f"evt-{i}")

        await asyncio.gather(*(one(i) for i in range(n)))
    return acked


async def _wait_all(sub: Subscriber, acked: set[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not acked <= set(sub.ids()):
        if time.monotonic() > deadline:
            missing = len(acked - set(sub.ids()))
            raise AssertionError(f"{missing} acknowledged events never delivered")
        await asyncio.sleep(0.1)


async def _setup(nats_server: NatsServer, tmp_path: Path) -> tuple[Subscriber, CoreProcess, World]:
    sub = await Subscriber(delay=0.002).start()
    world = World()
    publisher = manifest("user-management", publishes=["UserCreated"])
    world.directory.put(record(publisher))
    config = world.process_config(
        tmp_path,
        nats_url=nats_server.url,
        port=_port(),
        plugins=[
            {"manifest": publisher, "url": ""},
            {"manifest": manifest("accounting", subscribes=["UserCreated"]), "url": sub.url},
        ],
    )
    core = CoreProcess(config, tmp_path, world.token_for("user-management"))
    await core.start()
    return sub, core, world


async def test_kill_the_core_with_1000_in_flight(nats_server: NatsServer, tmp_path: Path) -> None:
    sub, core, world = await _setup(nats_server, tmp_path)
    try:
        acked = await _publish_all(core, N)
        assert len(acked) == N
        while len(sub.received) < 50:
            await asyncio.sleep(0.01)
        core.kill()
        delivered_before = len(set(sub.ids()))
        assert delivered_before < N, "all delivered before the kill: nothing was in flight"
        await core.start()
        await _wait_all(sub, acked)
        # The restarted core signs with the same key (the chart's Secret): tokens verify.
        assert world.delivered_by_core("accounting", sub.tokens[-1]).caller == "user-management"
        dupes = len(sub.ids()) - len(set(sub.ids()))
        print(
            f"\nkilled core with {N - delivered_before} undelivered; "
            f"all {N} delivered after restart, {dupes} redelivered twice"
        )
    finally:
        core.stop()
        await sub.stop()


async def test_restart_nats_server_with_1000_in_flight(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    sub, core, _ = await _setup(nats_server, tmp_path)
    try:
        acked = await _publish_all(core, N)
        assert len(acked) == N
        while len(sub.received) < 50:
            await asyncio.sleep(0.01)
        nats_server.restart(kill=True)
        delivered_before = len(set(sub.ids()))
        assert delivered_before < N
        await _wait_all(sub, acked)
        dupes = len(sub.ids()) - len(set(sub.ids()))
        print(
            f"\nkilled nats-server with {N - delivered_before} undelivered; "
            f"all {N} delivered after restart, {dupes} redelivered twice"
        )
    finally:
        core.stop()
        await sub.stop()


async def test_a_lost_jetstream_store_is_rebuilt_and_delivery_resumes(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """nats-server comes back with an empty store (a lost volume): the lane makes its streams
    and consumers again, publishes are stored and delivered once more, without a core
    restart. What the lost store held is gone (the chaos checker's nats-wiped row)."""
    sub, core, _ = await _setup(nats_server, tmp_path)
    try:
        before = await _publish_all(core, 20)
        assert len(before) == 20
        await _wait_all(sub, before)
        nats_server.stop(kill=True)
        shutil.rmtree(nats_server.store / "js")
        nats_server.start()
        headers = {"Authorization": f"Bearer {core.token}"}
        deadline = time.monotonic() + 60
        async with aiohttp.ClientSession(headers=headers) as http:
            while True:  # 503 engine_unavailable until the streams are back
                async with http.post(f"{core.url}/v1/events", json=user_created(100)) as r:
                    if r.status == 201:
                        break
                    assert r.status == 503, await r.text()
                assert time.monotonic() < deadline, "the event stream was never re-created"
                await asyncio.sleep(0.2)
        after = {f"evt-{i}" for i in range(101, 121)}
        assert await _publish_all(core, 121) >= after
        await _wait_all(sub, after | {"evt-100"}, timeout=60)
        assert "re-creating the streams" in core.log.read_text()
    finally:
        core.stop()
        await sub.stop()
