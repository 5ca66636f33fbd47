"""JetStream streams and consumers, created and owned by the core (plugins never see NATS)."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError

from vivified.dataplane.events import names
from vivified.dataplane.events.settings import EventLaneSettings


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


async def ensure_consumer(
    js: JetStreamContext, s: EventLaneSettings, subscriber: str, type_name: str
) -> str:
    """The durable consumer of (subscriber, type): only events stored after it first exists."""
    durable = names.consumer_name(subscriber, type_name)
    try:
        await js.consumer_info(s.stream, durable)
    except NotFoundError:
        await js.add_consumer(
            s.stream,
            ConsumerConfig(
                durable_name=durable,
                filter_subject=names.subject(type_name),
                deliver_policy=DeliverPolicy.NEW,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=s.ack_wait_seconds,
                max_deliver=-1,  # the worker counts attempts and dead-letters itself
                max_ack_pending=s.max_in_flight,
                num_replicas=s.replicas,
                description=f"vivified core: {type_name} -> {subscriber}",
            ),
        )
    return durable


async def owned_consumers(js: JetStreamContext, s: EventLaneSettings) -> list[str]:
    infos = await js.consumers_info(s.stream)
    return [i.name for i in infos if i.name and names.parse_consumer_name(i.name) is not None]
