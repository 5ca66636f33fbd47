"""No lost updates: the stale-status race at 1,000 plugins, reproduced without a cluster.

At scale, a write's response and the watch event that follows it reach the operator in either
order. When the Deployment controller made a plugin's Deployment Available between our apply
and the apply's response being handled, the older response overwrote the newer cached copy; the
reconcile that the watch event asked for then read "0/1 ready" from the cache, and no further
event ever came: the plugin stayed Pending for good (p12, p22, p39 in the issue). The same holds
for the plugin index, fed by both kopf's watch and our own status writes.
"""

from __future__ import annotations

from typing import Any

from tests.fake_cluster import FakeCluster
from tests.fake_operator import NAMESPACE, FakeOperator, plugin_body

from vivified.objects import slim
from vivified.registry import PluginRegistry


async def test_a_watch_event_that_overtakes_a_write_response_is_not_lost() -> None:
    operator = FakeOperator()

    def controller(cluster: FakeCluster, deployment: dict[str, Any]) -> None:
        # The Deployment becomes Available before our apply's response is handled; its watch
        # events (ADDED, then MODIFIED) reach the informer first.
        if not deployment.get("status"):
            cluster.make_available(NAMESPACE, deployment["metadata"]["name"])

    operator.on_write("Deployment", controller)
    await operator.start()
    operator.create(plugin_body("p12"))
    await operator.settle()
    await operator.stop()

    status = operator.status("p12")
    assert status["phase"] == "Active", status
    assert status["readyReplicas"] == 1


async def test_an_event_while_the_key_is_in_flight_leads_to_another_reconcile() -> None:
    operator = FakeOperator()
    await operator.start()
    operator.create(plugin_body("p22"))
    await operator.settle()
    assert operator.status("p22")["phase"] == "Pending"
    runs = len(operator.reconciles)

    # Availability arrives while the plugin is being reconciled (during its status write).
    def controller(cluster: FakeCluster, _: dict[str, Any]) -> None:
        deployment = cluster.stored("Deployment", NAMESPACE, "p22")
        if deployment is not None and not deployment.get("status"):
            cluster.make_available(NAMESPACE, "p22")

    operator.on_write("Event", controller)
    operator.queue.add((NAMESPACE, "p22"))
    operator.cluster.make_available(NAMESPACE, "p22")
    await operator.settle()
    await operator.stop()

    assert operator.status("p22")["phase"] == "Active"
    assert len(operator.reconciles) > runs


def test_the_index_keeps_the_newer_copy_whatever_order_they_arrive_in() -> None:
    registry = PluginRegistry()
    newer = plugin_body("p39")
    newer["metadata"].update(uid="u1", resourceVersion="20")
    newer["status"] = {"phase": "Active"}
    older = plugin_body("p39")
    older["metadata"].update(uid="u1", resourceVersion="19")
    older["status"] = {"phase": "Pending"}

    registry.upsert((NAMESPACE, "p39"), newer)
    registry.upsert((NAMESPACE, "p39"), older)

    entry = registry.get((NAMESPACE, "p39"))
    assert entry is not None
    assert entry.phase == "Active"


def test_a_re_created_object_replaces_the_old_one_even_with_a_lower_version() -> None:
    registry = PluginRegistry()
    first = plugin_body("p40")
    first["metadata"].update(uid="u1", resourceVersion="20")
    again = plugin_body("p40")
    again["metadata"].update(uid="u2", resourceVersion="5")

    registry.upsert((NAMESPACE, "p40"), first)
    registry.upsert((NAMESPACE, "p40"), again)

    entry = registry.get((NAMESPACE, "p40"))
    assert entry is not None
    assert entry.body["metadata"]["uid"] == "u2"


async def test_a_cached_child_keeps_no_managed_fields() -> None:
    operator = FakeOperator()
    deployment = {
        "metadata": {
            "name": "p1",
            "namespace": NAMESPACE,
            "managedFields": [{"manager": "x", "fieldsV1": {"f:spec": {}}}],
        },
    }
    operator.informer.apply_event("Deployment", {"type": "ADDED", "object": deployment})
    cached = operator.informer.get("Deployment", NAMESPACE, "p1")
    assert cached is not None
    assert "managedFields" not in cached["metadata"]


async def test_an_idle_resync_writes_nothing() -> None:
    operator = FakeOperator()
    await operator.start()
    for i in range(3):
        operator.create(plugin_body(f"r{i}"))
    await operator.settle()
    for i in range(3):
        operator.cluster.make_available(NAMESPACE, f"r{i}")
    await operator.settle()
    assert {operator.status(f"r{i}")["phase"] for i in range(3)} == {"Active"}
    writes, runs = operator.cluster.write_count, len(operator.reconciles)

    operator._enqueue_all(set(operator.registry.keys()))  # what the periodic resync does
    await operator.settle()
    await operator.stop()

    assert len(operator.reconciles) == runs + 3
    assert operator.cluster.write_count == writes


def test_cached_copies_keep_no_token_and_no_kopf_copy_of_the_spec() -> None:
    secret = {
        "kind": "Secret",
        "metadata": {"name": "p-token", "annotations": {"vivified.dev/token-jti": "j"}},
        "data": {"token": "c2VjcmV0"},
    }
    plugin = plugin_body("p")
    plugin["metadata"]["annotations"] = {"vivified.dev/last-handled-configuration": "{...}"}
    assert "data" not in slim(secret)
    assert slim(secret)["metadata"]["annotations"] == {"vivified.dev/token-jti": "j"}
    assert slim(plugin)["metadata"]["annotations"] == {}
    assert plugin["metadata"]["annotations"], "the input is left alone"
