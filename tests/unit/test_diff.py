"""Containment decides whether a child must be applied: server defaults never cause a write."""

from decimal import Decimal
from typing import Any

import pytest

from vivified.diff import APPLIED_HASH_ANNOTATION, contains, needs_apply, quantity_value, stamped


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", Decimal(1)),
        ("500m", Decimal("0.5")),
        ("1500m", Decimal("1.5")),
        ("64Mi", Decimal(64 * 2**20)),
        ("1Gi", Decimal(2**30)),
        ("2k", Decimal(2000)),
        ("1e3", Decimal(1000)),
        ("0.5", Decimal("0.5")),
    ],
)
def test_quantities_are_read_by_value(text: str, value: Decimal) -> None:
    assert quantity_value(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1Xi", "http", "Mi"])
def test_non_quantities_are_not_numbers(text: str) -> None:
    assert quantity_value(text) is None


def test_live_with_server_defaults_contains_what_we_rendered() -> None:
    desired = {"spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "a"}]}}}}
    live = {
        "spec": {
            "replicas": 1,
            "progressDeadlineSeconds": 600,
            "template": {"spec": {"containers": [{"name": "a", "imagePullPolicy": "Always"}]}},
        }
    }
    assert contains(live, desired)


def test_canonicalised_quantities_count_as_equal() -> None:
    desired = {"limits": {"cpu": "1000m", "memory": "1024Mi"}}
    live = {"limits": {"cpu": "1", "memory": "1Gi"}}
    assert contains(live, desired)


def test_a_hand_edited_value_is_not_contained() -> None:
    assert not contains({"limits": {"cpu": "2"}}, {"limits": {"cpu": "1"}})


def test_a_missing_key_is_not_contained() -> None:
    assert not contains({"a": 1}, {"a": 1, "b": 2})


def test_lists_must_match_in_length_and_order() -> None:
    assert not contains({"l": [1, 2, 3]}, {"l": [1, 2]})
    assert not contains({"l": [2, 1]}, {"l": [1, 2]})
    assert contains({"l": [{"a": 1, "x": 0}]}, {"l": [{"a": 1}]})


def test_types_must_agree() -> None:
    assert not contains("1", 1)
    assert not contains({"a": "x"}, {"a": {"b": 1}})
    assert not contains({"a": "xy"}, {"a": ["x", "y"]})


def test_stamped_objects_carry_a_stable_fingerprint() -> None:
    obj: dict[str, Any] = {
        "kind": "Service",
        "metadata": {"name": "a", "annotations": {"k": "v"}},
        "spec": {},
    }
    first, second = stamped(obj), stamped(dict(obj))
    assert first == second
    assert first["metadata"]["annotations"]["k"] == "v"
    assert APPLIED_HASH_ANNOTATION in first["metadata"]["annotations"]
    assert APPLIED_HASH_ANNOTATION not in obj["metadata"]["annotations"], "input untouched"


def test_a_field_we_stop_rendering_changes_the_fingerprint() -> None:
    before = stamped({"kind": "X", "metadata": {"name": "a"}, "spec": {"a": 1, "b": 2}})
    after = stamped({"kind": "X", "metadata": {"name": "a"}, "spec": {"a": 1}})
    assert needs_apply(after, before), "containment alone would miss the removed key"


def test_unchanged_object_needs_no_apply_and_missing_one_does() -> None:
    desired = stamped({"kind": "X", "metadata": {"name": "a"}, "spec": {"a": 1}})
    live = {**desired, "status": {"x": 1}, "metadata": {**desired["metadata"], "uid": "u"}}
    assert not needs_apply(desired, live)
    assert needs_apply(desired, None)
