"""Deleting a plugin, or the namespace around it: clean-up first, whatever the children do.

The namespace controller deletes a plugin's children before the plugin; re-creating them is
refused (403, namespace being terminated). The operator used to treat that as drift and retry
forever while the plugin's finalizer held the namespace in Terminating.
"""

from __future__ import annotations

from typing import Any

from kopf._cogs.structs.references import Insights, NamespaceName
from kopf._core.reactor.observation import revise_namespaces
from tests.fake_operator import NAMESPACE, FakeOperator, plugin_body

from vivified.resource import FINALIZER
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
    # The revocation list, the finalizer, and the PluginDeleted Event (the deletion's audit).
    assert kinds <= {"ConfigMap", "VivifiedPlugin", "Event"}, "no child re-created"


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


def kopf_keeps_watching(namespace_status: dict[str, Any]) -> bool:
    """kopf's own verdict on a marked namespace: is it still in the watched set afterwards?"""
    insights = Insights()
    insights.namespaces.add(NamespaceName(NAMESPACE))
    body = {
        "metadata": {"name": NAMESPACE, "deletionTimestamp": "2026-03-01T12:00:00Z"},
        "status": namespace_status,
    }
    event: Any = {"type": "MODIFIED", "object": body}
    revise_namespaces(raw_events=[event], insights=insights, namespaces=[NAMESPACE])
    return NAMESPACE in insights.namespaces


def conditions(*true_types: str) -> dict[str, Any]:
    names = ("NamespaceContentRemaining", "NamespaceFinalizersRemaining")
    return {
        "phase": "Terminating",
        "conditions": [
            {"type": name, "status": "True" if name in true_types else "False"} for name in names
        ],
    }


def test_kopf_stops_watching_a_listed_namespace_before_its_plugins_are_marked() -> None:
    # What the namespace controller published in the e2e run, in order: first all False
    # ("ContentRemoved", before it reached the VivifiedPlugins), then SomeFinalizersRemain.
    # kopf drops the namespace on the first; it never adds it back. If kopf changes this, the
    # follower in shell/namespaces.py may become unnecessary.
    assert kopf_keeps_watching({"phase": "Terminating"}), "no conditions yet: still watched"
    assert not kopf_keeps_watching(conditions()), "all False: kopf stops the stream"
    assert kopf_keeps_watching(conditions("NamespaceFinalizersRemaining"))


async def test_plugins_marked_after_kopf_stopped_watching_are_still_cleaned_up() -> None:
    operator = FakeOperator()
    await operator.start()
    jtis = [await active(operator, name) for name in ("p1", "p2")]
    cluster = operator.cluster

    cluster.terminating.add(NAMESPACE)
    operator.plugin_stream = False  # kopf has stopped this namespace's stream
    for kind in CHILD_KINDS:
        for obj in list(cluster.of_kind(kind)):
            await cluster.delete(kind, NAMESPACE, obj["metadata"]["name"])
    await operator.settle()  # re-creates refused: the namespace is followed from here on
    assert operator.terminating.following == {NAMESPACE}
    for name in ("p1", "p2"):
        cluster.mark_deleted("VivifiedPlugin", NAMESPACE, name)
    await operator.settle()
    await operator.stop()

    assert not cluster.of_kind("VivifiedPlugin"), "both released"
    assert set(jtis) <= set(operator.identity.revocations.jtis)
    assert not operator.terminating.following


async def test_without_the_follower_the_marked_plugins_would_hold_the_namespace() -> None:
    operator = FakeOperator()
    await operator.start()
    await active(operator, "p1")
    operator.plugin_stream = False
    operator.cluster.mark_deleted("VivifiedPlugin", NAMESPACE, "p1")
    await operator.settle()
    await operator.stop()
    stored = operator.cluster.stored("VivifiedPlugin", NAMESPACE, "p1")
    assert stored is not None
    assert stored["metadata"]["finalizers"] == [FINALIZER]
