"""Kubernetes probes from the manifest's ``health_check``.

==========================  ====================================================
``health_check``            probes
==========================  ====================================================
``type: http``              httpGet ``path`` (default ``/health``) on ``port``
``type: tcp``               tcpSocket on ``port``
``type: custom``            none: the plugin reports health itself (heartbeats)
absent, ``endpoints.health``  httpGet on that path, plugin port, operator timings
absent, no health endpoint  tcpSocket on the plugin port, operator timings
==========================  ====================================================

``port`` defaults to the plugin's effective port. Readiness and liveness use the manifest's
(or operator's) interval, timeout and failure threshold; a startup probe with the same
handler (every 5 s, up to 60 failures = 5 minutes) holds liveness off while the plugin
starts, so a slow start is not mistaken for a hang.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vivified.settings import OperatorSettings

if TYPE_CHECKING:
    from vivified.manifest import PluginManifest

__all__ = [
    "STARTUP_FAILURE_THRESHOLD",
    "STARTUP_PERIOD_SECONDS",
    "probe_handler",
    "probes",
]

STARTUP_PERIOD_SECONDS = 5
STARTUP_FAILURE_THRESHOLD = 60
HEALTH_ENDPOINT_NAME = "health"


def _absolute(path: str) -> str:
    return path if path.startswith("/") else "/" + path


def probe_handler(manifest: PluginManifest, port: int) -> dict[str, Any] | None:
    """The probe action (httpGet/tcpSocket) or None for ``custom`` checks."""
    check = manifest.health_check
    if check is None:
        endpoint = manifest.endpoints.get(HEALTH_ENDPOINT_NAME)
        if endpoint:
            return {"httpGet": {"path": _absolute(endpoint), "port": port, "scheme": "HTTP"}}
        return {"tcpSocket": {"port": port}}
    target = check.port if check.port is not None else port
    if check.type == "http":
        return {
            "httpGet": {"path": _absolute(check.effective_path), "port": target, "scheme": "HTTP"}
        }
    if check.type == "tcp":
        return {"tcpSocket": {"port": target}}
    return None


def probes(
    manifest: PluginManifest, port: int, settings: OperatorSettings
) -> dict[str, dict[str, Any]]:
    """``startupProbe``/``readinessProbe``/``livenessProbe`` for the container (maybe empty)."""
    if probe_handler(manifest, port) is None:
        return {}
    check = manifest.health_check
    if check is not None:
        interval, timeout, threshold = (
            check.interval_seconds,
            check.timeout_seconds,
            check.failure_threshold,
        )
    else:
        interval, timeout, threshold = (
            settings.health_interval_seconds,
            settings.health_timeout_seconds,
            settings.health_failure_threshold,
        )

    def probe(period: int, failures: int) -> dict[str, Any]:
        # A fresh handler per probe: no dict is shared between parts of the output.
        handler = probe_handler(manifest, port) or {}
        return {
            **handler,
            "periodSeconds": max(1, period),
            "timeoutSeconds": max(1, timeout),
            "failureThreshold": max(1, failures),
            "successThreshold": 1,
        }

    return {
        "startupProbe": probe(STARTUP_PERIOD_SECONDS, STARTUP_FAILURE_THRESHOLD),
        "readinessProbe": probe(interval, threshold),
        "livenessProbe": probe(interval, threshold),
    }
