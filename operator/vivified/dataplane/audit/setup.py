"""Building the process's auditor from its environment (the core's app factory, the operator).

``VIVIFIED_AUDIT_SINK``: empty or ``none`` (no trail), ``file:PATH`` (development), or a
``nats://`` URL (the JetStream trail). ``VIVIFIED_AUDIT_WRITER`` names this process's chain
(default: the pod's hostname, prefixed with the role); ``VIVIFIED_AUDIT_KEY_FILE`` is the
Ed25519 checkpoint key (a mounted Secret); ``VIVIFIED_AUDIT_REPLICAS``,
``VIVIFIED_AUDIT_MAX_AGE_DAYS`` and ``VIVIFIED_AUDIT_STREAM`` shape the stream. The trail
lives on the event lane's NATS, so it uses that lane's ``VIVIFIED_NATS_CREDS`` and
``VIVIFIED_NATS_TLS_CA`` too.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vivified.audit.checkpoint import Signer
from vivified.audit.hook import Auditor, NullAuditor
from vivified.dataplane.audit.alert import EventAlert, OutageAlert, in_cluster_poster
from vivified.dataplane.audit.auditor import ChainAuditor
from vivified.dataplane.audit.jetstream import SIX_YEARS_DAYS, StreamSettings

logger = logging.getLogger(__name__)


class AuditSettingsError(ValueError):
    """The audit environment variables are inconsistent."""


def _writer_id(role: str, env: Mapping[str, str]) -> str:
    explicit = env.get("VIVIFIED_AUDIT_WRITER", "")
    raw = explicit or f"{role}-{env.get('HOSTNAME') or socket.gethostname()}"
    return re.sub(r"[^A-Za-z0-9_-]", "-", raw)[:128]


@dataclass(frozen=True)
class AuditSettings:
    sink: str
    writer: str
    key_file: Path | None
    stream: StreamSettings

    @classmethod
    def from_env(cls, env: Mapping[str, str], role: str = "core") -> AuditSettings:
        sink = env.get("VIVIFIED_AUDIT_SINK", "").strip()
        key = env.get("VIVIFIED_AUDIT_KEY_FILE", "").strip()
        try:
            replicas = int(env.get("VIVIFIED_AUDIT_REPLICAS", "1"))
            max_age = float(env.get("VIVIFIED_AUDIT_MAX_AGE_DAYS", str(SIX_YEARS_DAYS)))
        except ValueError as exc:
            raise AuditSettingsError(f"audit settings: {exc}") from exc
        if replicas not in (1, 3, 5):
            raise AuditSettingsError("VIVIFIED_AUDIT_REPLICAS must be 1, 3 or 5")
        if max_age <= 0:
            raise AuditSettingsError("VIVIFIED_AUDIT_MAX_AGE_DAYS must be positive")
        stream = StreamSettings(
            url=sink if sink.startswith(("nats://", "tls://")) else StreamSettings.url,
            stream=env.get("VIVIFIED_AUDIT_STREAM", StreamSettings.stream),
            checkpoint_stream=env.get(
                "VIVIFIED_AUDIT_CHECKPOINT_STREAM", StreamSettings.checkpoint_stream
            ),
            replicas=replicas,
            max_age_days=max_age,
            credentials=env.get("VIVIFIED_NATS_CREDS") or None,
            tls_ca=env.get("VIVIFIED_NATS_TLS_CA") or None,
        )
        return cls(sink, _writer_id(role, env), Path(key) if key else None, stream)


async def open_auditor(
    settings: AuditSettings, alert: OutageAlert | None = None
) -> Auditor | ChainAuditor:
    """The configured auditor, started (a :class:`NullAuditor` when auditing is off).

    Outages are alerted by a Kubernetes Event about this pod when running in a cluster.
    """
    if alert is None:
        poster = in_cluster_poster(os.environ)
        alert = EventAlert(poster) if poster is not None else None
    if settings.sink in ("", "none"):
        logger.warning("audit trail disabled (VIVIFIED_AUDIT_SINK unset)")
        return NullAuditor()
    signer = Signer.from_pem(settings.key_file.read_bytes()) if settings.key_file else None
    if signer is None:
        logger.warning("no VIVIFIED_AUDIT_KEY_FILE: the trail is chained but not checkpointed")
    if settings.sink.startswith("file:"):
        from vivified.dataplane.audit.file import FileSink  # noqa: PLC0415

        path = Path(settings.sink.removeprefix("file://").removeprefix("file:"))
        auditor = ChainAuditor(FileSink(path), settings.writer, signer=signer, alert=alert)
    elif settings.sink.startswith(("nats://", "tls://")):
        from vivified.dataplane.audit.jetstream import JetStreamSink  # noqa: PLC0415

        sink = await JetStreamSink.open(settings.stream, wait=False)
        auditor = ChainAuditor(sink, settings.writer, signer=signer, alert=alert)
    else:
        raise AuditSettingsError(f"VIVIFIED_AUDIT_SINK: unknown sink {settings.sink!r}")
    await auditor.start()
    return auditor
