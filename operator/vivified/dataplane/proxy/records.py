"""The proxy lane's audit records: one per decision, one per close (``vivified.audit.hook``).

Pure builders; the server sends what they return. Never a credential: heads are summarised by
method, target host and port only.
"""

from __future__ import annotations

from typing import Any, Protocol

from vivified.audit.hook import AuditEntry
from vivified.dataplane.directory import PluginRecord
from vivified.policy.egress import EgressDecision

from .head import RequestHead

__all__ = ["auth_failure_entry", "close_entry", "decision_entry"]


class CloseFacts(Protocol):
    close_reason: str
    address: str
    bytes_in: int
    bytes_out: int

    @property
    def duration(self) -> float: ...


def _audit_options(record: PluginRecord | None) -> dict[str, Any]:
    if record is None:
        return {}
    return {
        "audit_level": str(record.manifest.compliance.audit_level),
        "audit_required": "audit_required" in record.manifest.traits,
    }


def decision_entry(
    agent: str,
    record: PluginRecord | None,
    head: RequestHead,
    decision: EgressDecision,
    dns_ms: float,
) -> AuditEntry:
    details: dict[str, object] = {
        "method": head.method,
        "addresses": [str(a) for a in decision.addresses],
        "dns_ms": round(dns_ms, 3),
    }
    if decision.would_deny:
        details["would_deny"] = decision.would_deny
        details["mode"] = "report"
    return AuditEntry(
        action="egress.decision",
        agent=agent,
        outcome="allowed" if decision.allowed else "refused",
        reason=decision.would_deny or ("" if decision.allowed else decision.reason),
        entity={"host": decision.host[:255], "port": str(decision.port)},
        details=details,
        **_audit_options(record),
    )


def auth_failure_entry(head: RequestHead, reason: str) -> AuditEntry:
    return AuditEntry(
        action="egress.decision",
        agent="unauthenticated",
        outcome="refused",
        reason=reason,
        entity={"target": head.target[:255]},
        details={"method": head.method},
    )


def close_entry(record: PluginRecord, decision: EgressDecision, facts: CloseFacts) -> AuditEntry:
    reason = facts.close_reason or "eof"
    return AuditEntry(
        action="egress.close",
        agent=record.plugin_id,
        outcome="allowed" if reason in ("eof", "shutdown") else "error",
        reason=reason,
        entity={"host": decision.host, "port": str(decision.port)},
        details={
            "address": facts.address,
            "bytes_in": facts.bytes_in,
            "bytes_out": facts.bytes_out,
            "duration_ms": round(facts.duration * 1000, 3),
        },
        **_audit_options(record),
    )
