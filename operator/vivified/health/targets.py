"""What to probe (from the spec) and where (from operator configuration only, never a CR)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from vivified.settings import OperatorSettings, split_host_port

if TYPE_CHECKING:
    from vivified.resource import PluginSpec
from vivified.health.limits import _PATH_CHARS, HEALTH_ENDPOINT_NAME


class ProbeKind(StrEnum):
    """How health is established for one plugin."""

    HTTP = "http"  # GET path, 200 = success, JSON body = metrics
    TCP = "tcp"  # a TCP connect succeeds
    HEARTBEAT = "heartbeat"  # manifest type "custom": no probe, heartbeats only
    READINESS = "readiness"  # nothing declared: the Deployment's availability


@dataclass(frozen=True)
class ProbeTarget:
    """Everything the monitor needs to check one plugin, derived from its spec only.

    ``problem`` is set when the declared check cannot be run safely (e.g. a health path that
    could escape the service proxy); every check then fails with that message.
    """

    plugin_id: str
    kind: ProbeKind
    port: int
    path: str
    interval_seconds: int
    timeout_seconds: int
    failure_threshold: int
    source: Literal["health_check", "endpoints.health", "deployment"]
    problem: str | None = None


def safe_probe_path(path: str) -> str | None:
    """Why ``path`` may not be probed, or None when it is fine.

    Stricter than the manifest rules: through the API server's service proxy a path is
    appended to an API URL, so dot segments, percent-escapes and ``//`` are refused.
    """
    if len(path) > 512 or not _PATH_CHARS.match(path):
        return "health check path must be a plain absolute path (no '%', spaces or '#')"
    segments = path.split("?", 1)[0].split("/")
    if any(s in (".", "..") for s in segments):
        return "health check path must not contain '.' or '..' segments"
    if "//" in path:
        return "health check path must not contain '//'"
    return None


def _timings(spec: PluginSpec, settings: OperatorSettings) -> tuple[int, int, int]:
    """Interval, timeout, threshold: the manifest's when it sets them, else the operator's."""
    check = spec.manifest.health_check
    given = check.model_fields_set if check is not None else set()
    interval = (
        check.interval_seconds
        if check is not None and "interval_seconds" in given
        else settings.health_interval_seconds
    )
    timeout = (
        check.timeout_seconds
        if check is not None and "timeout_seconds" in given
        else settings.health_timeout_seconds
    )
    threshold = (
        check.failure_threshold
        if check is not None and "failure_threshold" in given
        else settings.health_failure_threshold
    )
    # A probe never outlives its interval, so one plugin never has two probes in flight.
    return interval, max(1, min(timeout, interval)), threshold


def probe_target(spec: PluginSpec, settings: OperatorSettings) -> ProbeTarget | None:
    """How to check ``spec``'s health; None when it must not be monitored.

    Disabled plugins and plugins scaled to zero are not monitored. With a ``health_check``
    its type decides; without one, ``endpoints.health`` is probed over HTTP on the plugin
    port; without that, health follows the Deployment's availability.
    """
    if not spec.enabled or spec.replicas == 0:
        return None
    manifest = spec.manifest
    interval, timeout, threshold = _timings(spec, settings)

    def target(
        kind: ProbeKind,
        port: int,
        path: str,
        source: Literal["health_check", "endpoints.health", "deployment"],
    ) -> ProbeTarget:
        return ProbeTarget(
            plugin_id=manifest.id,
            kind=kind,
            port=port,
            path=path,
            interval_seconds=interval,
            timeout_seconds=timeout,
            failure_threshold=threshold,
            source=source,
            problem=safe_probe_path(path) if kind is ProbeKind.HTTP else None,
        )

    check = manifest.health_check
    port = spec.effective_port
    if check is not None:
        port = check.port if check.port is not None else port
        if check.type == "http":
            return target(ProbeKind.HTTP, port, check.effective_path, "health_check")
        kind = ProbeKind.TCP if check.type == "tcp" else ProbeKind.HEARTBEAT
        return target(kind, port, "", "health_check")
    endpoint = manifest.endpoints.get(HEALTH_ENDPOINT_NAME)
    if endpoint:
        return target(ProbeKind.HTTP, port, endpoint, "endpoints.health")
    return target(ProbeKind.READINESS, port, "", "deployment")


# --------------------------------------------------------------------------------------------
# Where to probe: from operator configuration only, never from a custom resource
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeAddress:
    """Where one probe goes. ``via="apiserver-proxy"`` means through the Kube client."""

    via: Literal["direct", "apiserver-proxy"]
    host: str
    port: int
    path: str
    namespace: str = ""
    service: str = ""

    @property
    def url(self) -> str:
        """``http://host:port/path`` (direct) or the API server path (proxy)."""
        if self.via == "apiserver-proxy":
            return (
                f"/api/v1/namespaces/{self.namespace}/services/"
                f"{self.service}:{self.port}/proxy{self.path or '/'}"
            )
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.path or '/'}"


class ProbeAddressResolver:
    """Maps a plugin to the address its probes go to.

    ``direct``: ``<plugin id>.<namespace>.svc:<port>`` (the plugin's Service) unless the
    plugin is in ``probe_address_overrides``. ``apiserver-proxy``: the API server's service
    proxy (overrides still win). ``overrides``: only overridden plugins are probed; others
    get None (their health stays unknown), so nothing else is ever dialled.

    The host always comes from this operator's settings or from the namespace and name of
    the resource (both DNS labels the API server validated): a custom resource cannot point
    the operator at an arbitrary host.
    """

    def __init__(self, settings: OperatorSettings) -> None:
        self._mode = settings.probe_mode
        self._overrides: dict[str, tuple[str, int]] = {}
        for key, address in settings.probe_address_overrides.items():
            parsed = split_host_port(address)
            if parsed is not None:  # settings validation guarantees it
                self._overrides[key] = parsed

    @property
    def mode(self) -> str:
        return self._mode

    def resolve(self, key: tuple[str, str], target: ProbeTarget) -> ProbeAddress | None:
        namespace, name = key
        override = self._overrides.get(f"{namespace}/{name}")
        if override is not None:
            host, port = override
            return ProbeAddress("direct", host, port, target.path, namespace, name)
        if self._mode == "overrides":
            return None
        if self._mode == "apiserver-proxy":
            return ProbeAddress(
                "apiserver-proxy", "", target.port, target.path, namespace, target.plugin_id
            )
        return ProbeAddress(
            "direct",
            f"{target.plugin_id}.{namespace}.svc",
            target.port,
            target.path,
            namespace,
            target.plugin_id,
        )
