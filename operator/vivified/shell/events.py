"""Kubernetes Events about VivifiedPlugins, posted by the operator.

Events are for humans reading ``kubectl describe vp``; they are posted only when something
changed, never on a quiet re-reconcile, and their text never contains a token or a key.
``post`` is also the operator's one audit call site (issue 11): every lifecycle change it
announces (plugins, and the signing key ring's Secret) becomes an audit record.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import httpx

from vivified.dataplane.audit.operator import audit_lifecycle
from vivified.shell.kube import KubeApi, KubeError

logger = logging.getLogger(__name__)

MAX_MESSAGE = 1024
COMPONENT = "vivified-operator"


class EventRecorder:
    """Posts core/v1 Events for a plugin."""

    def __init__(self, kube: KubeApi, clock: Callable[[], datetime]) -> None:
        self._kube = kube
        self._clock = clock

    async def post(
        self,
        plugin: Mapping[str, Any],
        kind: str,
        reason: str,
        message: str,
        *,
        facts: Mapping[str, str] | None = None,
    ) -> None:
        """Post one event about ``plugin`` (any object: a plugin, the signing-key Secret) and
        audit it; failures are logged, never raised (an event must not block work).

        ``facts`` go to the audit record only (ids a query needs; never a secret)."""
        metadata = plugin.get("metadata", {})
        namespace = metadata.get("namespace", "default")
        stamp = self._clock().strftime("%Y-%m-%dT%H:%M:%SZ")
        text = message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{metadata.get('name', 'plugin')}.{uuid.uuid4().hex[:16]}",
                "namespace": namespace,
            },
            "involvedObject": {
                "apiVersion": plugin.get("apiVersion", "vivified.dev/v1alpha1"),
                "kind": plugin.get("kind", "VivifiedPlugin"),
                "name": metadata.get("name"),
                "namespace": namespace,
                "uid": metadata.get("uid"),
                "resourceVersion": metadata.get("resourceVersion"),
            },
            "type": kind,
            "reason": reason,
            "message": text,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": COMPONENT,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            await self._kube.request("POST", f"/api/v1/namespaces/{namespace}/events", body=event)
        except (KubeError, httpx.HTTPError) as error:
            logger.warning("could not post %s event %s: %s", kind, reason, error)
        # Issue 11: every lifecycle change the operator announces is also an audit record.
        # Even when the Event could not be posted (a namespace being deleted refuses new
        # content): the record is the durable one.
        await audit_lifecycle(plugin, reason, message, facts)

    async def normal(
        self,
        plugin: Mapping[str, Any],
        reason: str,
        message: str,
        *,
        facts: Mapping[str, str] | None = None,
    ) -> None:
        await self.post(plugin, "Normal", reason, message, facts=facts)

    async def warning(self, plugin: Mapping[str, Any], reason: str, message: str) -> None:
        await self.post(plugin, "Warning", reason, message)
