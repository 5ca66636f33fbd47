"""Revocation list: immutable, pruned once tokens would have expired, stable ConfigMap form."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from vivified.tokens import (
    RevocationList,
    RevocationListError,
    format_rfc3339,
    merge_revocations,
    parse_rfc3339,
    prune_revocations,
    revocations_from_configmap_data,
    revocations_to_configmap_data,
    revoke,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def test_empty_list() -> None:
    revocations = RevocationList()
    assert len(revocations) == 0
    assert "anything" not in revocations
    assert revocations.jtis == frozenset()


def test_revoke_returns_a_new_list() -> None:
    empty = RevocationList()
    one = revoke(empty, "a", NOW + HOUR)
    assert "a" in one
    assert "a" not in empty
    assert one["a"] == NOW + HOUR


def test_revoking_again_keeps_the_later_expiry() -> None:
    later = revoke(RevocationList(), "a", NOW + 2 * HOUR)
    assert revoke(later, "a", NOW + HOUR) is later
    assert revoke(later, "a", NOW + 3 * HOUR)["a"] == NOW + 3 * HOUR


def test_revoke_rejects_empty_jti_and_naive_times() -> None:
    with pytest.raises(ValueError, match="jti"):
        revoke(RevocationList(), "", NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        revoke(RevocationList(), "a", datetime(2025, 1, 1))


def test_entries_cannot_be_mutated() -> None:
    revocations = revoke(RevocationList(), "a", NOW)
    with pytest.raises(TypeError):
        revocations.entries["b"] = NOW  # type: ignore[index]


def test_a_list_works_as_revoked_jtis_for_verification() -> None:
    revocations = revoke(revoke(RevocationList(), "b", NOW), "a", NOW)
    assert sorted(revocations) == ["a", "b"]
    assert revocations.jtis == {"a", "b"}


def test_prune_keeps_entries_until_expiry_plus_grace() -> None:
    revocations = revoke(revoke(RevocationList(), "old", NOW - HOUR), "new", NOW + HOUR)
    assert set(prune_revocations(revocations, NOW, grace_seconds=60)) == {"new"}
    # Expired 30 s ago: still within a 60 s grace (a verifier's leeway may still accept it).
    recent = revoke(RevocationList(), "recent", NOW - timedelta(seconds=30))
    assert "recent" in prune_revocations(recent, NOW, grace_seconds=60)
    assert "recent" not in prune_revocations(recent, NOW, grace_seconds=0)


def test_prune_without_changes_returns_the_same_list() -> None:
    revocations = revoke(RevocationList(), "a", NOW + HOUR)
    assert prune_revocations(revocations, NOW) is revocations


def test_equality_and_hash_are_by_content() -> None:
    a = revoke(revoke(RevocationList(), "x", NOW), "y", NOW)
    b = revoke(revoke(RevocationList(), "y", NOW), "x", NOW)
    assert a == b
    assert hash(a) == hash(b)


def test_configmap_data_round_trips_and_is_canonical() -> None:
    revocations = revoke(revoke(RevocationList(), "b", NOW + HOUR), "a", NOW + 2 * HOUR)
    data = revocations_to_configmap_data(revocations)
    assert data == {
        "revoked.json": '{"revoked":{"a":"2025-03-01T14:00:00Z","b":"2025-03-01T13:00:00Z"},'
        '"version":1}'
    }
    assert revocations_from_configmap_data(data) == revocations


def test_configmap_data_is_independent_of_insertion_order() -> None:
    a = revoke(revoke(RevocationList(), "x", NOW), "y", NOW)
    b = revoke(revoke(RevocationList(), "y", NOW), "x", NOW)
    assert revocations_to_configmap_data(a) == revocations_to_configmap_data(b)


@pytest.mark.parametrize("data", [None, {}, {"other": "x"}])
def test_missing_configmap_or_key_is_an_empty_list(data: dict[str, str] | None) -> None:
    assert revocations_from_configmap_data(data) == RevocationList()


@pytest.mark.parametrize(
    "text",
    [
        "{",
        "[]",
        json.dumps({"version": 2, "revoked": {}}),
        json.dumps({"version": 1, "revoked": []}),
        json.dumps({"version": 1, "revoked": {"a": 5}}),
        json.dumps({"version": 1, "revoked": {"a": "tomorrow"}}),
        json.dumps({"version": 1, "revoked": {"a": "2025-01-01T00:00:00"}}),
    ],
)
def test_unreadable_configmap_data_raises(text: str) -> None:
    with pytest.raises(RevocationListError):
        revocations_from_configmap_data({"revoked.json": text})


def test_rfc3339_helpers() -> None:
    assert format_rfc3339(datetime(2025, 1, 2, 3, 4, 5, 999, tzinfo=UTC)) == "2025-01-02T03:04:05Z"
    assert parse_rfc3339("2025-01-02T03:04:05Z") == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_rfc3339("2025-01-02T05:04:05+02:00") == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def _listed(**expiry_hours: int) -> RevocationList:
    return RevocationList({jti: NOW + h * HOUR for jti, h in expiry_hours.items()})


@pytest.mark.parametrize(
    ("reason", "lists", "expected"),
    [
        ("nothing to merge is the empty list", (), {}),
        ("one list is itself", (_listed(a=1),), {"a": 1}),
        (
            "a standby's stale memory must not drop what the stored list gained",
            (_listed(a=1), _listed(a=1, b=2)),
            {"a": 1, "b": 2},
        ),
        (
            "the stored list must not drop what memory holds (a write that raced)",
            (_listed(a=1, c=3), _listed(b=2)),
            {"a": 1, "b": 2, "c": 3},
        ),
        ("the later expiry wins, whichever list holds it", (_listed(a=3), _listed(a=1)), {"a": 3}),
        ("and in the other order", (_listed(a=1), _listed(a=3)), {"a": 3}),
    ],
)
def test_merge_revocations(
    reason: str, lists: tuple[RevocationList, ...], expected: dict[str, int]
) -> None:
    merged = merge_revocations(*lists)
    assert {jti: (exp - NOW) // HOUR for jti, exp in merged.items()} == expected, reason
