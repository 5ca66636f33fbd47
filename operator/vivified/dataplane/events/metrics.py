"""Counters of the event lane, in Prometheus text format (the core's /metrics includes them)."""

from __future__ import annotations

from collections import Counter


class EventMetrics:
    def __init__(self) -> None:
        self.published: Counter[tuple[str, str]] = Counter()  # (type, reason)
        self.delivered: Counter[tuple[str, str]] = Counter()  # (subscriber, type)
        self.failed_attempts: Counter[tuple[str, str]] = Counter()
        self.dead_lettered: Counter[tuple[str, str]] = Counter()

    def lines(self) -> list[str]:
        out: list[str] = []

        def emit(
            name: str, help_: str, labels: tuple[str, str], data: Counter[tuple[str, str]]
        ) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} counter")
            for (a, b), value in sorted(data.items()):
                out.append(f'{name}{{{labels[0]}="{a}",{labels[1]}="{b}"}} {value}')

        emit(
            "vivified_events_published_total",
            "Publish decisions by type and reason.",
            ("type", "reason"),
            self.published,
        )
        emit(
            "vivified_events_delivered_total",
            "Deliveries acknowledged by subscribers.",
            ("subscriber", "type"),
            self.delivered,
        )
        emit(
            "vivified_events_delivery_failures_total",
            "Failed delivery attempts.",
            ("subscriber", "type"),
            self.failed_attempts,
        )
        emit(
            "vivified_events_dead_lettered_total",
            "Events moved to the dead-letter stream.",
            ("subscriber", "type"),
            self.dead_lettered,
        )
        return out
