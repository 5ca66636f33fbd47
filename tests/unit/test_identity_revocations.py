"""Two operator replicas share one revocation list: a revocation never drops another's.

The failover bug (issue 13): a standby loads the list at start-up, takes over after the active
replica revoked more tokens and died, and its first revocation wrote its stale list over the
ConfigMap. Every row runs real ``Identity`` objects against the fake API server, which answers
a stale resourceVersion with 409 as kube-apiserver does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from tests.fake_cluster import FakeCluster
from tests.fake_operator import Clock

from vivified import tokens
from vivified.settings import OperatorSettings
from vivified.shell.identity import REVOKE_ATTEMPTS, Identity
from vivified.shell.kube import KubeError

SETTINGS = OperatorSettings()
LATER = timedelta(hours=1)


def stored(cluster: FakeCluster) -> set[str]:
    cm = cluster.stored("ConfigMap", SETTINGS.operator_namespace, SETTINGS.revocations_configmap)
    return set(tokens.revocations_from_configmap_data((cm or {}).get("data")))


def replica(cluster: FakeCluster, clock: Clock) -> Identity:
    return Identity(cluster, SETTINGS, clock)


async def standby_takes_over(cluster: FakeCluster, clock: Clock) -> None:
    """B loads, A revokes and dies, B revokes: A's jti must stay."""
    a, b = replica(cluster, clock), replica(cluster, clock)
    await a.load()
    await b.load()
    await a.revoke("by-a", clock() + LATER)
    await b.revoke("by-b", clock() + LATER)


async def writer_between_read_and_write(cluster: FakeCluster, clock: Clock) -> None:
    """Another replica writes after B's read, before B's write: 409, merge again."""
    a, b = replica(cluster, clock), replica(cluster, clock)
    await a.load()
    await b.load()
    await a.revoke("first", clock() + LATER)
    raced = False

    def other_writer(c: FakeCluster, kind: str, live: dict[str, Any]) -> None:
        nonlocal raced
        if kind == "ConfigMap" and not raced:
            raced = True
            data = tokens.revocations_to_configmap_data(
                tokens.revoke(
                    tokens.revocations_from_configmap_data(live["data"]), "by-a", clock() + LATER
                )
            )
            c.put("ConfigMap", {**live, "data": data})

    cluster.before_update.append(other_writer)
    await b.revoke("by-b", clock() + LATER)


async def both_create_the_first_list(cluster: FakeCluster, clock: Clock) -> None:
    """No list yet: B's create loses to A's (409 AlreadyExists) and merges into it."""
    a, b = replica(cluster, clock), replica(cluster, clock)
    await a.load()
    await b.load()
    create = cluster.create

    async def a_first(obj: Any) -> dict[str, Any]:
        cluster.create = create  # type: ignore[method-assign]
        await a.revoke("by-a", clock() + LATER)
        return await create(obj)

    cluster.create = a_first  # type: ignore[method-assign]
    await b.revoke("by-b", clock() + LATER)


async def expired_entries_are_pruned(cluster: FakeCluster, clock: Clock) -> None:
    """Merging keeps everything *until expiry*; an expired jti may go (the list is bounded)."""
    a, b = replica(cluster, clock), replica(cluster, clock)
    await a.load()
    await b.load()
    await a.revoke("short-lived", clock() + timedelta(minutes=1))
    clock.advance(3600)
    await b.revoke("by-b", clock() + LATER)


@dataclass(frozen=True)
class Case:
    reason: str
    scenario: Callable[[FakeCluster, Clock], Awaitable[None]]
    expected: set[str]
    conflicts: int


CASES = [
    Case("a standby's stale start-up list must not drop the killed replica's revocation",
         standby_takes_over, {"by-a", "by-b"}, 0),
    Case("a write that raced is answered 409 and merged again, not overwritten",
         writer_between_read_and_write, {"first", "by-a", "by-b"}, 1),
    Case("two replicas creating the first list: the loser merges into the winner's",
         both_create_the_first_list, {"by-a", "by-b"}, 0),
    Case("an expired entry is pruned by the merge (never one that has not expired)",
         expired_entries_are_pruned, {"by-b"}, 0),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.reason for c in CASES])
async def test_revocations_from_two_replicas_merge(case: Case) -> None:
    cluster, clock = FakeCluster(), Clock()
    await case.scenario(cluster, clock)
    assert stored(cluster) == case.expected, case.reason
    assert cluster.conflicts == case.conflicts, case.reason


async def test_a_list_that_keeps_changing_gives_up_with_the_409() -> None:
    """Bounded: after REVOKE_ATTEMPTS lost races the 409 reaches the reconcile (retried)."""
    cluster, clock = FakeCluster(), Clock()
    a = replica(cluster, clock)
    await a.load()
    await a.revoke("seed", clock() + LATER)

    def always_first(c: FakeCluster, kind: str, live: dict[str, Any]) -> None:
        c.put(kind, dict(live))  # a new resourceVersion every time

    cluster.before_update.append(always_first)
    with pytest.raises(KubeError) as raised:
        await a.revoke("never", clock() + LATER)
    assert raised.value.status == 409
    assert cluster.conflicts == REVOKE_ATTEMPTS
    assert stored(cluster) == {"seed"}
