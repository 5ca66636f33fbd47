"""Counters the auditor keeps, rendered in the Prometheus text format by whoever serves /metrics.

Plain integers instead of a metrics library: the core's app factory (issue 16) decides how
metrics are served; these names are the contract.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class AuditMetrics:
    """What happened to entries: written, skipped, held (then written) or refused (503)."""

    records_written_total: int = 0
    """Records the sink confirmed."""
    records_skipped_total: int = 0
    """Entries the acting plugin's ``audit_level`` does not keep (``none``, allowed traffic)."""
    records_held_total: int = 0
    """Records held in memory during a sink outage (written later, in order)."""
    refused_unavailable_total: int = 0
    """Entries that had to be stored but could not: their requests failed closed (503)."""
    refused_backpressure_total: int = 0
    """Entries refused because the outage backlog was full (back-pressure, never a drop)."""
    records_after_answer_total: int = 0
    """Records of answered calls (``invoke.result``) queued without holding the answer."""
    records_lost_total: int = 0
    """Records accepted but never stored: an answered call's record refused by a full backlog,
    or records still held at shutdown with the sink down. Zero unless something is wrong."""
    outages_total: int = 0
    checkpoints_total: int = 0
    checkpoint_failures_total: int = 0
    backlog: int = 0
    """Records held now (a gauge)."""
    pending: int = 0
    """Records of answered calls queued for the next batch now (a gauge)."""
    sink_up: int = 1
    """1 while the sink confirms writes, 0 during an outage (a gauge)."""

    def prometheus(self, prefix: str = "vivified_audit_") -> str:
        """The text exposition format, one sample per counter."""
        lines: list[str] = []
        for item in fields(self):
            kind = "counter" if item.name.endswith("_total") else "gauge"
            lines.append(f"# TYPE {prefix}{item.name} {kind}")
            lines.append(f"{prefix}{item.name} {getattr(self, item.name)}")
        return "\n".join(lines) + "\n"
