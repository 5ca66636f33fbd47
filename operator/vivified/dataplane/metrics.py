"""A minimal Prometheus registry: labelled counters and histograms, text exposition 0.0.4.

Why not ``prometheus_client``: the core needs two metric types and a fixed label set; a
hundred lines keep the image free of another dependency and its global default registry
(tests build many apps in one process). Label values are reasons and outcomes (bounded sets),
never caller-supplied strings.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Sequence

__all__ = ["Counter", "Histogram", "Registry"]

DEFAULT_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


class Counter:
    def __init__(self, name: str, help_text: str, labels: Sequence[str]) -> None:
        self.name, self.help, self.label_names = name, help_text, tuple(labels)
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def inc(self, *values: str, amount: float = 1.0) -> None:
        with self._lock:
            self._values[values] = self._values.get(values, 0.0) + amount

    def value(self, *values: str) -> float:
        return self._values.get(values, 0.0)

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        for values, count in sorted(self._values.items()):
            yield f"{self.name}{_labels(self.label_names, values)} {_number(count)}"


class Histogram:
    def __init__(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str],
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> None:
        self.name, self.help, self.label_names = name, help_text, tuple(labels)
        self.buckets = tuple(sorted(buckets))
        self._series: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}
        self._lock = threading.Lock()

    def observe(self, seconds: float, *values: str) -> None:
        with self._lock:
            counts, total = self._series.setdefault(values, ([0] * (len(self.buckets) + 1), [0.0]))
            counts[bisect.bisect_left(self.buckets, seconds)] += 1
            total[0] += seconds

    def count(self, *values: str) -> int:
        series = self._series.get(values)
        return sum(series[0]) if series else 0

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        for values, (counts, total) in sorted(self._series.items()):
            running = 0
            for bound, count in zip((*self.buckets, float("inf")), counts, strict=True):
                running += count
                le = "+Inf" if bound == float("inf") else _number(bound)
                labels = _labels(self.label_names, values, f'le="{le}"')
                yield f"{self.name}_bucket{labels} {running}"
            yield f"{self.name}_sum{_labels(self.label_names, values)} {total[0]!r}"
            yield f"{self.name}_count{_labels(self.label_names, values)} {running}"


class Registry:
    """The core's metrics. Lanes add their own with :meth:`counter` / :meth:`histogram`."""

    def __init__(self) -> None:
        self._metrics: dict[str, Counter | Histogram] = {}
        self.requests = self.counter(
            "vivified_core_requests_total",
            "Requests answered by the core, by lane, outcome and reason.",
            ("lane", "outcome", "reason"),
        )
        self.decisions = self.counter(
            "vivified_core_decisions_total",
            "Policy decisions, by lane, outcome and reason.",
            ("lane", "outcome", "reason"),
        )
        self.latency = self.histogram(
            "vivified_core_request_duration_seconds",
            "Time from request to response, by lane and outcome.",
            ("lane", "outcome"),
        )

    def counter(self, name: str, help_text: str, labels: Sequence[str]) -> Counter:
        metric = Counter(name, help_text, labels)
        self._metrics[name] = metric
        return metric

    def histogram(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str],
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> Histogram:
        metric = Histogram(name, help_text, labels, buckets)
        self._metrics[name] = metric
        return metric

    def render(self) -> str:
        lines: list[str] = []
        for name in sorted(self._metrics):
            lines.extend(self._metrics[name].render())
        return "\n".join(lines) + "\n"
