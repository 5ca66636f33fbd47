"""Derive a VivifiedPlugin's status from observed facts.

Pure: the shell gathers facts (validation verdict, dependency verdict, the Deployment's state, the
token) and this module decides phase, conditions and the summary Ready. Deriving everything from
facts, never from the previous phase, keeps reconcile level-based: the same facts always give the
same status, so an unchanged plugin never causes a status write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from vivified.dependencies import DependencyVerdict
from vivified.policy.egress_status import EgressReport, egress_condition
from vivified.resource import status_patch_body
from vivified.violations import Violation


class Phase(StrEnum):
    PENDING = "Pending"
    ACTIVE = "Active"
    DISABLED = "Disabled"
    INVALID = "Invalid"


class Health(StrEnum):
    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


CONDITION_TYPES = (
    "Ready",
    "ManifestValid",
    "DependenciesReady",
    "TokenIssued",
    "Available",
    "EgressEnforced",
)
HEALTH_FIELDS = (
    "health",
    "consecutiveFailures",
    "lastError",
    "lastProbeTime",
    "lastHeartbeatTime",
    "metrics",
)


@dataclass(frozen=True)
class WorkloadFacts:
    """What the live Deployment says."""

    exists: bool = False
    desired_replicas: int = 0
    ready_replicas: int = 0
    available: bool = False
    """The rollout of the current spec is complete (``kubectl rollout status``)."""
    serving: bool = False
    """At least the desired number of replicas is available, old or new: during a rolling
    update (``maxUnavailable: 0``) the previous pods keep serving until the new ones are
    ready, so an edit does not take the plugin out of its lanes. The shell sets it only for
    a plugin that is Active already (``shell.reconciler.workload_facts``): a re-enabled one's
    count can still be of the pods its scale to 0 removes."""
    updated_replicas: int = 0

    @property
    def up(self) -> bool:
        """The plugin can take traffic: rolled out, or still served by its previous pods."""
        return self.exists and (self.available or self.serving)


@dataclass(frozen=True)
class TokenFacts:
    """The public facts of the plugin's current token (never the token itself)."""

    secret_name: str
    key_id: str
    expires_at: str
    jti: str | None = None
    """The token's id: what deletion revokes when the Secret is already gone."""


@dataclass(frozen=True)
class EventCounts:
    """One subscriber's entry in the core's event-lane counts (``GET /v1/events/status``)."""

    pending: int
    """Stored for it and not yet acknowledged by it (paused deliveries included)."""
    dead_lettered: int
    """In the dead-letter stream: delivery gave up after the configured attempts."""


def _count(value: object) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return value if ok and isinstance(value, int) else None


def counts_from_document(document: object) -> dict[tuple[str, str], EventCounts]:
    """Every subscriber's counts in the core's document, keyed ``(namespace, id)``; a
    malformed entry is left out (what the operator cannot read is "not reported")."""
    plugins = document.get("plugins") if isinstance(document, Mapping) else None
    if not isinstance(plugins, Mapping):
        return {}
    out: dict[tuple[str, str], EventCounts] = {}
    for plugin_id, entry in plugins.items():
        if not isinstance(plugin_id, str) or not isinstance(entry, Mapping):
            continue
        namespace, pending, dead = (
            entry.get("namespace"),
            _count(entry.get("pending")),
            _count(entry.get("deadLettered")),
        )
        if isinstance(namespace, str) and pending is not None and dead is not None:
            out[(namespace, plugin_id)] = EventCounts(pending=pending, dead_lettered=dead)
    return out


