"""Who leads a kopf peering (``vivified.peering``): kopf's rule, oldest-wins priorities, and
when a replica must step down."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vivified import peering
from vivified.settings import OperatorSettings
from vivified.shell.main import peering as configured_peering

NOW = datetime(2026, 12, 2, 13, 0, tzinfo=UTC)


def peer(name: str, priority: int, seen_ago: float = 1.0, lifetime: float = 30.0) -> peering.Peer:
    return peering.Peer(name, priority, NOW - timedelta(seconds=seen_ago), lifetime)


@pytest.mark.parametrize(
    ("reason", "peers", "expected"),
    [
        ("alone: leads", [], "leading"),
        ("only its own entry: leads", [peer("me", 5)], "leading"),
        ("a lower live peer does not block", [peer("b", 4)], "leading"),
        ("a higher live peer pauses it", [peer("b", 6)], "outranked"),
        ("an equal live peer pauses both (kopf's rule)", [peer("b", 5)], "tied"),
        ("a higher peer past its lifetime is dead: leads", [peer("b", 6, seen_ago=31)], "leading"),
        ("outranked beats tied", [peer("b", 5), peer("c", 9)], "outranked"),
    ],
)
def test_standing(reason: str, peers: list[peering.Peer], expected: str) -> None:
    assert peering.standing(peers, "me", 5, NOW) == expected, reason


@pytest.mark.parametrize(
    ("reason", "led", "standing", "expected"),
    [
        ("leading is leading, whatever came before", False, "leading", "lead"),
        ("still leading", True, "leading", "lead"),
        ("a standby that never led waits (kopf pauses it)", False, "outranked", "stand-by"),
        ("a tie before ever leading: wait, kopf pauses it", False, "tied", "stand-by"),
        ("outranked after leading: its own parts would go on writing", True, "outranked", "exit"),
        ("tied after leading: the same", True, "tied", "exit"),
    ],
)
def test_after(reason: str, led: bool, standing: peering.Standing, expected: str) -> None:
    assert peering.after(led, standing) == expected, reason


@pytest.mark.parametrize(
    ("reason", "standings", "expected"),
    [
        ("every object says leading", ["leading", "leading"], "leading"),
        ("one namespace's peering pauses the whole operator", ["leading", "tied"], "tied"),
        ("outranked anywhere is outranked", ["tied", "outranked", "leading"], "outranked"),
    ],
)
def test_worst(reason: str, standings: list[peering.Standing], expected: str) -> None:
    assert peering.worst(standings) == expected, reason


def test_the_oldest_replica_ranks_highest_to_the_microsecond() -> None:
    """The regression: a random priority let a restarted replica outrank the leader."""
    first, restarted = NOW, NOW + timedelta(microseconds=1)
    assert peering.priority_for(first) > peering.priority_for(restarted) > 0
    assert peering.priority_for(NOW + timedelta(days=365 * 1000)) > 0


def test_unset_priority_comes_from_the_start_time_and_a_set_one_is_kept() -> None:
    settings = OperatorSettings(peering_name="ha")
    _, leader = configured_peering(settings, NOW)
    _, rejoined = configured_peering(settings, NOW + timedelta(seconds=40))
    assert leader > rejoined
    assert peering.standing([peer("leader", leader)], "rejoined", rejoined, NOW) == "outranked"
    assert configured_peering(OperatorSettings(peering_priority=7), NOW) == (None, 7)


def test_recheck_at_the_first_blockers_deadline() -> None:
    peers = [peer("b", 9, seen_ago=10, lifetime=30), peer("c", 7, seen_ago=25, lifetime=30)]
    assert peering.seconds_to_recheck(peers, "me", 5, NOW) == 5.0
    assert peering.seconds_to_recheck([peer("low", 1)], "me", 5, NOW) == float("inf")


def test_status_entries_as_kopf_writes_them() -> None:
    status = {
        "a": {"priority": 3, "lifetime": 10, "lastseen": "2026-12-02T12:59:55.123456+00:00"},
        "broken": {"priority": "x"},
        "not-a-mapping": None,
    }
    (found,) = peering.peers_from_status(status)
    assert (found.identity, found.priority, found.lifetime_seconds) == ("a", 3, 10.0)
    assert found.alive(NOW)
    assert not found.alive(NOW + timedelta(seconds=6))
