"""Dependency verdicts: missing, not yet Active, and cycles reported on every member."""

from vivified.dependencies import DependencyVerdict, analyze, find_cycle

GRAPH = {
    "a": (),
    "b": ("a",),
    "x": ("y",),
    "y": ("x",),
    "p": ("q",),
    "q": ("r",),
    "r": ("p",),
    "self": ("self",),
    "lonely": ("ghost",),
    "onto-cycle": ("x",),
}


def test_no_dependencies_is_ready() -> None:
    verdict = analyze("a", GRAPH, active=set())
    assert verdict.ready
    assert verdict.reason == "DependenciesActive"


def test_dependency_not_active_yet_is_named() -> None:
    verdict = analyze("b", GRAPH, active=set())
    assert not verdict.ready
    assert verdict.not_active == ("a",)
    assert "a" in verdict.message
    assert verdict.reason == "DependenciesNotActive"


def test_active_dependency_is_ready() -> None:
    assert analyze("b", GRAPH, active={"a"}).ready


def test_missing_dependency_is_named() -> None:
    verdict = analyze("lonely", GRAPH, active=set())
    assert verdict.missing == ("ghost",)
    assert verdict.reason == "DependenciesMissing"
    assert "missing: ghost" in verdict.message


def test_two_member_cycle_is_reported_on_both_members() -> None:
    assert find_cycle("x", GRAPH) == ("x", "y", "x")
    assert find_cycle("y", GRAPH) == ("y", "x", "y")
    verdict = analyze("x", GRAPH, active={"x", "y"})
    assert not verdict.ready
    assert verdict.reason == "DependencyCycle"
    assert "x -> y -> x" in verdict.message


def test_three_member_cycle_path() -> None:
    assert find_cycle("q", GRAPH) == ("q", "r", "p", "q")


def test_self_cycle() -> None:
    assert find_cycle("self", GRAPH) == ("self", "self")


def test_depending_on_a_cycle_is_not_being_in_it() -> None:
    verdict = analyze("onto-cycle", GRAPH, active=set())
    assert verdict.cycle == ()
    assert verdict.not_active == ("x",)


def test_unrelated_plugin_is_unaffected_by_broken_ones() -> None:
    assert analyze("a", GRAPH, active=set()).ready


def test_duplicate_dependencies_are_reported_once() -> None:
    verdict = analyze("d", {"d": ("z", "z")}, active=set())
    assert verdict.missing == ("z",)


def test_empty_verdict_is_ready() -> None:
    assert DependencyVerdict().ready
    assert DependencyVerdict().message == "all dependencies are Active"
