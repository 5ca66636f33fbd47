"""The audit trail: one record model, tamper evidence, and the single call site every lane uses.

Pure modules only (no I/O): ``hook`` (the call site), ``actions`` (the vocabulary),
``redact`` (header allowlist, token scrubbing), ``record`` (what each audit_level keeps),
``chain`` (RFC 8785 hash chain), ``checkpoint`` (Ed25519-signed heads), ``verify``, ``query``,
``fhir`` (AuditEvent) and ``lifecycle`` (operator Events as lifecycle actions). The auditor and
its sinks (file, JetStream) live in ``vivified.dataplane.audit``; docs/audit.md has the whole.
"""

from vivified.audit.hook import AuditEntry, Auditor, AuditUnavailable, MemoryAuditor, NullAuditor

__all__ = ["AuditEntry", "AuditUnavailable", "Auditor", "MemoryAuditor", "NullAuditor"]
