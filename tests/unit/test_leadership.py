"""A replica follows its kopf peering (``shell/leadership.py``) on the fake API server: it
takes the lead when the leader's keep-alive lapses, and a replica that led exits when it is
outranked, because its own watches, queue, monitor and timers would go on writing."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import NoReturn

import pytest
from tests.fake_cluster import FakeCluster
from tests.fake_operator import Clock

from vivified import peering
from vivified.shell.leadership import EXIT_DEMOTED, Leadership, step_down

NAME, NAMESPACE = "vivified", "team-a"
LIFETIME = 10


@dataclass
class Replica:
    """One Leadership on the fake cluster, with what it did."""

    cluster: FakeCluster
    clock: Clock
    me: str
    priority: int
    calls: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        async def lead() -> None:
            self.calls.append("lead")

        async def demoted(reason: str) -> None:
            self.calls.append(f"exit: {reason}")

        self.leadership = Leadership(
            self.cluster, name=NAME, me=self.me, priority=self.priority,
            namespaces=[NAMESPACE], clock=self.clock, on_lead=lead, on_demoted=demoted,
        )  # fmt: skip


def keepalives(clock: Clock, **priorities: int) -> dict[str, object]:
    """A peering status in kopf's format: everyone seen just now."""
    seen = clock().isoformat()
    return {
        p: {"priority": n, "lifetime": LIFETIME, "lastseen": seen} for p, n in priorities.items()
    }


def publish(cluster: FakeCluster, status: dict[str, object]) -> None:
    obj = {"metadata": {"name": NAME, "namespace": NAMESPACE}, "status": status}
    cluster.put("KopfPeering", obj)


async def see(replica: Replica) -> float:
    """List the peering object as the watch would, and decide."""
    listing = await replica.cluster.list("KopfPeering", NAMESPACE)
    for item in listing["items"]:
        replica.leadership.observe(NAMESPACE, item)
    return await replica.leadership.decide()


async def test_a_leader_outranked_steps_down() -> None:
    """The regression: a demoted replica kept reconciling beside the new leader."""
    cluster, clock = FakeCluster(), Clock()
    a = Replica(cluster, clock, "a", 5)
    publish(cluster, keepalives(clock, a=5))
    await see(a)
    publish(cluster, keepalives(clock, a=5, debug=9))  # e.g. a higher explicit priority
    await see(a)
    assert a.calls == ["lead", f"exit: peering {NAME}: outranked after leading"]
    await see(a)
    assert len(a.calls) == 2, "steps down once"


async def test_a_standby_that_never_led_waits() -> None:
    cluster, clock = FakeCluster(), Clock()
    b = Replica(cluster, clock, "b", 4)
    publish(cluster, keepalives(clock, a=5, b=4))
    wait = await see(b)
    assert b.calls == []
    assert wait == LIFETIME, "looks again when the leader's keep-alive would lapse"


async def test_the_standby_takes_over_when_the_leaders_keepalive_lapses(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cluster, clock = FakeCluster(), Clock()
    b = Replica(cluster, clock, "b", 4)
    publish(cluster, keepalives(clock, a=5, b=4))
    await see(b)
    clock.advance(LIFETIME + 0.5)  # a was killed: no keep-alive since
    with caplog.at_level(logging.INFO, "vivified.shell.leadership"):
        await see(b)
    assert b.calls == ["lead"]
    assert "took over from a, last seen 10.5s ago (lifetime 10s)" in caplog.text


async def test_a_rejoining_replica_does_not_take_the_lead_back() -> None:
    """Oldest wins: the killed replica comes back newer than the one that replaced it."""
    cluster, clock = FakeCluster(), Clock()
    taken_over = peering.priority_for(clock())
    rejoined = peering.priority_for(clock() + timedelta(seconds=40))
    b = Replica(cluster, clock, "b", taken_over)
    publish(cluster, keepalives(clock, b=taken_over))
    await see(b)
    publish(cluster, keepalives(clock, b=taken_over, a2=rejoined))
    await see(b)
    assert b.calls == ["lead"]


async def test_no_decision_before_every_peering_object_is_seen() -> None:
    cluster, clock = FakeCluster(), Clock()
    a = Replica(cluster, clock, "a", 5)
    assert await a.leadership.decide() == float("inf")
    assert a.calls == []


async def test_the_watch_follows_the_peering_object() -> None:
    cluster, clock = FakeCluster(), Clock()
    a = Replica(cluster, clock, "a", 5)
    a.leadership.start()
    try:
        await asyncio.sleep(0.05)
        publish(cluster, keepalives(clock, a=5))
        for _ in range(100):
            if a.calls:
                break
            await asyncio.sleep(0.01)
        assert a.calls == ["lead"]
    finally:
        await a.leadership.stop()


async def test_step_down_stops_the_writers_before_it_exits() -> None:
    done: list[str] = []

    async def stop() -> None:
        done.append("stopped")

    def exit_process(code: int) -> NoReturn:
        done.append(f"exit {code}")
        raise SystemExit(code)

    with pytest.raises(SystemExit):
        await step_down("outranked", stop, exit_process=exit_process)
    assert done == ["stopped", f"exit {EXIT_DEMOTED}"]


async def test_step_down_exits_even_when_stopping_hangs() -> None:
    async def stop() -> None:
        await asyncio.sleep(60)

    codes: list[int] = []

    def exit_process(code: int) -> NoReturn:
        codes.append(code)
        raise SystemExit(code)

    with pytest.raises(SystemExit):
        await step_down("outranked", stop, grace_seconds=0.05, exit_process=exit_process)
    assert codes == [EXIT_DEMOTED]