@dataclass(frozen=True)
class PluginFacts:
    """Everything reconcile observed about one plugin."""

    generation: int
    errors: tuple[Violation, ...] = ()
    enabled: bool = True
    dependencies: DependencyVerdict = field(default_factory=DependencyVerdict)
    block_on_dependencies: bool = True
    workload: WorkloadFacts = field(default_factory=WorkloadFacts)
    token: TokenFacts | None = None
    kept_last_valid_workload: bool = False
    egress_domains: tuple[str, ...] = ()
    egress_through_core: bool = False
    """The live NetworkPolicy forces egress through the core (``forces_egress_through_core``)."""
    egress_report: EgressReport | None = None
    """The core's published allowlist entry for this plugin (None: not reported)."""
    #: Event lane: the manifest's declared (and validated) publishes / subscribes.
    event_publishes: tuple[str, ...] = ()
    event_subscribes: tuple[str, ...] = ()
    event_counts: EventCounts | None = None
    """The core's counts for this subscriber (None: not reported, or not read at all)."""
    #: ``effective_permissions()``'s answer (``mayCall``, ``callableBy``); None = not computed.
    permissions: Mapping[str, Sequence[str]] | None = None


def _phase(facts: PluginFacts) -> Phase:
    if facts.errors:
        return Phase.INVALID
    if not facts.enabled:
        return Phase.DISABLED
    if facts.block_on_dependencies and not facts.dependencies.ready:
        return Phase.PENDING
    if not facts.workload.up:
        return Phase.PENDING
    return Phase.ACTIVE


def _condition(kind: str, ok: bool | None, reason: str, message: str) -> dict[str, str]:
    status = "Unknown" if ok is None else ("True" if ok else "False")
    return {"type": kind, "status": status, "reason": reason, "message": message}


def _conditions(facts: PluginFacts, phase: Phase) -> list[dict[str, str]]:
    n_errors = len(facts.errors)
    if phase is Phase.INVALID:
        held = (
            "; the last valid workload is left running unchanged"
            if facts.kept_last_valid_workload
            else "; nothing was created"
        )
        ready = _condition(
            "Ready", False, "InvalidManifest", f"{n_errors} validation error(s){held}"
        )
    elif phase is Phase.DISABLED:
        ready = _condition("Ready", False, "Disabled", "spec.enabled is false")
    elif phase is Phase.PENDING and not facts.dependencies.ready and facts.block_on_dependencies:
        ready = _condition("Ready", False, facts.dependencies.reason, facts.dependencies.message)
    elif phase is Phase.PENDING:
        w = facts.workload
        ready = _condition(
            "Ready",
            False,
            "WorkloadNotAvailable",
            f"{w.ready_replicas}/{w.desired_replicas} replicas ready",
        )
    elif not facts.workload.available:
        w = facts.workload
        ready = _condition(
            "Ready",
            True,
            "Active",
            f"plugin is active; rollout in progress ({w.updated_replicas}/"
            f"{w.desired_replicas} replicas updated, the previous ones serve meanwhile)",
        )
    else:
        ready = _condition("Ready", True, "Active", "plugin is active")

    valid = (
        _condition("ManifestValid", True, "Valid", "manifest passed the security policy")
        if not facts.errors
        else _condition(
            "ManifestValid",
            False,
            "ValidationFailed",
            "; ".join(f"{v.field}: {v.message}" for v in facts.errors),
        )
    )
    if facts.errors:
        deps = _condition("DependenciesReady", None, "NotEvaluated", "manifest is invalid")
    else:
        deps = _condition(
            "DependenciesReady",
            facts.dependencies.ready,
            facts.dependencies.reason,
            facts.dependencies.message,
        )
    if facts.token is not None:
        token = _condition(
            "TokenIssued",
            True,
            "Issued",
            f"token in Secret {facts.token.secret_name}, expires {facts.token.expires_at}",
        )
    elif phase is Phase.DISABLED:
        token = _condition("TokenIssued", False, "Revoked", "plugin is disabled")
    else:
        token = _condition("TokenIssued", False, "NotIssued", "no token issued")
    w = facts.workload
    replicas = f"{w.ready_replicas}/{w.desired_replicas} replicas ready"
    if w.up and not w.available:
        replicas += f", rolling out ({w.updated_replicas}/{w.desired_replicas} updated)"
    available = _condition(
        "Available",
        w.up,
        "MinimumReplicasAvailable" if w.up else "NotAvailable",
        replicas if w.exists else "no Deployment",
    )
    if phase is Phase.INVALID and not facts.kept_last_valid_workload:
        egress = _condition("EgressEnforced", None, "NotEvaluated", "manifest is invalid")
    elif phase is Phase.DISABLED:
        egress = _condition("EgressEnforced", True, "DenyAll", "all traffic denied")
    else:
        egress = _condition(
            "EgressEnforced",
            *egress_condition(
                domains=facts.egress_domains,
                generation=facts.generation,
                through_core=facts.egress_through_core,
                report=facts.egress_report,
            ),
        )
    return [ready, valid, deps, token, available, egress]


