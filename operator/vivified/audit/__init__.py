"""The audit trail: one record model, tamper evidence, and the single call site every lane uses.

Pure modules only (no I/O). Sinks that store records live in the data plane
(``vivified.dataplane``) and in the operator's shell; they implement :class:`Auditor`.
"""

from vivified.audit.hook import AuditEntry, Auditor, AuditUnavailable, MemoryAuditor, NullAuditor

__all__ = ["AuditEntry", "AuditUnavailable", "Auditor", "MemoryAuditor", "NullAuditor"]
