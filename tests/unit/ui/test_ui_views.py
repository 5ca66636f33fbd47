"""The Admin UI's pure view models: list rows, grouping, filters, pagination, actions."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from tests.e2e.kube import load_example, plugin_body

from vivified.dataplane.ui import views


def cr(body: dict[str, Any], namespace: str = "ns", **status: Any) -> dict[str, Any]:
    obj = copy.deepcopy(body)
    obj["metadata"]["namespace"] = namespace
    obj["status"] = status
    return obj


def test_row_from_the_seed_example() -> None:
    obj = cr(
        load_example("user-management.yaml"),
        phase="Active",
        health="degraded",
        ready="1/1",
        consecutiveFailures=2,
        lastError="timeout",
    )
    row = views.plugin_row(obj)
    assert (row.name, row.display_name, row.version) == (
        "user-management",
        "User Management Plugin",
        "1.0.0",
    )
    assert (row.phase, row.health, row.ready, row.enabled) == ("Active", "degraded", "1/1", True)
    assert (row.consecutive_failures, row.last_error) == (2, "timeout")
    assert [b.label for b in row.badges] == ["PII", "audited"]
    assert row.data_classification == "pii, internal"
    assert row.audit_level == "detailed"
    assert row.href == "/ui/plugins/ns/user-management"


def test_missing_status_and_odd_types_do_not_break_a_row() -> None:
    row = views.plugin_row({"metadata": {"name": "x"}, "spec": {"manifest": {"traits": "nope"}}})
    assert (row.phase, row.health, row.ready, row.version) == ("Pending", "unknown", "—", "—")
    assert row.badges == ()
    assert views.plugin_row({}).name == ""


def test_badges_known_first_then_others_by_name() -> None:
    got = views.badges(["emits_events", "external_service", "handles_phi"])
    assert [(b.label, b.kind) for b in got] == [
        ("PHI", "handles_phi"),
        ("external", "external_service"),
        ("emits_events", "other"),
    ]


def test_long_text_is_cut_with_a_marker() -> None:
    assert views.cut("x" * 1000, 10) == "x" * 9 + "…"
    assert views.cut(None) == "—"


def _many(n: int, contract: str = "StoragePlugin") -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        body = plugin_body(f"p{i:04d}")
        body["spec"]["manifest"]["contracts"] = [contract]
        out.append(cr(body, phase="Active" if i % 2 else "Pending", health="healthy"))
    return out


def test_grouped_by_contract_in_fixed_order() -> None:
    objs = [
        *_many(2, "StoragePlugin"),
        cr(load_example("user-management.yaml")),
        cr(load_example("external-crm.yaml")),
    ]
    page = views.list_page(objs, views.Filters())
    assert [g.title for g in page.groups] == ["Identity", "Communication", "Storage"]
    assert page.total == 4


def test_filters_and_pagination_for_thousands() -> None:
    objs = _many(2500)
    page = views.list_page(objs, views.Filters(phase="Active", page=3))
    assert page.total == 1250
    assert page.pages == 25
    assert len(page.rows) == views.PAGE_SIZE
    assert page.prev_query == "phase=Active&page=2"
    assert page.next_query == "phase=Active&page=4"
    last = views.list_page(objs, views.Filters(page=999))
    assert last.page == last.pages == 50
    assert last.next_query is None


def test_filters_parse_drops_unknown_values() -> None:
    f = views.Filters.parse({"phase": "<script>", "health": "healthy", "page": "-4"}, "team-a")
    assert (f.phase, f.health, f.page, f.namespace) == ("", "healthy", 1, "team-a")
    assert views.Filters.parse({"page": "abc", "namespace": " b "}).namespace == "b"


def test_action_names_the_consequence_and_the_denial() -> None:
    row = views.plugin_row(cr(load_example("user-management.yaml")))
    allowed = views.action_for(row, True)
    assert (allowed.label, allowed.allowed, allowed.reason) == ("Disable", True, "")
    assert "scales it to 0, revokes its token" in allowed.consequence
    assert "all traffic" in allowed.consequence
    denied = views.action_for(row, False)
    assert not denied.allowed
    assert "may read this plugin but not change it" in denied.reason
    disabled = cr(load_example("user-management.yaml"))
    disabled["spec"]["enabled"] = False
    assert views.action_for(views.plugin_row(disabled), True).label == "Enable"


def test_detail_page_lanes_events_metrics() -> None:
    obj = cr(
        load_example("external-crm.yaml"),
        phase="Active",
        metrics={"uptime_seconds": 12, "requests": 3},
        conditions=[{"type": "Ready", "status": "True", "reason": "Active", "message": "ok"}],
    )
    events = [
        {
            "type": "Normal",
            "reason": "Old",
            "message": "a",
            "lastTimestamp": "2026-01-01T00:00:00Z",
        },
        {
            "type": "Warning",
            "reason": "New",
            "message": "b",
            "lastTimestamp": "2026-02-01T00:00:00Z",
        },
    ]
    page = views.detail_page(obj, events, "id: external-crm\n")
    assert [e.reason for e in page.events] == ["New", "Old"]
    assert page.metrics == (("requests", "3"), ("uptime_seconds", "12"))
    lanes = {lane.lane: lane.allowed for lane in page.lanes}
    assert lanes["proxy (external hosts)"] == ("api.salesforce.com", "login.salesforce.com")
    assert lanes["operator (calls to other plugins)"] == ("user-management",)
    assert page.conditions[0].type == "Ready"


def test_status_json_keys_by_namespace_and_name() -> None:
    row = views.plugin_row(cr(load_example("user-management.yaml"), phase="Disabled"))
    assert views.status_json([row])["ns/user-management"]["phase"] == "Disabled"


@pytest.mark.parametrize(
    ("reason", "status", "expected"),
    [
        (
            "no permissions reported yet: the operator lane as the manifest declares it",
            {},
            [("operator (calls to other plugins)", ("user-management",), "manifest")],
        ),
        (
            "reported permissions replace only the operator lane's row",
            {"permissions": {"mayCall": ["user-management"], "callableBy": ["billing"]}},
            [
                ("operator (may call)", ("user-management",), "status"),
                ("operator (callable by)", ("billing",), "status"),
            ],
        ),
    ],
)
def test_lanes_keep_proxy_and_events_whatever_the_status_reports(
    reason: str, status: dict[str, object], expected: list[tuple[str, tuple[str, ...], str]]
) -> None:
    manifest = {
        "dependencies": ["user-management"],
        "allowed_domains": ["api.partner.test"],
        "events": {"publishes": ["UserCreated"], "subscribes": []},
    }
    shown = [(v.lane, v.allowed, v.source) for v in views.lanes(manifest, status)]
    assert shown[: len(expected)] == expected, reason
    assert shown[len(expected) :] == [
        ("proxy (external hosts)", ("api.partner.test",), "manifest"),
        ("events (publish)", ("UserCreated",), "manifest"),
        ("events (subscribe)", (), "manifest"),
    ], reason


def test_a_subscribers_delivery_counts_are_shown_when_the_status_has_them() -> None:
    manifest = {"events": {"subscribes": ["UserCreated"]}}
    counted = {"events": {"subscribes": ["UserCreated"], "pending": 2, "deadLettered": 5}}
    shown = {v.lane: (v.allowed, v.source) for v in views.lanes(manifest, counted)}
    assert shown["events (deliveries)"] == (("pending 2", "dead-lettered 5"), "status")
    bare = {v.lane for v in views.lanes(manifest, {"events": {"subscribes": ["UserCreated"]}})}
    assert "events (deliveries)" not in bare, "no counts reported: no row claiming any"