def _with_transition_times(
    conditions: list[dict[str, str]],
    previous: Sequence[Mapping[str, Any]],
    now: datetime,
    generation: int,
) -> list[dict[str, Any]]:
    before = {c.get("type"): c for c in previous if isinstance(c, Mapping)}
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    result: list[dict[str, Any]] = []
    for cond in conditions:
        old = before.get(cond["type"])
        unchanged = old is not None and old.get("status") == cond["status"]
        since = old.get("lastTransitionTime") if unchanged and old is not None else None
        result.append(
            {**cond, "lastTransitionTime": since or stamp, "observedGeneration": generation}
        )
    return result


def _events_status(facts: PluginFacts, previous: object) -> dict[str, Any]:
    """Permissions, plus the counts while the core reports them; counts no longer reported are
    removed (``None`` in the merge patch) once, then left out, so nothing is rewritten."""
    events: dict[str, Any] = {
        "publishes": list(facts.event_publishes),
        "subscribes": list(facts.event_subscribes),
    }
    if facts.event_subscribes and facts.event_counts is not None:
        events["pending"] = facts.event_counts.pending
        events["dead_lettered"] = facts.event_counts.dead_lettered
    elif isinstance(previous, Mapping):
        for wire, name in (("pending", "pending"), ("deadLettered", "dead_lettered")):
            if previous.get(wire) is not None:
                events[name] = None
    return events


def derive_status(
    facts: PluginFacts,
    previous: Mapping[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """The status a plugin should have, given the facts and its current status.

    Fields owned by health monitoring (see ``HEALTH_FIELDS``) are left out, so a status patch
    never touches them (``health`` is seeded as unknown once); transition times are kept for
    conditions whose status did not change.
    """
    phase = _phase(facts)
    w = facts.workload
    prev_conditions = previous.get("conditions")
    conditions = _with_transition_times(
        _conditions(facts, phase),
        prev_conditions if isinstance(prev_conditions, list) else [],
        now,
        facts.generation,
    )
    token = (
        None
        if facts.token is None
        else {
            k: v
            for k, v in (
                ("secret_name", facts.token.secret_name),
                ("key_id", facts.token.key_id),
                ("expires_at", facts.token.expires_at),
                ("jti", facts.token.jti),
            )
            if v is not None
        }
    )
    fields: dict[str, Any] = {
        "observed_generation": facts.generation,
        "phase": phase.value,
        "ready": f"{w.ready_replicas}/{w.desired_replicas}",
        "ready_replicas": w.ready_replicas,
        "conditions": conditions,
        "validation_errors": [v.to_dict() for v in facts.errors],
        "token": token,
    }
    if facts.event_publishes or facts.event_subscribes:  # effective event-lane permissions
        fields["events"] = _events_status(facts, previous.get("events"))
    elif previous.get("events"):  # declared no more: a merge patch removes it
        fields["events"] = None
    if facts.permissions is not None:
        fields["permissions"] = {
            "may_call": list(facts.permissions.get("mayCall", ())),
            "callable_by": list(facts.permissions.get("callableBy", ())),
        }
    # Health fields belong to the health monitor, which patches them on its own schedule;
    # resending a cached copy here could undo a newer probe result. Only seed the default.
    if "health" not in previous:
        fields["health"] = Health.UNKNOWN.value
    return status_patch_body(**fields)


def status_changed(previous: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Whether writing ``desired`` would change what is stored."""
    return any(previous.get(k) != v for k, v in desired.items())
