"""The plugin index: id ownership, the dependency graph, and who to wake when a plugin changes."""

from typing import Any

from vivified.dependencies import analyze
from vivified.registry import PluginRegistry


def plugin(
    plugin_id: object,
    deps: object = (),
    phase: str | None = None,
    created: str = "2026-01-01T00:00:00Z",
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"creationTimestamp": created},
        "spec": {
            "manifest": {
                "id": plugin_id,
                "dependencies": list(deps) if isinstance(deps, tuple) else deps,
            }
        },
    }
    if phase:
        body["status"] = {"phase": phase}
    return body


def test_dependents_are_woken_when_a_dependency_appears() -> None:
    registry = PluginRegistry()
    registry.upsert(("ns", "b"), plugin("b", ("a",)))
    assert registry.upsert(("ns", "a"), plugin("a")) == {("ns", "b")}


def test_dependents_are_woken_when_a_dependency_becomes_active() -> None:
    registry = PluginRegistry()
    registry.upsert(("ns", "b"), plugin("b", ("a",)))
    registry.upsert(("ns", "a"), plugin("a"))
    assert registry.upsert(("ns", "a"), plugin("a", phase="Active")) == {("ns", "b")}
    assert registry.active_ids() == {"a"}


def test_an_unchanged_upsert_wakes_nobody() -> None:
    registry = PluginRegistry()
    registry.upsert(("ns", "b"), plugin("b", ("a",)))
    registry.upsert(("ns", "a"), plugin("a"))
    assert registry.upsert(("ns", "a"), plugin("a")) == set()


def test_unrelated_plugins_are_never_woken() -> None:
    registry = PluginRegistry()
    registry.upsert(("ns", "c"), plugin("c"))
    registry.upsert(("ns", "b"), plugin("b", ("a",)))
    assert ("ns", "c") not in registry.upsert(("ns", "a"), plugin("a", phase="Active"))


def test_the_oldest_claimant_owns_an_id_and_the_later_one_is_woken_on_removal() -> None:
    registry = PluginRegistry()
    registry.upsert(("one", "a"), plugin("a", created="2026-01-01T00:00:00Z"))
    assert registry.upsert(("two", "a"), plugin("a", created="2026-02-01T00:00:00Z")) == {
        ("one", "a")
    }
    assert registry.owner_of("a") == ("one", "a")
    assert registry.remove(("one", "a")) == {("two", "a")}
    assert registry.owner_of("a") == ("two", "a")


def test_ties_on_creation_time_break_by_key() -> None:
    registry = PluginRegistry()
    registry.upsert(("b", "a"), plugin("a"))
    registry.upsert(("a", "a"), plugin("a"))
    assert registry.owner_of("a") == ("a", "a")


def test_graph_counts_only_owners() -> None:
    registry = PluginRegistry()
    registry.upsert(("one", "a"), plugin("a", ("x",), created="2026-01-01T00:00:00Z"))
    registry.upsert(("two", "a"), plugin("a", ("y",), created="2026-03-01T00:00:00Z"))
    assert registry.graph() == {"a": ("x",)}


def test_a_duplicate_that_is_active_does_not_make_the_id_active() -> None:
    registry = PluginRegistry()
    registry.upsert(("one", "a"), plugin("a", created="2026-01-01T00:00:00Z"))
    registry.upsert(("two", "a"), plugin("a", phase="Active", created="2026-02-01T00:00:00Z"))
    assert registry.active_ids() == set()


def test_hostile_bodies_are_indexed_without_error() -> None:
    registry = PluginRegistry()
    registry.upsert(("ns", "x"), {"spec": "nonsense"})
    registry.upsert(("ns", "y"), plugin(42, deps="not-a-list"))
    registry.upsert(("ns", "z"), plugin("z", deps=(1, None, "ok")))
    registry.upsert(("ns", "w"), {"metadata": None, "status": ["x"], "spec": {"manifest": []}})
    assert registry.get(("ns", "y")).plugin_id is None  # type: ignore[union-attr]
    assert registry.graph() == {"z": ("ok",)}
    assert len(registry) == 4


def test_removing_an_unknown_key_is_harmless() -> None:
    assert PluginRegistry().remove(("ns", "nope")) == set()


def test_the_views_answer_like_the_materialised_graph_and_active_set() -> None:
    registry = PluginRegistry()
    registry.upsert(("ns", "a"), plugin("a", deps=("b",), phase="Active"))
    registry.upsert(("ns", "b"), plugin("b", deps=("a",), phase="Pending"))
    registry.upsert(("ns2", "a"), plugin("a", phase="Active", created="2026-01-02T00:00:00Z"))
    graph, active = registry.graph_view(), registry.active_view()
    assert dict(graph) == registry.graph()
    assert set(active) == registry.active_ids() == {"a"}
    assert graph.get("missing") is None
    assert "missing" not in graph
    assert "b" not in active


def test_a_reconcile_lookup_does_not_scan_every_plugin() -> None:
    registry = PluginRegistry()
    for i in range(2000):
        registry.upsert(("ns", f"p{i}"), plugin(f"p{i}", phase="Active"))
    calls = 0
    real = registry.owner_of

    def counting(plugin_id: str) -> tuple[str, str] | None:
        nonlocal calls
        calls += 1
        return real(plugin_id)

    registry.owner_of = counting  # type: ignore[method-assign]
    verdict = analyze("p1", registry.graph_view(), registry.active_view())
    assert verdict.ready
    assert calls < 10, "O(neighbours), not O(plugins)"
