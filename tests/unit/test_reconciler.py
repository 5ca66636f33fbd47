"""The reconciler against the fake cluster: one scenario per branch, each with its reason.

crossplane-runtime style tables: a scenario drives the operator through the fake cluster and
states what must hold afterwards. The queue, informer, index, identity and events are the real
ones; only the API server is in memory.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from tests.fake_operator import NAMESPACE, FakeOperator, plugin_body

from vivified.shell.kube import KubeError


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in status["conditions"] if c["type"] == kind)
    return found


def deployment(operator: FakeOperator, name: str) -> dict[str, Any]:
    found = operator.cluster.stored("Deployment", NAMESPACE, name)
    assert found is not None, f"no Deployment {name}"
    return found


def events(operator: FakeOperator, reason: str) -> list[str]:
    return [
        str(e.get("message"))
        for e in operator.cluster.of_kind("Event")
        if e.get("reason") == reason
    ]


async def running(operator: FakeOperator, body: dict[str, Any]) -> None:
    operator.create(body)
    await operator.settle()
    name = body["metadata"]["name"]
    if operator.cluster.stored("Deployment", body["metadata"]["namespace"], name):
        operator.cluster.make_available(body["metadata"]["namespace"], name)
        await operator.settle()


def edit_spec(operator: FakeOperator, name: str, change: Callable[[dict[str, Any]], None]) -> None:
    stored = operator.cluster.stored("VivifiedPlugin", NAMESPACE, name)
    assert stored is not None
    body = copy.deepcopy(stored)
    change(body["spec"])
    body["metadata"]["generation"] = int(body["metadata"]["generation"]) + 1
    operator.cluster.put("VivifiedPlugin", body)


async def invalid_then_fixed(operator: FakeOperator) -> None:
    body = plugin_body("fix-me")
    body["spec"]["image"] = ""
    operator.create(body)
    await operator.settle()
    status = operator.status("fix-me")
    assert status["phase"] == "Invalid"
    assert status["validationErrors"], "every error is listed"
    assert operator.cluster.stored("Deployment", NAMESPACE, "fix-me") is None, "nothing created"
    edit_spec(operator, "fix-me", lambda spec: spec.update(image="registry.example.com/p:2"))
    await operator.settle()
    assert operator.status("fix-me")["phase"] == "Pending"
    assert operator.status("fix-me")["validationErrors"] == []
    assert deployment(operator, "fix-me")["spec"]["replicas"] == 1


async def disabled(operator: FakeOperator) -> None:
    await running(operator, plugin_body("off"))
    jti = operator.status("off")["token"]["jti"]
    edit_spec(operator, "off", lambda spec: spec.update(enabled=False))
    await operator.settle()
    assert operator.status("off")["phase"] == "Disabled"
    assert deployment(operator, "off")["spec"]["replicas"] == 0
    assert operator.cluster.stored("Secret", NAMESPACE, "off-token") is None
    assert jti in operator.identity.revocations
    assert events(operator, "TokenRevoked")


async def re_enabled_before_the_scale_down_is_seen(operator: FakeOperator) -> None:
    # The fake's Deployment status keeps counting the pod after the scale to 0, as a lagging
    # controller does: it must not make the re-enabled plugin Active (then Pending, then Active).
    await running(operator, plugin_body("flap"))
    edit_spec(operator, "flap", lambda spec: spec.update(enabled=False))
    await operator.settle()
    assert operator.status("flap")["phase"] == "Disabled"
    assert deployment(operator, "flap")["status"]["availableReplicas"] == 1, "stale, as set up"
    edit_spec(operator, "flap", lambda spec: spec.update(enabled=True))
    await operator.settle()
    assert operator.status("flap")["phase"] == "Pending", "the counted pod is going away"
    operator.cluster.make_available(NAMESPACE, "flap")
    await operator.settle()
    assert operator.status("flap")["phase"] == "Active"
    assert len(events(operator, "PhaseActive")) == 2, "once when created, once when re-enabled"


async def dependency_missing(operator: FakeOperator) -> None:
    await running(operator, plugin_body("needs-db", dependencies=["db"]))
    status = operator.status("needs-db")
    assert status["phase"] == "Pending"
    assert condition(status, "DependenciesReady")["status"] == "False"
    assert "db" in condition(status, "DependenciesReady")["message"]
    assert deployment(operator, "needs-db")["spec"]["replicas"] == 0, "blocked by default"
    await running(operator, plugin_body("db"))
    assert operator.status("db")["phase"] == "Active"
    await operator.settle()
    assert deployment(operator, "needs-db")["spec"]["replicas"] == 1, "woken up by db"


async def dependency_cycle(operator: FakeOperator) -> None:
    await running(operator, plugin_body("a", dependencies=["b"]))
    await running(operator, plugin_body("b", dependencies=["a"]))
    for name in ("a", "b"):
        message = condition(operator.status(name), "DependenciesReady")["message"]
        assert "cycle" in message.lower(), message


async def drift_restored(operator: FakeOperator) -> None:
    await running(operator, plugin_body("drift"))
    await operator.cluster.delete("Service", NAMESPACE, "drift")
    edited = copy.deepcopy(deployment(operator, "drift"))
    edited["spec"]["replicas"] = 5
    operator.cluster.put("Deployment", edited)
    await operator.settle()
    assert operator.cluster.stored("Service", NAMESPACE, "drift") is not None, "re-created"
    assert deployment(operator, "drift")["spec"]["replicas"] == 1, "edit undone"


async def token_renewed(operator: FakeOperator) -> None:
    await running(operator, plugin_body("renew"))
    first = operator.status("renew")["token"]["jti"]
    operator.clock.advance(20 * 3600)  # past 80 % of the 24 h lifetime
    operator.queue.add((NAMESPACE, "renew"))  # what the refresh timer does
    await operator.settle()
    second = operator.status("renew")["token"]["jti"]
    assert second != first
    assert any("DueForRemint" in m for m in events(operator, "TokenIssued"))
    assert first not in operator.identity.revocations, "a due token is not revoked"


async def claims_changed(operator: FakeOperator) -> None:
    await running(operator, plugin_body("claims"))
    first = operator.status("claims")["token"]["jti"]
    edit_spec(operator, "claims", lambda spec: spec["manifest"].update(version="2.0.0"))
    await operator.settle()
    assert operator.status("claims")["token"]["jti"] != first
    assert first in operator.identity.revocations, "what it asserted is no longer true"


async def duplicate_id(operator: FakeOperator) -> None:
    await running(operator, plugin_body("same"))
    await running(operator, plugin_body("same", namespace="team-b"))
    assert operator.status("same")["phase"] == "Active", "the oldest claimant keeps it"
    second = operator.status("same", "team-b")
    assert second["phase"] == "Invalid"
    assert any("same" in e["message"] for e in second["validationErrors"])
    assert operator.cluster.stored("Deployment", "team-b", "same") is None


async def unchanged(operator: FakeOperator) -> None:
    await running(operator, plugin_body("quiet"))
    writes = operator.cluster.write_count
    operator.queue.add((NAMESPACE, "quiet"))
    await operator.settle()
    assert operator.cluster.write_count == writes, operator.cluster.log[-5:]


async def isolated_before_it_runs(operator: FakeOperator) -> None:
    await running(operator, plugin_body("fresh"))
    order = [kind for _, kind, _, name in operator.cluster.log if name == "fresh"]
    assert "NetworkPolicy" in order, order
    assert "Deployment" in order, order
    assert order.index("NetworkPolicy") < order.index("Deployment"), order


async def failed_policy_holds_the_workload(operator: FakeOperator) -> None:
    def refuse_policy(cluster: Any, kind: str, obj: dict[str, Any]) -> None:
        if kind == "NetworkPolicy" and obj["metadata"]["name"] == "held":
            raise KubeError(500, "InternalError", "etcd is having a bad day")

    operator.cluster.before_apply.append(refuse_policy)
    operator.create(plugin_body("held"))
    await operator.settle()
    assert operator.cluster.stored("ServiceAccount", NAMESPACE, "held") is not None, "same wave"
    assert operator.cluster.stored("Deployment", NAMESPACE, "held") is None, "never before it"
    operator.cluster.before_apply.remove(refuse_policy)
    operator.queue.add((NAMESPACE, "held"))  # what the retry does
    await operator.settle()
    assert operator.cluster.stored("Deployment", NAMESPACE, "held") is not None


@dataclass(frozen=True)
class Case:
    reason: str
    scenario: Callable[[FakeOperator], Awaitable[None]]


CASES = [
    Case("an invalid plugin creates nothing; fixed, it runs", invalid_then_fixed),
    Case("disabled: scaled to zero, token deleted and revoked", disabled),
    Case(
        "re-enabled, a stale count of the scaled-down pod does not make it Active",
        re_enabled_before_the_scale_down_is_seen,
    ),
    Case("a missing dependency blocks until it is Active", dependency_missing),
    Case("a dependency cycle is reported on every member", dependency_cycle),
    Case("a deleted or edited child is restored", drift_restored),
    Case("a token due for re-mint is re-minted, with its reason", token_renewed),
    Case("changed claims re-mint and revoke the old token", claims_changed),
    Case("a duplicate id is refused; the oldest claimant keeps it", duplicate_id),
    Case("an unchanged plugin costs no write", unchanged),
    Case("the NetworkPolicy is written before the Deployment", isolated_before_it_runs),
    Case("a failed policy write keeps the Deployment back", failed_policy_holds_the_workload),
]


@pytest.mark.parametrize("case", CASES, ids=[c.scenario.__name__ for c in CASES])
async def test_reconcile(case: Case) -> None:
    operator = FakeOperator()
    await operator.start()
    try:
        await case.scenario(operator)
    finally:
        await operator.stop()
