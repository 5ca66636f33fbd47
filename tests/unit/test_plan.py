"""Reconcile's pure decisions: the instance to run and the children to apply."""

from __future__ import annotations

from typing import Any

import pytest
from tests.fake_operator import plugin_body

from vivified.dependencies import DependencyVerdict
from vivified.diff import stamped
from vivified.plan import ChildApply, apply_waves, children_to_apply, plan_instance
from vivified.render import render_children
from vivified.resource import PluginSpec
from vivified.settings import OperatorSettings

SETTINGS = OperatorSettings()
META = {"uid": "u1", "generation": 3}
READY = DependencyVerdict()
MISSING = DependencyVerdict(missing=("db",))


def spec(**changes: Any) -> PluginSpec:
    raw = plugin_body("p")["spec"]
    raw.update(changes)
    return PluginSpec.model_validate(raw)


@pytest.mark.parametrize(
    ("reason", "given", "verdict", "settings", "expected"),
    [
        ("enabled, dependencies ready: runs with a token", spec(), READY, SETTINGS, (True, True)),
        ("disabled: no run, no token", spec(enabled=False), READY, SETTINGS, (False, False)),
        ("missing dependency blocks by default", spec(), MISSING, SETTINGS, (False, True)),
        (
            "warn policy runs anyway",
            spec(),
            MISSING,
            OperatorSettings(dependency_policy="warn"),
            (True, True),
        ),
    ],
)
def test_plan_instance(
    reason: str,
    given: PluginSpec,
    verdict: DependencyVerdict,
    settings: OperatorSettings,
    expected: tuple[bool, bool],
) -> None:
    runs, token = expected
    instance = plan_instance(("ns", "p"), META, given, verdict, settings)
    assert instance.run is runs, reason
    assert (instance.token_secret_name == "p-token") is token, reason


def test_children_to_apply_are_those_missing_or_changed() -> None:
    instance = plan_instance(("ns", "p"), META, spec(), READY, SETTINGS)
    live = {
        (o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]): stamped(o)
        for o in render_children(instance, SETTINGS)
    }
    assert children_to_apply(instance, SETTINGS, lambda *k: live.get(k)) == [], "all there"
    del live[("Service", "ns", "p")]
    todo = children_to_apply(instance, SETTINGS, lambda *k: live.get(k))
    assert [c.describe() for c in todo] == ["Service p created"]


def child(kind: str) -> ChildApply:
    return ChildApply({"kind": kind, "metadata": {"name": "p", "namespace": "ns"}}, exists=False)


@pytest.mark.parametrize(
    ("reason", "kinds", "waves"),
    [
        (
            "a new plugin: policy, identity and Service first, the Deployment alone last",
            ["ServiceAccount", "NetworkPolicy", "Service", "Deployment"],
            [["ServiceAccount", "NetworkPolicy", "Service"], ["Deployment"]],
        ),
        (
            "the workload last even when rendered first",
            ["Deployment", "NetworkPolicy"],
            [["NetworkPolicy"], ["Deployment"]],
        ),
        ("only the Deployment drifted: one wave", ["Deployment"], [["Deployment"]]),
        ("only the policy drifted: one wave", ["NetworkPolicy"], [["NetworkPolicy"]]),
        ("nothing to apply: no wave", [], []),
    ],
)
def test_apply_waves(reason: str, kinds: list[str], waves: list[list[str]]) -> None:
    got = apply_waves([child(k) for k in kinds])
    assert [[c.desired["kind"] for c in wave] for wave in got] == waves, reason
