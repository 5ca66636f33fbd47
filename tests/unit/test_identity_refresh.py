"""The periodic identity refresh: the leader rotates, a standby only follows.

A standby used to run the same refresh as the leader: when a rotation was due both replicas
wrote the key ring (the loser got a 409), and both applied the JWKS. Now a standby's refresh
reads the key ring and the revocation list and writes nothing. Every row runs real
``Identity`` objects against the fake API server and counts its writes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from tests.fake_cluster import FakeCluster
from tests.fake_operator import Clock

from vivified.settings import OperatorSettings
from vivified.shell.identity import Identity

SETTINGS = OperatorSettings()
STAGE_DUE = SETTINGS.signing_key_max_age_seconds - SETTINGS.signing_key_publish_ahead_seconds


def replica(cluster: FakeCluster, clock: Clock) -> Identity:
    return Identity(cluster, SETTINGS, clock)


@dataclass
class Ground:
    cluster: FakeCluster
    clock: Clock
    leader: Identity
    standby: Identity


async def ground() -> Ground:
    cluster, clock = FakeCluster(), Clock()
    leader, standby = replica(cluster, clock), replica(cluster, clock)
    await leader.load()
    await standby.load()
    return Ground(cluster, clock, leader, standby)


async def standby_when_a_stage_is_due(g: Ground) -> None:
    g.clock.advance(STAGE_DUE)
    await g.standby.refresh(leading=False)


async def leader_when_a_stage_is_due(g: Ground) -> None:
    g.clock.advance(STAGE_DUE)
    await g.leader.refresh(leading=True)


async def standby_after_the_leader_staged(g: Ground) -> None:
    g.clock.advance(STAGE_DUE)
    await g.leader.refresh(leading=True)
    g.cluster.writes.clear()
    await g.standby.refresh(leading=False)


async def standby_after_the_leader_revoked(g: Ground) -> None:
    await g.leader.revoke("by-leader", g.clock() + timedelta(hours=1))
    g.cluster.writes.clear()
    await g.standby.refresh(leading=False)


@dataclass(frozen=True)
class Case:
    reason: str
    scenario: Callable[[Ground], Awaitable[None]]
    writes: int
    standby_knows_next_key: bool
    standby_knows_revocation: bool = False


CASES = [
    Case("a standby writes nothing even when a rotation step is due (the leader takes it)",
         standby_when_a_stage_is_due, 0, False),
    Case("the leader stages the next key (the Secret and the JWKS: two writes)",
         leader_when_a_stage_is_due, 2, False),
    Case("a standby's refresh picks up the key the leader staged, without a write",
         standby_after_the_leader_staged, 0, True),
    Case("a standby's refresh picks up the leader's revocations, without a write",
         standby_after_the_leader_revoked, 0, False, True),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.reason for c in CASES])
async def test_only_the_leader_writes_on_refresh(case: Case) -> None:
    g = await ground()
    g.cluster.writes.clear()
    await case.scenario(g)
    assert g.cluster.write_count == case.writes, (case.reason, dict(g.cluster.writes))
    assert (g.standby.keyring.next is not None) == case.standby_knows_next_key, case.reason
    assert ("by-leader" in g.standby.revocations) == case.standby_knows_revocation, case.reason
    assert g.standby.keyring.active.kid == g.leader.keyring.active.kid, case.reason


async def test_a_standby_before_any_key_ring_keeps_waiting_without_a_write() -> None:
    """No Secret yet (the leader has not created it): the standby neither creates one nor
    fails; it has no key ring until the leader's appears."""
    cluster, clock = FakeCluster(), Clock()
    standby = replica(cluster, clock)
    await standby.refresh(leading=False)
    assert cluster.write_count == 0
    with pytest.raises(RuntimeError, match="identity not loaded"):
        _ = standby.keyring
    leader = replica(cluster, clock)
    await leader.refresh(leading=True)
    await standby.refresh(leading=False)
    assert standby.keyring.active.kid == leader.keyring.active.kid


async def test_a_peered_replica_starting_creates_the_first_key_ring_but_never_rotates() -> None:
    """At start-up a peered replica does not lead yet: on a first install it creates the key
    ring (someone must; a racing create gets 409), later it only follows, even when a
    rotation step is due; a standalone operator (leading) takes the step at start."""
    cluster, clock = FakeCluster(), Clock()
    first = replica(cluster, clock)
    await first.start(leading=False)
    created = cluster.write_count
    assert created >= 1
    assert first.keyring is not None
    clock.advance(STAGE_DUE)
    restarted = replica(cluster, clock)
    await restarted.start(leading=False)
    assert cluster.write_count == created, dict(cluster.writes)
    assert restarted.keyring.next is None
    standalone = replica(cluster, clock)
    await standalone.start(leading=True)
    assert cluster.write_count > created
    assert standalone.keyring.next is not None
