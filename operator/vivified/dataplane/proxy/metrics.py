"""Prometheus metrics of the proxy lane (served by the core's ``/metrics``).

The server only calls the methods below, so the backing library is one module's concern.
Labels are bounded: decisions carry the plugin id and the reason (both finite sets), never a
host name, which a plugin could vary without limit.
"""

from __future__ import annotations

from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["ProxyMetrics"]

_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
Phase = Literal["dns", "connect", "setup"]


class ProxyMetrics:
    """The lane's metrics in their own registry (several servers in one process, as in tests,
    never collide); the core appends :meth:`render` to its ``/metrics``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = CollectorRegistry() if registry is None else registry
        self.registry = reg
        self._decisions = Counter(
            "vivified_proxy_decisions_total",
            "Proxy lane decisions by plugin, outcome and reason",
            ["plugin", "outcome", "reason"],
            registry=reg,
        )
        self._refusals = Counter(
            "vivified_proxy_refusals_total",
            "Requests refused before a plugin was known (auth, malformed, limits)",
            ["reason"],
            registry=reg,
        )
        self._connections = Gauge(
            "vivified_proxy_connections_open", "Client connections open", registry=reg
        )
        self._tunnels = Gauge(
            "vivified_proxy_tunnels_open", "Upstream connections open", registry=reg
        )
        self._closed = Counter(
            "vivified_proxy_closed_total",
            "Upstream connections closed, by why",
            ["reason"],
            registry=reg,
        )
        self._bytes = Counter(
            "vivified_proxy_bytes_total",
            "Bytes relayed (out = plugin to upstream)",
            ["direction"],
            registry=reg,
        )
        self._seconds = Histogram(
            "vivified_proxy_seconds",
            "Time spent: dns (resolution), connect (upstream), setup (head to tunnel up)",
            ["phase"],
            buckets=_FAST,
            registry=reg,
        )

    def decided(self, plugin: str, outcome: str, reason: str) -> None:
        self._decisions.labels(plugin, outcome, reason).inc()

    def decisions(self, plugin: str, outcome: str, reason: str) -> float:
        labels = {"plugin": plugin, "outcome": outcome, "reason": reason}
        return self.registry.get_sample_value("vivified_proxy_decisions_total", labels) or 0.0

    def render(self) -> str:
        """Prometheus text exposition of the lane's metrics."""
        return generate_latest(self.registry).decode()

    def refused(self, reason: str) -> None:
        self._refusals.labels(reason).inc()

    def connection_opened(self) -> None:
        self._connections.inc()

    def connection_closed(self) -> None:
        self._connections.dec()

    def tunnel_opened(self) -> None:
        self._tunnels.inc()

    def tunnel_closed(self, reason: str, bytes_in: int, bytes_out: int) -> None:
        self._tunnels.dec()
        self._closed.labels(reason).inc()
        self._bytes.labels("in").inc(bytes_in)
        self._bytes.labels("out").inc(bytes_out)

    def observe(self, phase: Phase, seconds: float) -> None:
        self._seconds.labels(phase).observe(seconds)
