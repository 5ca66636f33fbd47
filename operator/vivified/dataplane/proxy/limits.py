"""Per-plugin admission: a token bucket for new connections and a cap on open tunnels.

One plugin hammering the proxy (a retry loop, a compromised pod) gets 429s; the others keep
their share, because nothing here is shared between plugins.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["PluginLimits"]


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class PluginLimits:
    def __init__(
        self,
        *,
        rate_per_second: float,
        burst: int,
        max_tunnels: int,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate_per_second
        self._burst = float(burst)
        self._max_tunnels = max_tunnels
        self._monotonic = monotonic
        self._buckets: dict[str, _Bucket] = {}
        self._open: dict[str, int] = {}

    def take(self, plugin_id: str) -> bool:
        """One new connection for ``plugin_id``, if its bucket has a token."""
        now = self._monotonic()
        bucket = self._buckets.get(plugin_id)
        if bucket is None:
            bucket = self._buckets[plugin_id] = _Bucket(self._burst, now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.stamp) * self._rate)
        bucket.stamp = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def open(self, plugin_id: str) -> bool:
        """Count one open tunnel, unless the plugin is at its cap."""
        count = self._open.get(plugin_id, 0)
        if count >= self._max_tunnels:
            return False
        self._open[plugin_id] = count + 1
        return True

    def close(self, plugin_id: str) -> None:
        count = self._open.get(plugin_id, 0) - 1
        if count > 0:
            self._open[plugin_id] = count
        else:
            self._open.pop(plugin_id, None)

    def open_tunnels(self, plugin_id: str) -> int:
        return self._open.get(plugin_id, 0)
