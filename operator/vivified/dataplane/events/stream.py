"""JetStream streams and consumers, created and owned by the core (plugins never see NATS)."""

from __future__ import annotations

import json
import logging
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from vivified.dataplane.events import names
from vivified.dataplane.events.settings import EventLaneSettings

log = logging.getLogger(__name__)
_NS = 1_000_000_000
_NOT_FOUND = 404


async def ensure_streams(js: JetStreamContext, s: EventLaneSettings) -> None:
    """Create or update the event stream and the dead-letter stream (idempotent)."""
    for config in (
        StreamConfig(
            name=s.stream,
            subjects=[names.SUBJECT_PREFIX + ">"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            num_replicas=s.replicas,
            duplicate_window=s.duplicate_window_seconds,
            max_age=s.max_age_seconds,
            max_msg_size=s.max_event_bytes * 2,
        ),
        StreamConfig(
            name=s.dead_letter_stream,
            subjects=[names.DEAD_LETTER_PREFIX + ">"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            num_replicas=s.replicas,
            duplicate_window=s.duplicate_window_seconds,
            max_msg_size=s.max_event_bytes * 2,
        ),
    ):
        try:
            await js.stream_info(config.name or "")
            await js.update_stream(config)
        except NotFoundError:
            await js.add_stream(config)


#: The priority group every delivery worker pulls in: with the ``pinned_client`` policy
#: JetStream hands a consumer's messages to one puller (one core replica) at a time, so a worker
#: may fetch a batch ahead and still deliver in stream order across any number of replicas.
PRIORITY_GROUP = "vivified"


class ConsumerApiError(Exception):
    """A JetStream API error answer (``code``/``err_code`` as the server sent them)."""

    def __init__(self, code: int, err_code: int, description: str) -> None:
        super().__init__(f"{code}/{err_code}: {description}")
        self.code = code
        self.err_code = err_code


async def _api(nc: NatsClient, subject: str, body: dict[str, Any] | None) -> dict[str, Any]:
    """One JetStream API request through the core's connection (nats-py 2.16 has no typed
    API for priority groups, so consumer creation is the documented JSON, ADR-42)."""
    payload = json.dumps(body).encode() if body is not None else b""
    reply = await nc.request("$JS.API." + subject, payload, timeout=5.0)
    answer: dict[str, Any] = json.loads(reply.data)
    error = answer.get("error")
    if error:
        raise ConsumerApiError(
            int(error.get("code", 0)), int(error.get("err_code", 0)), str(error.get("description"))
        )
    return answer


def consumer_config(s: EventLaneSettings, subscriber: str, type_name: str) -> dict[str, Any]:
    """The durable consumer of (subscriber, type), as JetStream's JSON."""
    durable = names.consumer_name(subscriber, type_name)
    return {
        "durable_name": durable,
        "name": durable,
        "filter_subject": names.subject(type_name),
        "deliver_policy": "new",
        "ack_policy": "explicit",
        "ack_wait": int(s.ack_wait_seconds * _NS),
        "max_deliver": -1,  # the worker counts attempts and dead-letters itself
        "max_ack_pending": s.pull_batch,
        "num_replicas": s.replicas,
        "description": f"vivified core: {type_name} -> {subscriber}",
        "priority_groups": [PRIORITY_GROUP],
        "priority_policy": "pinned_client",
        "priority_timeout": int(s.pin_timeout_seconds * _NS),
    }


def _same(live: dict[str, Any], want: dict[str, Any]) -> bool:
    keys = ("max_ack_pending", "ack_wait", "priority_policy", "priority_groups", "priority_timeout")
    return all(live.get(k) == want[k] for k in keys)


async def ensure_consumer(
    nc: NatsClient, s: EventLaneSettings, subscriber: str, type_name: str
) -> str:
    """The durable consumer of (subscriber, type): only events stored after it first exists.

    An existing consumer with another configuration is updated in place; one JetStream
    will not update (made before the pinned priority group) is re-created at its position:
    from the first sequence not yet acknowledged, so nothing pending is skipped (the ones
    after the ack floor that were acknowledged out of order may be delivered once more)."""
    want = consumer_config(s, subscriber, type_name)
    durable = names.consumer_name(subscriber, type_name)
    create = f"CONSUMER.CREATE.{s.stream}.{durable}.{want['filter_subject']}"
    try:
        info = await _api(nc, f"CONSUMER.INFO.{s.stream}.{durable}", None)
    except ConsumerApiError as exc:
        if exc.code != _NOT_FOUND:
            raise
        await _api(nc, create, {"stream_name": s.stream, "config": want})
        return durable
    if _same(info.get("config", {}), want):
        return durable
    try:
        await _api(nc, create, {"stream_name": s.stream, "config": want})
    except ConsumerApiError as exc:
        log.info("consumer %s not updatable (%s): re-creating at its position", durable, exc)
        floor = int(info.get("ack_floor", {}).get("stream_seq", 0))
        await _api(nc, f"CONSUMER.DELETE.{s.stream}.{durable}", None)
        moved = {**want, "deliver_policy": "by_start_sequence", "opt_start_seq": floor + 1}
        await _api(nc, create, {"stream_name": s.stream, "config": moved})
    return durable


#: JetStream lists at most this many consumers per request; pages follow by offset.
LIST_PAGE = 256
#: A bound on the listing, so a server that ignored the offset could not loop us forever.
MAX_CONSUMERS = 100_000


async def consumer_infos(js: JetStreamContext, s: EventLaneSettings) -> list[ConsumerInfo]:
    """Every consumer of the event stream, page by page (one page holds only 256)."""
    infos: list[ConsumerInfo] = []
    while len(infos) < MAX_CONSUMERS:
        page = await js.consumers_info(s.stream, offset=len(infos))
        infos.extend(page)
        if len(page) < LIST_PAGE:
            break
    return infos


async def owned_consumers(js: JetStreamContext, s: EventLaneSettings) -> list[str]:
    """The durable consumers this lane created (by name), however many there are."""
    infos = await consumer_infos(js, s)
    return [i.name for i in infos if i.name and names.parse_consumer_name(i.name) is not None]
