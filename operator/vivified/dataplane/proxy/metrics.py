"""Metrics of the proxy lane, in the core's registry (``ctx.metrics``, served at ``/metrics``).

The server only calls the methods below, so how they are kept is this module's concern.
Every decision is also counted in the core's ``vivified_core_decisions_total`` with
``lane="proxy"``, next to the other lanes. Labels are bounded: decisions carry the plugin id
and the reason (both finite sets), never a host name, which a plugin could vary without limit.
"""

from __future__ import annotations

from typing import Literal

from vivified.dataplane.metrics import Registry

__all__ = ["LANE", "ProxyMetrics"]

LANE = "proxy"
Phase = Literal["dns", "connect", "setup"]


class ProxyMetrics:
    """The lane's metrics; ``registry`` is the core's (a fresh one when None, as in tests)."""

    def __init__(self, registry: Registry | None = None) -> None:
        reg = Registry() if registry is None else registry
        self.registry = reg
        self._decisions = reg.counter(
            "vivified_proxy_decisions_total",
            "Proxy lane decisions by plugin, outcome and reason.",
            ("plugin", "outcome", "reason"),
        )
        self._refusals = reg.counter(
            "vivified_proxy_refusals_total",
            "Requests refused before a plugin was known (auth, malformed, limits).",
            ("reason",),
        )
        self._connections = reg.gauge("vivified_proxy_connections_open", "Client connections open.")
        self._tunnels = reg.gauge("vivified_proxy_tunnels_open", "Upstream connections open.")
        self._closed = reg.counter(
            "vivified_proxy_closed_total", "Upstream connections closed, by why.", ("reason",)
        )
        self._bytes = reg.counter(
            "vivified_proxy_bytes_total",
            "Bytes relayed (out = plugin to upstream).",
            ("direction",),
        )
        self._seconds = reg.histogram(
            "vivified_proxy_seconds",
            "Time spent: dns (resolution), connect (upstream), setup (head to tunnel up).",
            ("phase",),
        )

    def decided(self, plugin: str, outcome: str, reason: str) -> None:
        self._decisions.inc(plugin, outcome, reason)
        self.registry.decisions.inc(LANE, outcome, reason)

    def decisions(self, plugin: str, outcome: str, reason: str) -> float:
        return self._decisions.value(plugin, outcome, reason)

    def refusals(self, reason: str) -> float:
        return self._refusals.value(reason)

    def render(self) -> str:
        """Prometheus text exposition (of the whole registry the lane counts in)."""
        return self.registry.render()

    def refused(self, reason: str) -> None:
        self._refusals.inc(reason)
        self.registry.decisions.inc(LANE, "refused", reason)

    def connection_opened(self) -> None:
        self._connections.add(1)

    def connection_closed(self) -> None:
        self._connections.add(-1)

    @property
    def connections_open(self) -> float:
        return self._connections.value()

    def tunnel_opened(self) -> None:
        self._tunnels.add(1)

    def tunnel_closed(self, reason: str, bytes_in: int, bytes_out: int) -> None:
        self._tunnels.add(-1)
        self._closed.inc(reason)
        self._bytes.inc("in", amount=bytes_in)
        self._bytes.inc("out", amount=bytes_out)

    @property
    def tunnels_open(self) -> float:
        return self._tunnels.value()

    def observe(self, phase: Phase, seconds: float) -> None:
        self._seconds.observe(seconds, phase)
