"""Effective permissions in each plugin's status (issue 16 item 8), from the operator lane's policy.

``status.permissions`` is computed by the operator from ``vivified.policy.invoke`` (the rules the
core enforces), for the plugins that concern one plugin only; it changes when a caller or a
target changes, and costs a status write only then.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.fake_operator import NAMESPACE, FakeOperator, plugin_body

from vivified.policy.invoke import effective_permissions
from vivified.resource import PluginSpec, PluginStatus


def permissions(operator: FakeOperator, plugin_id: str) -> dict[str, Any]:
    found: dict[str, Any] = operator.status(plugin_id).get("permissions") or {}
    return found


def phi_target(plugin_id: str, dependencies: list[str] | None = None) -> dict[str, Any]:
    body = plugin_body(plugin_id, dependencies=dependencies)
    body["spec"]["manifest"]["security"]["data_classification"] = ["phi"]
    body["spec"]["manifest"]["traits"] = ["handles_phi", "audit_required"]
    body["spec"]["manifest"]["compliance"].update(
        audit_level="complete", data_retention_days=2555, hipaa_controls=["164.312(a)"]
    )
    return body


@pytest.mark.parametrize(
    ("case", "bodies", "plugin", "expected"),
    [
        (
            "a dependency may be called; it is callable by its dependent",
            [plugin_body("b"), plugin_body("a", dependencies=["b"])],
            "a",
            {"mayCall": ["b"], "callableBy": []},
        ),
        (
            "the target sees its caller",
            [plugin_body("b"), plugin_body("a", dependencies=["b"])],
            "b",
            {"mayCall": [], "callableBy": ["a"]},
        ),
        (
            "a missing dependency cannot be called",
            [plugin_body("a", dependencies=["ghost"])],
            "a",
            {"mayCall": [], "callableBy": []},
        ),
        (
            "phi data needs handles_phi: a caller without it is not listed",
            [phi_target("records"), plugin_body("a", dependencies=["records"])],
            "records",
            {"mayCall": [], "callableBy": []},
        ),
        (
            "a caller holding handles_phi is listed",
            [phi_target("records"), phi_target("ward", dependencies=["records"])],
            "records",
            {"mayCall": [], "callableBy": ["ward"]},
        ),
        (
            "a bystander is nobody's caller or target",
            [plugin_body("b"), plugin_body("a", dependencies=["b"]), plugin_body("c")],
            "c",
            {"mayCall": [], "callableBy": []},
        ),
        (
            "an invalid caller is not listed (it is not routed)",
            [plugin_body("b"), plugin_body("bad", dependencies=["b"], traits=["admin"])],
            "b",
            {"mayCall": [], "callableBy": []},
        ),
    ],
)
async def test_status_permissions_follow_the_lane_policy(
    case: str, bodies: list[dict[str, Any]], plugin: str, expected: dict[str, list[str]]
) -> None:
    operator = FakeOperator()
    await operator.start()
    for body in bodies:
        operator.create(body)
    await operator.settle()
    await operator.stop()
    assert operator.status(plugin)["phase"] != "Invalid", case
    assert permissions(operator, plugin) == expected, case
    # The same answer as the pure policy over every valid plugin (not only the neighbours).
    manifests = []
    for body in bodies:
        spec = operator.cluster.stored("VivifiedPlugin", NAMESPACE, body["metadata"]["name"])
        assert spec is not None
        if spec["status"]["phase"] != "Invalid":
            manifests.append(PluginSpec.model_validate(spec["spec"]).manifest)
    assert effective_permissions(plugin, manifests) == expected, case


async def test_a_new_caller_updates_the_target_once_and_an_unchanged_one_writes_nothing() -> None:
    operator = FakeOperator()
    await operator.start()
    operator.create(plugin_body("b"))
    await operator.settle()
    assert permissions(operator, "b") == {"mayCall": [], "callableBy": []}

    writes = len(operator.cluster.log)
    operator.create(plugin_body("a", dependencies=["b"]))
    await operator.settle()
    assert permissions(operator, "b") == {"mayCall": [], "callableBy": ["a"]}
    b_status_writes = [
        w for w in operator.cluster.log[writes:] if w[1] == "VivifiedPlugin" and w[3] == "b/status"
    ]
    assert len(b_status_writes) == 1, "one status write for the new caller"

    settled = len(operator.cluster.log)
    for key in sorted(operator.registry.keys()):
        operator.queue.add(key)
    await operator.settle()
    await operator.stop()
    assert operator.cluster.log[settled:] == [], "nothing changed: no write"


def test_the_status_model_has_the_permissions_block() -> None:
    dumped = PluginStatus.model_validate(
        {"permissions": {"may_call": ["b"], "callable_by": []}}
    ).model_dump(by_alias=True, exclude_unset=True)
    assert dumped == {"permissions": {"mayCall": ["b"], "callableBy": []}}
