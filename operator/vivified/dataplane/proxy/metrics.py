"""Prometheus metrics of the proxy lane (served by the core's ``/metrics``).

Labels are bounded: decisions carry the plugin id and the reason (both finite sets), never a
host name, which a plugin could vary without limit.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ProxyMetrics"]

_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ProxyMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = REGISTRY if registry is None else registry
        self.decisions = Counter(
            "vivified_proxy_decisions_total",
            "Proxy lane decisions by outcome and reason",
            ["plugin", "outcome", "reason"],
            registry=reg,
        )
        self.refusals = Counter(
            "vivified_proxy_refusals_total",
            "Requests refused before a plugin was known (auth, malformed, limits)",
            ["reason"],
            registry=reg,
        )
        self.open_connections = Gauge(
            "vivified_proxy_connections_open", "Client connections open", registry=reg
        )
        self.open_tunnels = Gauge(
            "vivified_proxy_tunnels_open", "Upstream connections open", registry=reg
        )
        self.closed = Counter(
            "vivified_proxy_closed_total",
            "Upstream connections closed, by why",
            ["reason"],
            registry=reg,
        )
        self.bytes = Counter(
            "vivified_proxy_bytes_total",
            "Bytes relayed (out = plugin to upstream)",
            ["direction"],
            registry=reg,
        )
        self.dns_seconds = Histogram(
            "vivified_proxy_dns_seconds", "Name resolution time", buckets=_FAST, registry=reg
        )
        self.connect_seconds = Histogram(
            "vivified_proxy_connect_seconds", "Upstream connect time", buckets=_FAST, registry=reg
        )
        self.setup_seconds = Histogram(
            "vivified_proxy_setup_seconds",
            "Request head received to tunnel established",
            buckets=_FAST,
            registry=reg,
        )
