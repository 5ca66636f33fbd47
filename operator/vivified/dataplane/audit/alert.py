"""Telling humans the audit sink is down: a log line always, a Kubernetes Event in cluster."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from vivified_sdk import contract

logger = logging.getLogger(__name__)


class OutageAlert(Protocol):
    """Told when the sink stops confirming writes and when it recovers."""

    async def outage_started(self, reason: str) -> None: ...

    async def outage_ended(self, held: int) -> None: ...


class LogAlert:
    """The default: one WARNING when an outage starts, one INFO when it ends."""

    async def outage_started(self, reason: str) -> None:
        logger.warning("audit sink down, holding records in memory: %s", reason)

    async def outage_ended(self, held: int) -> None:
        logger.info("audit sink back: %d held records written", held)


PostEvent = Callable[[str, str, str], Awaitable[None]]
"""``post(type, reason, message)``: posts a core/v1 Event about the core (its Deployment)."""


class EventAlert(LogAlert):
    """Logs, and posts a Kubernetes Event through ``post`` (:func:`kube_poster` in the core)."""

    def __init__(self, post: PostEvent) -> None:
        self._post = post

    async def outage_started(self, reason: str) -> None:
        await super().outage_started(reason)
        try:
            await self._post("Warning", "AuditSinkDown", f"audit sink down: {reason}"[:1024])
        except Exception:  # an alert must never break the request path
            logger.exception("could not post the AuditSinkDown event")

    async def outage_ended(self, held: int) -> None:
        await super().outage_ended(held)
        try:
            await self._post("Normal", "AuditSinkRecovered", f"{held} held records written")
        except Exception:
            logger.exception("could not post the AuditSinkRecovered event")


class EventsApi(Protocol):
    """The one call of the shared REST client (``vivified.shell.kube.Kube``) posting needs."""

    async def request(self, method: str, path: str, *, body: object = None) -> object: ...


def _event(namespace: str, pod: str, kind: str, reason: str, message: str) -> dict[str, object]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{pod}.audit.", "namespace": namespace},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": pod, "namespace": namespace},
        "type": kind,
        "reason": reason,
        "message": message,
        "source": {"component": contract.CORE_SERVICE_NAME},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


def kube_poster(kube: EventsApi, namespace: str, pod: str) -> PostEvent:
    """A poster of Events about ``namespace/pod`` through the process's own API client (the
    core's: in a pod its service account, outside a cluster its kubeconfig).

    Needs ``create`` on ``events`` in ``namespace``."""
    path = f"/api/v1/namespaces/{namespace}/events"

    async def post(kind: str, reason: str, message: str) -> None:
        await kube.request("POST", path, body=_event(namespace, pod, kind, reason, message))

    return post


SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def in_cluster_poster(env: Mapping[str, str], root: Path = SERVICE_ACCOUNT) -> PostEvent | None:
    """A poster of Events about this pod via the in-cluster API, or None outside a cluster
    (for processes without an API client of their own: the operator's lazily opened trail).

    Needs ``create`` on ``events`` in the pod's namespace. The token is read on every post
    (it is rotated by the kubelet) and never logged.
    """
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT", "443")
    if not host or not (root / "token").is_file():
        return None
    namespace = (root / "namespace").read_text().strip()
    pod = env.get("HOSTNAME", contract.CORE_SERVICE_NAME)
    url = f"https://{host}:{port}/api/v1/namespaces/{namespace}/events"

    async def post(kind: str, reason: str, message: str) -> None:
        import httpx  # noqa: PLC0415

        event = _event(namespace, pod, kind, reason, message)
        token = (root / "token").read_text().strip()
        async with httpx.AsyncClient(verify=str(root / "ca.crt"), timeout=5.0) as client:
            response = await client.post(
                url, json=event, headers={"Authorization": f"Bearer {token}"}
            )
            response.raise_for_status()

    return post
