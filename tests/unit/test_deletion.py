"""Deleting a plugin, or the namespace around it: clean-up first, whatever the children do.

The namespace controller deletes a plugin's children before the plugin; re-creating them is
refused (403, namespace being terminated). The operator used to treat that as drift and retry
forever while the plugin's finalizer held the namespace in Terminating.
"""

from __future__ import annotations

from typing import Any

from tests.fake_operator import NAMESPACE, FakeOperator, plugin_body

from vivified.shell.reconciler import FINALIZER
from vivified.shell.runtime import CHILD_KINDS


def with_finalizer(plugin_id: str) -> dict[str, Any]:
    body = plugin_body(plugin_id)
    body["metadata"]["finalizers"] = [FINALIZER]
    return body


async def active(operator: FakeOperator, plugin_id: str) -> str:
    operator.create(with_finalizer(plugin_id))
    await operator.settle()
    operator.cluster.make_available(NAMESPACE, plugin_id)
    await operator.settle()
    assert operator.status(plugin_id)["phase"] == "Active"
    jti = operator.status(plugin_id)["token"]["jti"]
    assert isinstance(jti, str)
    return jti


async def test_a_namespace_deletion_revokes_and_lets_go_without_re_creating_children() -> None:
    operator = FakeOperator()
    await operator.start()
    jti = await active(operator, "p1")
    cluster = operator.cluster

    # The namespace controller: no new content, children first, then the plugin.
    cluster.terminating.add(NAMESPACE)
    for kind in CHILD_KINDS:
        for obj in list(cluster.of_kind(kind)):
            await cluster.delete(kind, NAMESPACE, obj["metadata"]["name"])
    await operator.settle()
    cluster.mark_deleted("VivifiedPlugin", NAMESPACE, "p1")
    await operator.settle()
    await operator.stop()

    assert cluster.stored("VivifiedPlugin", NAMESPACE, "p1") is None, "finalizer removed"
    assert jti in operator.identity.revocations
    left = [o for kind in CHILD_KINDS for o in cluster.of_kind(kind)]
    assert not [o for o in left if o["metadata"]["namespace"] == NAMESPACE], "none re-created"
    assert operator.queue.depth == 0


async def test_a_plugin_being_deleted_goes_straight_to_clean_up_even_with_children_present() -> (
    None
):
    operator = FakeOperator()
    await operator.start()
    jti = await active(operator, "p2")
    writes_before = len(operator.cluster.log)

    operator.cluster.mark_deleted("VivifiedPlugin", NAMESPACE, "p2")
    await operator.settle()
    await operator.stop()

    assert operator.cluster.stored("VivifiedPlugin", NAMESPACE, "p2") is None
    assert jti in operator.identity.revocations
    kinds = {kind for _, kind, _, _ in operator.cluster.log[writes_before:]}
    assert kinds <= {"ConfigMap", "VivifiedPlugin"}, "only the revocation list and finalizer"


async def test_a_deleted_plugin_releases_its_id_to_the_next_claimant() -> None:
    operator = FakeOperator()
    await operator.start()
    await active(operator, "dup")
    second = with_finalizer("dup")
    second["metadata"].update(namespace="team-b")
    operator.create(second)
    await operator.settle()
    assert operator.status("dup", "team-b")["phase"] == "Invalid"

    operator.cluster.mark_deleted("VivifiedPlugin", NAMESPACE, "dup")
    await operator.settle()
    await operator.stop()

    assert operator.status("dup", "team-b")["phase"] == "Pending", "valid now, not yet available"
