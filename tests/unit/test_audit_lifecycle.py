"""Operator lifecycle changes reach the trail through the Event recorder's one call."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from vivified.audit import AuditEntry, AuditUnavailable, MemoryAuditor
from vivified.audit.lifecycle import lifecycle_entry
from vivified.dataplane.audit import operator as operator_audit
from vivified.shell.events import EventRecorder

PLUGIN: dict[str, Any] = {
    "metadata": {"name": "billing", "namespace": "plugins", "generation": 3, "uid": "u1"},
    "spec": {"manifest": {"id": "billing"}},
}


class FakeKube:
    def __init__(self) -> None:
        self.posted: list[dict[str, Any]] = []

    async def request(self, method: str, path: str, body: dict[str, Any]) -> None:
        self.posted.append(body)


@pytest.fixture
def memory() -> Iterator[MemoryAuditor]:
    auditor = MemoryAuditor()
    operator_audit.configure(auditor)
    yield auditor
    operator_audit.configure(None)


@pytest.mark.parametrize(
    ("reason", "message", "action"),
    [
        ("PhasePending", "Pending: waiting", "lifecycle.validated"),
        ("PhaseActive", "Active: ready", "lifecycle.enabled"),
        ("PhaseDisabled", "Disabled: spec.enabled is false", "lifecycle.disabled"),
        ("ValidationFailed", "1 validation error(s): id: bad", "lifecycle.invalid"),
        ("TokenIssued", "token j1 issued with key k1", "lifecycle.token_minted"),
        ("TokenRevoked", "plugin disabled: token revoked", "lifecycle.token_revoked"),
        (
            "ChildrenApplied",
            "ServiceAccount billing created; Deployment billing created",
            "lifecycle.created",
        ),
    ],
)
async def test_operator_events_become_lifecycle_records(
    memory: MemoryAuditor, reason: str, message: str, action: str
) -> None:
    kube = FakeKube()
    await EventRecorder(kube, lambda: datetime.now(UTC)).normal(PLUGIN, reason, message)  # type: ignore[arg-type]
    assert len(kube.posted) == 1
    assert [e.action for e in memory.entries] == [action]
    entry = memory.entries[0]
    assert entry.agent == "system:vivified-operator"
    assert entry.entity["plugin"] == "billing"
    assert entry.entity["namespace"] == "plugins"
    assert entry.outcome == ("refused" if action == "lifecycle.invalid" else "allowed")


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("PhaseInvalid", "Invalid: ..."),
        ("ChildrenApplied", "Deployment billing updated"),
        ("Probe", "x"),
    ],
)
def test_other_events_are_not_lifecycle_changes(reason: str, message: str) -> None:
    assert lifecycle_entry(PLUGIN, reason, message) is None


async def test_audit_failure_never_breaks_the_operator() -> None:
    class Down:
        async def record(self, entry: AuditEntry) -> None:
            raise AuditUnavailable("audit_unavailable")

    operator_audit.configure(Down())
    try:
        before = operator_audit.lost()
        recorder = EventRecorder(FakeKube(), lambda: datetime.now(UTC))  # type: ignore[arg-type]
        await recorder.normal(PLUGIN, "PhaseActive", "x")
        assert operator_audit.lost() == before + 1
    finally:
        operator_audit.configure(None)


async def test_unconfigured_operator_audits_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIVIFIED_AUDIT_SINK", raising=False)
    operator_audit.configure(None)
    await operator_audit.audit_lifecycle(PLUGIN, "PhaseActive", "x")
    operator_audit.configure(None)


async def test_operator_from_env_writes_a_file_trail(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("VIVIFIED_AUDIT_SINK", f"file:{tmp_path / 'trail'}")
    monkeypatch.setenv("HOSTNAME", "op-0")
    operator_audit.configure(None)
    try:
        await operator_audit.audit_lifecycle(PLUGIN, "PhaseDisabled", "Disabled")
        auditor = await operator_audit._auditor()
        await auditor.close()  # type: ignore[attr-defined]
    finally:
        operator_audit.configure(None)
    text = (tmp_path / "trail").read_text()
    assert '"writer":"operator-op-0"' in text
    assert '"action":"lifecycle.disabled"' in text
