"""The pinned puller's protocol through a fake connection: the pull requests it sends (group,
pin id, batch), the pin it learns and loses, and what it hands back when paused. Against a
real nats-server: tests/integration/test_events_lane.py and test_events_durability.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from vivified.dataplane.events.pull import Puller
from vivified.dataplane.events.stream import PRIORITY_GROUP


@dataclass
class Msg:
    subject: str
    headers: dict[str, str] | None = None
    data: bytes = b"{}"
    acks: list[str] = field(default_factory=list)

    async def nak(self, delay: float | None = None) -> None:
        self.acks.append(f"nak:{delay}")

    async def in_progress(self) -> None:
        self.acks.append("wpi")


class FakeNats:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any], str]] = []
        self.cb: Callable[[Any], Awaitable[None]] | None = None
        self.pulled = asyncio.Event()

    def new_inbox(self) -> str:
        return "_INBOX.t"

    async def subscribe(self, subject: str, cb: Callable[[Any], Awaitable[None]]) -> Any:
        assert subject == "_INBOX.t.*"
        self.cb = cb

        class Sub:
            async def unsubscribe(self) -> None:
                return None

        return Sub()

    async def publish(self, subject: str, payload: bytes, reply: str = "") -> None:
        self.requests.append((subject, json.loads(payload), reply))
        self.pulled.set()

    async def next_request(self) -> tuple[str, dict[str, Any], str]:
        while True:
            await self.pulled.wait()
            self.pulled.clear()
            return self.requests[-1]

    async def send(self, msg: Msg) -> None:
        assert self.cb is not None
        await self.cb(msg)


async def _puller(batch: int = 2) -> tuple[Puller, FakeNats]:
    nc = FakeNats()
    puller = Puller(nc, "S", "vd_a_T", batch=batch, expires=30.0)  # type: ignore[arg-type]
    await puller.start()
    puller.resume()
    return puller, nc


async def test_pulls_in_batches_as_the_pinned_client() -> None:
    puller, nc = await _puller(batch=2)
    try:
        subject, request, reply = await nc.next_request()
        assert subject == "$JS.API.CONSUMER.MSG.NEXT.S.vd_a_T"
        assert request == {"batch": 2, "expires": 30_000_000_000, "group": PRIORITY_GROUP}
        first = Msg("vivified.events.T", {"Nats-Pin-Id": "pin-1", "Nats-Msg-Id": "p/1"})
        await nc.send(first)
        assert puller.pin == "pin-1"
        # Events come with their own subject; the second fulfils the batch: pull again.
        await nc.send(Msg("vivified.events.T", {"Nats-Msg-Id": "p/2"}))
        _, again, reply2 = await nc.next_request()
        assert again["id"] == "pin-1"  # keeps the pin
        assert reply2 != reply
        taken: object = await puller.next(1.0)
        assert taken is first
        assert (await puller.next(1.0)) is not None
    finally:
        await puller.stop()


async def test_a_pin_mismatch_drops_the_pin_and_pulls_again() -> None:
    puller, nc = await _puller()
    try:
        _, _, reply = await nc.next_request()
        await nc.send(Msg("vivified.events.T", {"Nats-Pin-Id": "old"}))
        await nc.send(Msg(reply, {"Status": "423", "Description": "Nats-Pin-Id Mismatch"}))
        _, request, _ = await nc.next_request()
        assert puller.pin is None
        assert "id" not in request
    finally:
        await puller.stop()


async def test_pausing_hands_back_what_is_held_in_order() -> None:
    puller, nc = await _puller(batch=4)
    try:
        await nc.next_request()
        held = [Msg("vivified.events.T", {"Nats-Msg-Id": f"p/{n}"}) for n in range(3)]
        for msg in held:
            await nc.send(msg)
        await puller.touch()
        assert [m.acks for m in held] == [["wpi"]] * 3  # deadline pushed while one retries
        await puller.pause(2.0)
        assert [m.acks for m in held] == [["wpi", "nak:2.0"]] * 3
        late = Msg("vivified.events.T", {"Nats-Msg-Id": "p/9"})
        await nc.send(late)  # still in flight when paused: back at once
        assert late.acks == ["nak:2.0"]
        assert await puller.next(0.01) is None
    finally:
        await puller.stop()


async def test_an_idle_wait_ends_with_none_and_a_heartbeat_is_not_an_event() -> None:
    puller, nc = await _puller()
    try:
        _, _, reply = await nc.next_request()
        await nc.send(Msg(reply, {"Status": "100", "Description": "Idle Heartbeat"}))
        assert await puller.next(0.01) is None
    finally:
        await puller.stop()
