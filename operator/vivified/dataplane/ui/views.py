"""Pure view models: VivifiedPlugin objects (as the API server returns them) → what a page shows.

No I/O and no HTML here: handlers fetch, these functions shape, templates render (escaped).
Everything read from an object is untrusted: missing fields become "—", long text is cut with a
marker, and nothing here is ever marked safe for HTML.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

MISSING = "—"
TEXT_MAX = 300
PAGE_SIZE = 50
CONTRACT_GROUPS: tuple[tuple[str, str], ...] = (
    ("IdentityPlugin", "Identity"),
    ("CommunicationPlugin", "Communication"),
    ("StoragePlugin", "Storage"),
)
OTHER_GROUP = "Other"
#: Traits that matter to a compliance reader, shown as labelled badges.
TRAIT_BADGES: Mapping[str, tuple[str, str]] = {
    "handles_phi": ("PHI", "Handles protected health information"),
    "handles_pii": ("PII", "Handles personally identifiable information"),
    "audit_required": ("audited", "Every action is audited; audit outage fails closed"),
    "external_service": ("external", "Calls external hosts through the proxy lane"),
}
PHASES = ("Pending", "Active", "Disabled", "Invalid")
HEALTHS = ("unknown", "healthy", "degraded", "unhealthy")
DISABLE_CONSEQUENCE = (
    "Disabling scales it to 0, revokes its token, and all traffic to and from it is denied."
)
ENABLE_CONSEQUENCE = "Enabling starts its pods again and issues it a new token."


def cut(value: object, limit: int = TEXT_MAX) -> str:
    """A display string of at most ``limit`` characters (the rest replaced by a marker)."""
    if value is None or value == "":
        return MISSING
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return list(value) if isinstance(value, list) else []


@dataclass(frozen=True)
class Badge:
    label: str
    title: str
    kind: str


@dataclass(frozen=True)
class PluginRow:
    """One line of the list."""

    namespace: str
    name: str
    display_name: str
    version: str
    phase: str
    health: str
    ready: str
    enabled: bool
    consecutive_failures: int
    last_error: str
    badges: tuple[Badge, ...]
    data_classification: str
    audit_level: str
    contracts: tuple[str, ...]

    @property
    def href(self) -> str:
        return f"/ui/plugins/{quote(self.namespace, safe='')}/{quote(self.name, safe='')}"

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def badges(traits: Iterable[object]) -> tuple[Badge, ...]:
    """Known compliance traits first as labelled badges, then any other trait by its name."""
    names = [str(t) for t in traits]
    known = [Badge(*TRAIT_BADGES[t], kind=t) for t in TRAIT_BADGES if t in names]
    other = [Badge(cut(t, 64), "trait", "other") for t in names if t not in TRAIT_BADGES]
    return (*known, *other)


def plugin_row(obj: Mapping[str, Any]) -> PluginRow:
    meta, spec, status = _map(obj.get("metadata")), _map(obj.get("spec")), _map(obj.get("status"))
    manifest = _map(spec.get("manifest"))
    security, compliance = _map(manifest.get("security")), _map(manifest.get("compliance"))
    enabled = spec.get("enabled", True) is not False
    failures = status.get("consecutiveFailures")
    return PluginRow(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        display_name=cut(manifest.get("name"), 128),
        version=cut(manifest.get("version"), 64),
        phase=str(status.get("phase") or "Pending"),
        health=str(status.get("health") or "unknown"),
        ready=cut(status.get("ready"), 16),
        enabled=enabled,
        consecutive_failures=failures if isinstance(failures, int) else 0,
        last_error=cut(status.get("lastError")) if status.get("lastError") else "",
        badges=badges(_list(manifest.get("traits"))),
        data_classification=", ".join(
            cut(c, 32) for c in _list(security.get("data_classification"))
        )
        or MISSING,
        audit_level=cut(compliance.get("audit_level"), 16),
        contracts=tuple(str(c) for c in _list(manifest.get("contracts"))),
    )


@dataclass(frozen=True)
class Filters:
    """What the user asked to see; unknown values are dropped, not trusted."""

    namespace: str = ""
    phase: str = ""
    health: str = ""
    page: int = 1

    @classmethod
    def parse(cls, query: Mapping[str, str], default_namespace: str = "") -> Filters:
        phase = query.get("phase", "")
        health = query.get("health", "")
        try:
            page = max(1, int(query.get("page", "1")))
        except ValueError:
            page = 1
        namespace = query.get("namespace", default_namespace).strip()[:63]
        return cls(
            namespace=namespace,
            phase=phase if phase in PHASES else "",
            health=health if health in HEALTHS else "",
            page=page,
        )

    def accepts(self, row: PluginRow) -> bool:
        return (not self.phase or row.phase == self.phase) and (
            not self.health or row.health == self.health
        )

    def query(self, **changes: object) -> str:
        """The query string of these filters with ``changes`` applied (empty values dropped)."""
        values = {
            "namespace": self.namespace,
            "phase": self.phase,
            "health": self.health,
            "page": self.page,
            **changes,
        }
        return urlencode({k: v for k, v in values.items() if v not in ("", None, 1)})


@dataclass(frozen=True)
class Group:
    title: str
    rows: tuple[PluginRow, ...]


@dataclass(frozen=True)
class ListPage:
    groups: tuple[Group, ...]
    total: int
    """Plugins that pass the filters (all pages)."""
    page: int
    pages: int
    filters: Filters
    truncated: bool = False

    @property
    def rows(self) -> tuple[PluginRow, ...]:
        return tuple(r for g in self.groups for r in g.rows)

    @property
    def prev_query(self) -> str | None:
        return self.filters.query(page=self.page - 1) if self.page > 1 else None

    @property
    def next_query(self) -> str | None:
        return self.filters.query(page=self.page + 1) if self.page < self.pages else None


def group_title(row: PluginRow) -> str:
    """The first contract of the plugin decides its group (a plugin appears once)."""
    titles = dict(CONTRACT_GROUPS)
    for contract in row.contracts:
        if contract in titles:
            return titles[contract]
    return OTHER_GROUP


def list_page(
    objects: Iterable[Mapping[str, Any]],
    filters: Filters,
    page_size: int = PAGE_SIZE,
    truncated: bool = False,
) -> ListPage:
    """Filter, order (group, namespace, name), paginate, then group the page's rows."""
    order = {title: i for i, (_, title) in enumerate(CONTRACT_GROUPS)}
    rows = sorted(
        (r for r in map(plugin_row, objects) if filters.accepts(r)),
        key=lambda r: (order.get(group_title(r), len(order)), r.namespace, r.name),
    )
    pages = max(1, math.ceil(len(rows) / page_size))
    page = min(filters.page, pages)
    shown = rows[(page - 1) * page_size : page * page_size]
    titles = [title for _, title in CONTRACT_GROUPS] + [OTHER_GROUP]
    groups = tuple(
        Group(title, tuple(r for r in shown if group_title(r) == title))
        for title in titles
        if any(group_title(r) == title for r in shown)
    )
    return ListPage(groups, len(rows), page, pages, filters, truncated)


