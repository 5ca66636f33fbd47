"""Heartbeats reach the operator as a coordination.k8s.io Lease per plugin.

Why a Lease (like kubelet node heartbeats): the core is stateless with several replicas and
the operator may have a standby; the API server is the one place both already share. The
core writes (server-side apply, field manager ``vivified-core``) the Lease
``<id>-heartbeat`` in the plugin's namespace: ``holderIdentity`` = plugin id, ``renewTime`` =
when the beat arrived, ``leaseDurationSeconds``, and the validated body (status, message,
sanitised metrics) in the annotation ``vivified.dev/heartbeat``. The operator watches those
Leases and feeds its health state machine exactly as its own heartbeat server used to; the
operator accepts no plugin traffic at all.

Writes are throttled per plugin: a beat that changes nothing but time is written at most once
per third of the lease duration, so 500 plugins beating every 10 s cost ~17 writes/s at most
and much less with the default 90 s lease (3 per plugin per lease period). A change of status
is written at once.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote

from vivified.dataplane.directory import PluginRecord
from vivified.dataplane.settings import CoreSettings
from vivified.health import Heartbeat
from vivified.health.lease import HEARTBEAT_ANNOTATION, LEASE_LABELS
from vivified_sdk import contract

__all__ = [
    "HEARTBEAT_ANNOTATION",
    "LEASE_FIELD_MANAGER",
    "LeaseHeartbeats",
    "lease_name",
    "render_heartbeat_lease",
]

logger = logging.getLogger(__name__)

LEASE_FIELD_MANAGER = contract.CORE_SERVICE_NAME


def lease_name(plugin_id: str) -> str:
    return f"{plugin_id}-heartbeat"


def _micro_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def render_heartbeat_lease(
    plugin: PluginRecord, beat: Heartbeat, now: datetime, settings: CoreSettings
) -> dict[str, Any]:
    """The Lease for one beat (pure)."""
    body: dict[str, Any] = {"status": beat.health.value}
    if beat.message is not None:
        body["message"] = beat.message[:512]
    if beat.metrics:
        body["metrics"] = dict(beat.metrics)
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": lease_name(plugin.plugin_id),
            "namespace": plugin.namespace,
            "labels": {**LEASE_LABELS, "vivified.dev/plugin": plugin.plugin_id},
            "annotations": {HEARTBEAT_ANNOTATION: json.dumps(body, sort_keys=True)},
        },
        "spec": {
            "holderIdentity": plugin.plugin_id,
            "leaseDurationSeconds": settings.heartbeat_lease_seconds,
            "renewTime": _micro_time(now),
        },
    }


class KubeWriter(Protocol):
    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        body: object = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> dict[str, Any]: ...


class LeaseHeartbeats:
    """The :class:`~vivified.dataplane.context.HeartbeatSink` of a core in a cluster."""

    def __init__(self, kube: KubeWriter, settings: CoreSettings) -> None:
        self._kube = kube
        self._settings = settings
        self._last: dict[str, tuple[datetime, str]] = {}

    async def record(self, plugin: PluginRecord, beat: Heartbeat, now: datetime) -> None:
        lease = render_heartbeat_lease(plugin, beat, now, self._settings)
        fingerprint = lease["metadata"]["annotations"][HEARTBEAT_ANNOTATION]
        previous = self._last.get(plugin.plugin_id)
        spacing = self._settings.heartbeat_lease_seconds / 3
        if (
            previous is not None
            and previous[1] == fingerprint
            and (now - previous[0]).total_seconds() < spacing
        ):
            return
        path = (
            f"/apis/coordination.k8s.io/v1/namespaces/{quote(plugin.namespace, safe='')}"
            f"/leases/{quote(lease_name(plugin.plugin_id), safe='')}"
        )
        await self._kube.request(
            "PATCH",
            path,
            params={"fieldManager": LEASE_FIELD_MANAGER, "force": "true"},
            body=lease,
            content_type="application/apply-patch+yaml",
            timeout=5.0,
        )
        self._last[plugin.plugin_id] = (now, fingerprint)
