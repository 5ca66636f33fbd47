"""The admission decision for VivifiedPlugins: pure, no Kubernetes I/O.

The validating webhook (``vivified.shell.webhook``) asks :func:`review` whether a CREATE or
UPDATE may proceed. It applies exactly the rules the CLI and the operator apply
(:func:`vivified.policy.validate_spec`), plus the two rules that need to know about the
cluster rather than about one document:

* ``metadata.name`` must equal ``spec.manifest.id``;
* a plugin id is unique: no *other* VivifiedPlugin may already hold it (asked of the
  operator's in-memory index through :class:`RegistryView`).

The reconciler enforces the same two rules (and marks a plugin ``Invalid`` when they fail), so
the webhook is the fast, friendly first line and the reconciler the authoritative one: an
object admitted while the operator's index was still filling is caught there.

Updates that leave ``spec`` untouched are always admitted, and so is anything already being
deleted. Those are metadata writes — kopf adding or removing its finalizer and annotations, a
user adding a label — and blocking them would make a plugin that became invalid under a
stricter policy impossible to delete or annotate.

The mutating webhook asks :func:`finalizer_mutation` which finalizers a new plugin should be
created with: the operator's own, so that kopf does not spend one more API write per plugin
adding it after creation (issue 17's write budget). It only ever adds, never on UPDATE, and
answers "nothing to change" when the finalizer is already there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from vivified.policy import PolicyConfig, validate_spec
from vivified.violations import Violation

__all__ = [
    "Decision",
    "RegistryView",
    "decide",
    "denial_message",
    "identity_violations",
    "needs_review",
    "review",
]

PluginKey = tuple[str, str]
"""(namespace, name) of a VivifiedPlugin; the same shape as ``vivified.registry.PluginKey``."""


class RegistryView(Protocol):
    """What admission needs to know about the other plugins (``PluginRegistry`` has it)."""

    def owner_of(self, plugin_id: str) -> PluginKey | None:
        """The plugin holding ``plugin_id``, or None when nobody does."""
        ...


@dataclass(frozen=True)
class Decision:
    """The verdict on one admission request: errors deny it, warnings are shown to the user."""

    errors: tuple[Violation, ...] = ()
    warnings: tuple[Violation, ...] = field(default=())

    @property
    def allowed(self) -> bool:
        return not self.errors


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def needs_review(
    operation: str, body: Mapping[str, Any], old: Mapping[str, Any] | None = None
) -> bool:
    """Whether the request must be validated at all (see the module docstring)."""
    if operation == "CREATE":
        return True
    if operation != "UPDATE":
        return False
    if _mapping(body.get("metadata")).get("deletionTimestamp"):
        return False
    return old is None or old.get("spec") != body.get("spec")


def identity_violations(
    key: PluginKey, plugin_id: str | None, registry: RegistryView
) -> list[Violation]:
    """``metadata.name == spec.manifest.id`` and the id is not held by another plugin."""
    if plugin_id is None:  # validate_spec already reports the missing or malformed id
        return []
    namespace, name = key
    found: list[Violation] = []
    if plugin_id != name:
        found.append(Violation("metadata.name", f"must equal spec.manifest.id ({plugin_id!r})"))
    owner = registry.owner_of(plugin_id)
    if owner is not None and owner != (namespace, name):
        found.append(
            Violation(
                "spec.manifest.id",
                f"plugin id {plugin_id!r} is already used by VivifiedPlugin "
                f"{owner[0]}/{owner[1]}; plugin ids are unique across the cluster",
            )
        )
    return found


def decide(
    body: Mapping[str, Any],
    registry: RegistryView,
    *,
    operation: str = "CREATE",
    old: Mapping[str, Any] | None = None,
    namespace: str | None = None,
    policy: PolicyConfig | None = None,
) -> Decision:
    """Validate ``body`` (the object under admission) for ``operation``.

    ``namespace`` is the request's namespace, used when the object does not carry one.
    Errors and warnings are sorted by field and free of duplicates.
    """
    if not needs_review(operation, body, old):
        return Decision()
    report = validate_spec(body.get("spec"), policy)
    metadata = _mapping(body.get("metadata"))
    key = (str(metadata.get("namespace") or namespace or ""), str(metadata.get("name") or ""))
    manifest = _mapping(_mapping(body.get("spec")).get("manifest"))
    raw_id = manifest.get("id")
    plugin_id = raw_id if isinstance(raw_id, str) and raw_id else None
    errors = [*report.errors, *identity_violations(key, plugin_id, registry)]
    return Decision(
        errors=tuple(sorted(set(errors))),
        warnings=tuple(sorted(set(report.warnings))),
    )


def review(
    body: Mapping[str, Any],
    registry_view: RegistryView,
    *,
    operation: str = "CREATE",
    old: Mapping[str, Any] | None = None,
    namespace: str | None = None,
    policy: PolicyConfig | None = None,
) -> list[Violation]:
    """Every reason to reject ``body``; empty when it may be admitted."""
    decision = decide(
        body, registry_view, operation=operation, old=old, namespace=namespace, policy=policy
    )
    return list(decision.errors)


def denial_message(violations: Sequence[Violation]) -> str:
    """``field: message; field: message`` — what ``kubectl apply`` shows the user."""
    return "; ".join(f"{v.field}: {v.message}" for v in violations)


def finalizer_mutation(
    metadata: Mapping[str, Any] | None, finalizer: str, *, operation: str = "CREATE"
) -> list[str] | None:
    """The finalizer list a new object should carry, or ``None`` when nothing must change.

    Only CREATE is mutated: an update or a delete must never get a finalizer put back (that
    would block a deletion the user asked for). Existing finalizers are kept, in order.
    """
    if operation != "CREATE":
        return None
    raw = metadata.get("finalizers") if isinstance(metadata, Mapping) else None
    present = [f for f in raw if isinstance(f, str)] if isinstance(raw, list) else []
    if finalizer in present:
        return None
    return [*present, finalizer]
