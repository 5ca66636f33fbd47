"""The cluster sink: a JetStream stream (file storage, replicas and age retention configurable).

Records go to ``<prefix>.records.<writer>`` in one stream (one message per batch, its records
as canonical JSON lines, so a batch is stored whole or not at all), checkpoints to
``<prefix>.checkpoints.<writer>`` in another, both with deletes and purges denied. Each publish
carries ``Nats-Msg-Id`` (writer:seq) and ``Nats-Expected-Last-Subject-Sequence``, so JetStream
itself refuses a write that does not follow the writer's last stored record: two processes
using one writer id cannot fork a chain. A publish returns only once JetStream acknowledged it.

Durability beyond the writer's death depends on the server: with ``replicas: 3`` a record is
acknowledged once a quorum holds it; a single server acknowledges before fsync (its
``sync_interval``), which survives a crash of the core but not of the server's host.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext, api

from vivified.dataplane.audit.sink import SinkUnavailable

logger = logging.getLogger(__name__)

SIX_YEARS_DAYS: Final = 2192  # 6 x 365.25, rounded up: HIPAA 164.316(b)(2)(i)
_WRONG_LAST_SEQUENCE: Final = 10071
_STREAM_IN_USE: Final = 10058
_TOKEN: Final = re.compile(r"[A-Za-z0-9_-]+")


def writer_token(writer: str) -> str:
    """``writer`` as one subject token (pod names qualify; dots and wildcards do not)."""
    if not _TOKEN.fullmatch(writer):
        raise ValueError(f"audit writer id {writer!r} must match [A-Za-z0-9_-]+")
    return writer


@dataclass(frozen=True)
class StreamSettings:
    """Where and how the trail is kept."""

    url: str = "nats://127.0.0.1:4222"
    stream: str = "VIVIFIED_AUDIT"
    checkpoint_stream: str = "VIVIFIED_AUDIT_CHECKPOINTS"
    prefix: str = "vivified.audit"
    replicas: int = 1
    max_age_days: float = SIX_YEARS_DAYS
    timeout: float = 1.0
    credentials: str | None = None
    """A NATS credentials file (the event lane's ``VIVIFIED_NATS_CREDS``: the same server)."""
    tls_ca: str | None = None
    """A CA bundle to verify the server with (the event lane's ``VIVIFIED_NATS_TLS_CA``)."""

    def records_subject(self, writer: str) -> str:
        return f"{self.prefix}.records.{writer_token(writer)}"

    def checkpoints_subject(self, writer: str) -> str:
        return f"{self.prefix}.checkpoints.{writer_token(writer)}"

    def stream_configs(self) -> list[api.StreamConfig]:
        common: dict[str, Any] = {
            "storage": api.StorageType.FILE,
            "num_replicas": self.replicas,
            "max_age": self.max_age_days * 86400.0,
            "discard": api.DiscardPolicy.OLD,
            "retention": api.RetentionPolicy.LIMITS,
            "deny_delete": True,
            "deny_purge": True,
            "duplicate_window": 120.0,
        }
        return [
            api.StreamConfig(name=self.stream, subjects=[f"{self.prefix}.records.>"], **common),
            api.StreamConfig(
                name=self.checkpoint_stream, subjects=[f"{self.prefix}.checkpoints.>"], **common
            ),
        ]


async def _quiet(error: Exception) -> None:
    logger.debug("audit NATS connection: %r", error)


def connect_options(settings: StreamSettings) -> dict[str, Any]:
    """Keep reconnecting in the background (the auditor holds records meanwhile), quietly;
    authenticate and verify the server like the event lane does."""
    options: dict[str, Any] = {
        "servers": [settings.url],
        "connect_timeout": max(settings.timeout, 1.0),
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
        "name": "vivified-audit",
        "error_cb": _quiet,
    }
    if settings.credentials:
        options["user_credentials"] = settings.credentials
    if settings.tls_ca:
        options["tls"] = ssl.create_default_context(cafile=settings.tls_ca)
    return options


async def ensure_streams(js: JetStreamContext, settings: StreamSettings) -> None:
    """Create the two streams, or bring an existing one's limits to the configured ones."""
    for config in settings.stream_configs():
        try:
            await js.add_stream(config)
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code != _STREAM_IN_USE:
                raise
            await js.update_stream(config)


class JetStreamSink:
    """Appends to the records stream; reads a writer's last record to resume its chain."""

    def __init__(self, nc: Client, settings: StreamSettings) -> None:
        self._nc = nc
        self._js = nc.jetstream(timeout=settings.timeout)
        self.settings = settings
        self._last_seq: dict[str, int] = {}
        self._ready = nc.is_connected
        self._connecting: asyncio.Task[None] | None = None

    @property
    def jetstream(self) -> Any:
        """The JetStream context (readers share the sink's connection)."""
        return self._js

    @classmethod
    async def open(cls, settings: StreamSettings, *, wait: bool = True) -> JetStreamSink:
        """Connect and create the streams; ``wait=False`` does it in the background, so a
        core starts while NATS is down (its auditor starts in an outage and recovers)."""
        sink = cls(Client(), settings)
        if wait:
            await sink._connect()
        else:
            sink._connecting = asyncio.create_task(sink._connect(), name="audit-nats-connect")
        return sink

    async def _connect(self) -> None:
        await self._nc.connect(**connect_options(self.settings))
        await ensure_streams(self._js, self.settings)
        self._ready = True

    def _check_connected(self) -> None:
        if not self._ready or not self._nc.is_connected:
            raise SinkUnavailable(f"not connected to NATS at {self.settings.url}")

    async def last(self, writer: str) -> Mapping[str, object] | None:
        self._check_connected()
        subject = self.settings.records_subject(writer)
        try:
            msg = await self._js.get_last_msg(self.settings.stream, subject)
        except nats.js.errors.NotFoundError:
            self._last_seq[writer] = 0
            return None
        except (nats.errors.Error, TimeoutError) as exc:
            raise SinkUnavailable(f"reading the chain head: {exc!r}") from exc
        self._last_seq[writer] = int(msg.seq or 0)
        value = json.loads((msg.data or b"{}").rsplit(b"\n", 1)[-1])
        if not isinstance(value, dict):
            raise SinkUnavailable(f"last record on {subject} is not an object")
        return value

    async def _publish(self, subject: str, line: bytes, headers: dict[str, str]) -> api.PubAck:
        self._check_connected()
        try:
            return await self._js.publish(
                subject, line, timeout=self.settings.timeout, headers=headers
            )
        except nats.js.errors.APIError as exc:
            if exc.err_code == _WRONG_LAST_SEQUENCE:
                raise SinkUnavailable(
                    "the chain moved on in the stream (another process with this writer id?)"
                ) from exc
            raise SinkUnavailable(f"JetStream refused the record: {exc}") from exc
        except (nats.errors.Error, TimeoutError) as exc:
            raise SinkUnavailable(f"JetStream did not acknowledge: {exc!r}") from exc

    async def append(self, records: Sequence[Mapping[str, object]], payload: bytes) -> None:
        writer = str(records[0]["writer"])
        headers = {
            "Nats-Msg-Id": f"{writer}:{records[0]['seq']}-{records[-1]['seq']}",
            "Nats-Expected-Last-Subject-Sequence": str(self._last_seq.get(writer, 0)),
        }
        ack = await self._publish(self.settings.records_subject(writer), payload, headers)
        self._last_seq[writer] = ack.seq

    async def checkpoint(self, checkpoint: Mapping[str, object], line: bytes) -> None:
        writer = str(checkpoint["writer"])
        headers = {"Nats-Msg-Id": f"{writer}:cp:{checkpoint['seq']}"}
        await self._publish(self.settings.checkpoints_subject(writer), line, headers)

    async def ping(self) -> None:
        self._check_connected()
        try:
            await self._js.stream_info(self.settings.stream)
        except (nats.errors.Error, TimeoutError) as exc:
            raise SinkUnavailable(f"stream {self.settings.stream}: {exc!r}") from exc

    async def close(self) -> None:
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        if self._nc.is_connected:
            await self._nc.drain()
        elif not self._nc.is_closed:
            await self._nc.close()


async def read_stream(js: JetStreamContext, stream: str) -> list[bytes]:
    """Every record line of ``stream`` in storage order (a message holds a batch of lines)."""
    info = await js.stream_info(stream)
    out: list[bytes] = []
    first, last = info.state.first_seq, info.state.last_seq
    if not info.state.messages:
        return out
    for seq in range(first, last + 1):
        try:
            msg = await js.get_msg(stream, seq)
        except nats.js.errors.NotFoundError:
            continue
        out.extend(line for line in (msg.data or b"").split(b"\n") if line)
    return out
