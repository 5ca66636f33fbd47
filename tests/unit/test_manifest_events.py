"""Vivified's `events` manifest extension: every error at once, did-you-mean, traits."""

from __future__ import annotations

from typing import Any

import pytest
from tests.seed import user_management_manifest

from vivified.event_types import EventTypeError, packaged_registry
from vivified.policy import validate_manifest


def _with(events: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return user_management_manifest(events=events, **extra)


def _errors(raw: dict[str, Any]) -> dict[str, str]:
    return {v.field: v.message for v in validate_manifest(raw).errors}


def test_user_management_may_publish_user_created() -> None:
    report = validate_manifest(_with({"publishes": ["UserCreated"]}))
    assert report.valid, report.errors
    assert report.manifest is not None
    assert report.manifest.events is not None
    assert report.manifest.events.publishes == ["UserCreated"]


def test_unknown_type_did_you_mean_and_duplicates_all_at_once() -> None:
    errors = _errors(_with({"publishes": ["UserCreatd", "UserCreated", "UserCreated"]}))
    assert "did you mean 'UserCreated'?" in errors["events.publishes[0]"]
    assert "listed more than once" in errors["events.publishes[2]"]


def test_subscribing_needs_the_events_endpoint() -> None:
    errors = _errors(_with({"subscribes": ["DocumentProcessed"]}))
    assert "endpoints.events" in errors["endpoints.events"]


def test_pii_type_needs_handles_pii() -> None:
    raw = _with(
        {"subscribes": ["UserCreated"]},
        traits=["audit_required"],
        security={"authentication_required": True, "data_classification": ["internal"]},
        endpoints={"events": "/events"},
    )
    errors = _errors(raw)
    assert "'handles_pii' trait to subscribe to it" in errors["events.subscribes[0]"]


def test_phi_type_needs_handles_phi_to_publish() -> None:
    errors = _errors(_with({"publishes": ["PatientAdmitted"]}))
    assert "'handles_phi'" in errors["events.publishes[0]"]


def test_bad_name_and_unknown_key() -> None:
    errors = _errors(_with({"publishes": ["no spaces"], "subscribe": []}))
    assert "not a valid name" in errors["events.publishes[0]"]
    assert "subscribe" in " ".join(errors)


def test_installation_may_add_but_not_redefine_types() -> None:
    base = packaged_registry()
    extra = {"acme.InvoicePaid": {"classification": "internal", "schema": {"type": "object"}}}
    assert base.extended(extra, "values").get("acme.InvoicePaid") is not None
    with pytest.raises(EventTypeError, match="not redefine"):
        base.extended({"UserCreated": {"classification": "public", "schema": {}}}, "values")
    with pytest.raises(EventTypeError, match="classification must be one of"):
        base.extended({"X": {"classification": "secret", "schema": {"type": "nope"}}}, "v")


def test_cli_events_list_prints_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    from vivified.cli import main  # noqa: PLC0415

    assert main(["events", "list", "-o", "json"]) == 0
    listed = {
        t["type"]: t["classification"] for t in __import__("json").loads(capsys.readouterr().out)
    }
    assert listed["UserCreated"] == "pii"
    assert listed["PatientAdmitted"] == "phi"


def test_status_carries_the_effective_event_permissions() -> None:
    from datetime import UTC, datetime  # noqa: PLC0415

    from vivified.resource import PluginStatus  # noqa: PLC0415
    from vivified.status import PluginFacts, derive_status  # noqa: PLC0415

    facts = PluginFacts(generation=1, event_publishes=("UserCreated",))
    status = derive_status(facts, {}, datetime.now(UTC))
    assert status["events"] == {"publishes": ["UserCreated"], "subscribes": []}
    assert "events" not in derive_status(PluginFacts(generation=1), {}, datetime.now(UTC))
    dropped = derive_status(PluginFacts(generation=2), status, datetime.now(UTC))
    assert "events" in dropped
    assert dropped["events"] is None
    parsed = PluginStatus.model_validate({"events": {**status["events"], "deadLettered": 2}})
    assert parsed.events is not None
    assert parsed.events.dead_lettered == 2
