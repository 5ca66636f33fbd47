"""Reconcile's decisions, pure: what the plugin's instance is, and which children to apply.

The shell observes (the index, the child cache), calls these, and acts (applies what they
return). Inputs are plain values and a lookup of live objects; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vivified.dependencies import DependencyVerdict
from vivified.diff import needs_apply, stamped
from vivified.registry import PluginKey
from vivified.render import PluginInstance, render_children
from vivified.resource import PluginSpec
from vivified.settings import OperatorSettings

LiveLookup = Callable[[str, str, str], Mapping[str, Any] | None]
"""(kind, namespace, name) -> the live object as last seen, or None."""


def token_secret_name(plugin_id: str) -> str:
    return f"{plugin_id}-token"


def plan_instance(
    key: PluginKey,
    metadata: Mapping[str, Any],
    spec: PluginSpec,
    verdict: DependencyVerdict,
    settings: OperatorSettings,
) -> PluginInstance:
    """The plugin as it should run: disabled and blocked plugins keep their objects at zero."""
    namespace, name = key
    block = settings.dependency_policy == "block"
    return PluginInstance(
        name=name,
        namespace=namespace,
        uid=metadata["uid"],
        generation=int(metadata.get("generation", 0)),
        spec=spec,
        run=spec.enabled and (verdict.ready or not block),
        enabled=spec.enabled,
        token_secret_name=token_secret_name(spec.manifest.id) if spec.enabled else None,
    )


@dataclass(frozen=True)
class ChildApply:
    """One child to apply, and whether it exists already (for the event's wording)."""

    desired: dict[str, Any]
    exists: bool

    def describe(self) -> str:
        meta = self.desired["metadata"]
        return f"{self.desired['kind']} {meta['name']} {'updated' if self.exists else 'created'}"


#: Kinds that start workloads: applied only after every other child of the plugin is in place.
WORKLOAD_KINDS = frozenset({"Deployment"})


def apply_waves(children: list[ChildApply]) -> list[list[ChildApply]]:
    """The order children are applied in: everything else first (the NetworkPolicy that isolates
    the pod, its ServiceAccount, its Service), concurrently; then the workload. A pod therefore
    never starts before its policy exists, and a failed first wave leaves the workload alone."""
    first = [c for c in children if c.desired["kind"] not in WORKLOAD_KINDS]
    last = [c for c in children if c.desired["kind"] in WORKLOAD_KINDS]
    return [wave for wave in (first, last) if wave]


def children_to_apply(
    instance: PluginInstance, settings: OperatorSettings, live: LiveLookup
) -> list[ChildApply]:
    """The rendered children whose live copy no longer contains what we render."""
    result: list[ChildApply] = []
    for obj in render_children(instance, settings):
        desired = stamped(obj)
        meta = desired["metadata"]
        current = live(desired["kind"], meta["namespace"], meta["name"])
        if needs_apply(desired, current):
            result.append(ChildApply(desired, current is not None))
    return result