@dataclass(frozen=True)
class Action:
    """The Enable or Disable button and whether this user may press it."""

    enable: bool
    allowed: bool
    reason: str

    @property
    def label(self) -> str:
        return "Enable" if self.enable else "Disable"

    @property
    def consequence(self) -> str:
        return ENABLE_CONSEQUENCE if self.enable else DISABLE_CONSEQUENCE


def action_for(row: PluginRow, may_patch: bool, denial: str = "") -> Action:
    reason = (
        ""
        if may_patch
        else (
            "You may read this plugin but not change it: your Kubernetes RBAC does not allow "
            f"'patch' on vivifiedplugins in namespace {row.namespace!r}."
            + (f" ({denial})" if denial else "")
        )
    )
    return Action(enable=not row.enabled, allowed=may_patch, reason=reason)


@dataclass(frozen=True)
class ConditionView:
    type: str
    status: str
    reason: str
    message: str
    since: str


@dataclass(frozen=True)
class EventView:
    type: str
    reason: str
    message: str
    count: int
    last_seen: str


@dataclass(frozen=True)
class LaneView:
    lane: str
    allowed: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class DetailPage:
    row: PluginRow
    description: str
    image: str
    manifest_yaml: str
    conditions: tuple[ConditionView, ...]
    events: tuple[EventView, ...]
    lanes: tuple[LaneView, ...]
    metrics: tuple[tuple[str, str], ...]
    last_probe: str
    validation_errors: tuple[tuple[str, str], ...]
    hipaa_controls: tuple[str, ...] = field(default_factory=tuple)


def conditions(status: Mapping[str, Any]) -> tuple[ConditionView, ...]:
    return tuple(
        ConditionView(
            type=cut(_map(c).get("type"), 64),
            status=cut(_map(c).get("status"), 16),
            reason=cut(_map(c).get("reason"), 128),
            message=cut(_map(c).get("message")),
            since=cut(_map(c).get("lastTransitionTime"), 40),
        )
        for c in _list(status.get("conditions"))
    )


def _count(value: object) -> int:
    return value if isinstance(value, int) else 1


def events(items: Sequence[Mapping[str, Any]], limit: int = 20) -> tuple[EventView, ...]:
    """Newest first (by last timestamp), at most ``limit``."""

    def when(e: Mapping[str, Any]) -> str:
        return str(
            e.get("lastTimestamp")
            or e.get("eventTime")
            or _map(e.get("metadata")).get("creationTimestamp")
            or ""
        )

    ordered = sorted(items, key=when, reverse=True)[:limit]
    return tuple(
        EventView(
            type=cut(e.get("type"), 16),
            reason=cut(e.get("reason"), 128),
            message=cut(e.get("message")),
            count=_count(e.get("count")),
            last_seen=cut(when(e), 40),
        )
        for e in ordered
    )


def lanes(manifest: Mapping[str, Any], status: Mapping[str, Any]) -> tuple[LaneView, ...]:
    """Effective permissions per lane: the operator lane from the status when the operator
    reports it (``permissions``: whom it may call, who may call it), else what the manifest
    declares; the proxy and event lanes from the manifest (which the core enforces), plus the
    subscriber's delivery counts when the status has them (``status.events``)."""
    reported = _map(status.get("permissions"))
    if reported:
        operator: tuple[LaneView, ...] = (
            LaneView(
                "operator (may call)",
                tuple(cut(v, 64) for v in _list(reported.get("mayCall"))),
                "status",
            ),
            LaneView(
                "operator (callable by)",
                tuple(cut(v, 64) for v in _list(reported.get("callableBy"))),
                "status",
            ),
        )
    else:
        operator = (
            LaneView(
                "operator (calls to other plugins)",
                tuple(cut(d, 64) for d in _list(manifest.get("dependencies"))),
                "manifest",
            ),
        )
    events_decl = _map(manifest.get("events"))
    counted = _map(status.get("events"))
    counts = tuple(
        f"{label} {counted[key]}"
        for key, label in (("pending", "pending"), ("deadLettered", "dead-lettered"))
        if isinstance(counted.get(key), int)
    )
    delivery = (LaneView("events (deliveries)", counts, "status"),) if counts else ()
    return (
        *operator,
        LaneView(
            "proxy (external hosts)",
            tuple(cut(d, 253) for d in _list(manifest.get("allowed_domains"))),
            "manifest",
        ),
        LaneView(
            "events (publish)",
            tuple(cut(e, 128) for e in _list(events_decl.get("publishes"))),
            "manifest",
        ),
        LaneView(
            "events (subscribe)",
            tuple(cut(e, 128) for e in _list(events_decl.get("subscribes"))),
            "manifest",
        ),
        *delivery,
    )


def detail_page(
    obj: Mapping[str, Any], event_items: Sequence[Mapping[str, Any]], manifest_yaml: str
) -> DetailPage:
    spec, status = _map(obj.get("spec")), _map(obj.get("status"))
    manifest = _map(spec.get("manifest"))
    metrics = _map(status.get("metrics"))
    return DetailPage(
        row=plugin_row(obj),
        description=cut(manifest.get("description"), 2048),
        image=cut(spec.get("image"), 512),
        manifest_yaml=manifest_yaml,
        conditions=conditions(status),
        events=events(event_items),
        lanes=lanes(manifest, status),
        metrics=tuple((cut(k, 64), cut(v, 200)) for k, v in sorted(metrics.items())),
        last_probe=cut(status.get("lastProbeTime"), 40),
        validation_errors=tuple(
            (cut(_map(v).get("field"), 128), cut(_map(v).get("message")))
            for v in _list(status.get("validationErrors"))
        ),
        hipaa_controls=tuple(
            cut(c, 64) for c in _list(_map(manifest.get("compliance")).get("hipaa_controls"))
        ),
    )


def status_json(rows: Iterable[PluginRow]) -> dict[str, dict[str, object]]:
    """What the polling script needs to refresh a page's cells: keyed by ``namespace/name``."""
    return {
        r.key: {
            "phase": r.phase,
            "health": r.health,
            "ready": r.ready,
            "enabled": r.enabled,
            "failures": r.consecutive_failures,
            "lastError": r.last_error,
        }
        for r in rows
    }
