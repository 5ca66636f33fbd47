"""The event lane's running state: the NATS connection, the supervisor of delivery workers.

Everything plugin-related comes from the core's :class:`CoreContext`: ``ctx.directory``
(who subscribes to what, who is Active), ``ctx.authenticator`` (the publisher's token),
``ctx.auditor`` (every decision), ``ctx.metrics`` (``/metrics``), ``ctx.trust`` (the key the
deliveries' call tokens are signed with).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

import nats
from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import Error as JsError
from nats.js.errors import NotFoundError

from vivified.dataplane.context import CoreContext
from vivified.dataplane.directory import PluginRecord
from vivified.dataplane.events import names, stream
from vivified.dataplane.events.delivery import DeliveryWorker
from vivified.dataplane.events.metrics import EventMetrics
from vivified.dataplane.events.post import DeliveryClient
from vivified.dataplane.events.settings import EventLaneSettings
from vivified.dataplane.events.tokens import DeliveryTokens
from vivified.dataplane.forward import upstream_address
from vivified.dataplane.readiness import ready_for_traffic
from vivified.event_types import EventTypeRegistry, registry_from_env

log = logging.getLogger(__name__)

ResolveUrl = Callable[[PluginRecord], str]
"""Base URL of a subscriber, no trailing '/'."""


def core_resolver(ctx: CoreContext) -> ResolveUrl:
    """The subscriber's Service in the cluster (its NetworkPolicy admits the core), or the
    core's address map out of cluster (``VIVIFIED_CORE_ADDRESS_MAP``) — the same addresses
    the operator lane forwards to."""

    def resolve(record: PluginRecord) -> str:
        return "http://" + upstream_address(record, ctx.settings)

    return resolve


class EventLane:
    def __init__(
        self,
        ctx: CoreContext,
        settings: EventLaneSettings | None = None,
        *,
        registry: EventTypeRegistry | None = None,
        resolve_url: ResolveUrl | None = None,
    ) -> None:
        self.ctx = ctx
        self.settings = settings if settings is not None else EventLaneSettings.from_env()
        self.registry = registry if registry is not None else registry_from_env()
        self.resolve_url = resolve_url if resolve_url is not None else core_resolver(ctx)
        self.metrics = EventMetrics(ctx.metrics)
        self.tokens = DeliveryTokens(ctx)
        self.workers: dict[tuple[str, str], DeliveryWorker] = {}
        self._missing_since: dict[str, float] = {}
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._http: DeliveryClient | None = None
        self._supervisor: asyncio.Task[None] | None = None
        #: Short audit writes started by workers (kept referenced until done).
        self.background: set[asyncio.Task[None]] = set()
        self.started = asyncio.Event()
        self._started_at: float | None = None

    @property
    def js(self) -> JetStreamContext:
        assert self._js is not None, "EventLane.start() first"  # noqa: S101
        return self._js

    @property
    def nc(self) -> NatsClient:
        assert self._nc is not None, "EventLane.start() first"  # noqa: S101
        return self._nc

    @property
    def http(self) -> DeliveryClient:
        assert self._http is not None, "EventLane.start() first"  # noqa: S101
        return self._http

    @property
    def ready(self) -> bool:
        """Connected to JetStream with the streams in place (publishes answer 503 before)."""
        return self.started.is_set()

    def ready_for_traffic(self) -> bool:
        """The core's readiness share: connected once, or still not after the grace (then
        the other lanes serve and publishes answer 503; a later outage does not flip it)."""
        return ready_for_traffic(
            connected_once=self.ready,
            started_at=self._started_at,
            now=time.monotonic(),
            grace=self.settings.ready_grace_seconds,
        )

    async def start(self) -> None:
        """Start connecting in the background: a core whose NATS is not up yet still serves
        its other lanes, and answers publishes 503 ``engine_unavailable`` until it is."""
        self._started_at = time.monotonic()
        self._http = DeliveryClient()
        self._supervisor = asyncio.create_task(self._run(), name="events-lane")

    async def _connect(self) -> None:
        s = self.settings
        options: dict[str, Any] = {
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": 0.5,
            "connect_timeout": 5,
            "allow_reconnect": True,
        }
        if s.nats_creds:
            options["user_credentials"] = s.nats_creds
        if s.nats_tls_ca:
            options["tls"] = ssl.create_default_context(cafile=s.nats_tls_ca)
        nc = await nats.connect(s.nats_url, **options)
        try:
            js = nc.jetstream()
            await stream.ensure_streams(js, s)
        except BaseException:
            with contextlib.suppress(Exception):
                await nc.close()
            raise
        self._nc, self._js = nc, js

    async def _run(self) -> None:
        while True:
            try:
                await self._connect()
                break
            except (OSError, NatsError, JsError, TimeoutError) as exc:
                log.warning("event lane: JetStream not reachable yet (%s)", type(exc).__name__)
                await asyncio.sleep(1.0)
        self.started.set()
        log.info("event lane connected to JetStream")
        while True:
            try:
                await self.reconcile()
            except (NatsError, JsError, TimeoutError, stream.ConsumerApiError) as exc:
                log.warning("event lane reconcile: %s", type(exc).__name__)
            await asyncio.sleep(self.settings.reconcile_seconds)

    async def stop(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        await asyncio.gather(*(w.stop() for w in self.workers.values()))
        self.workers.clear()
        await asyncio.gather(*self.background, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
        if self._nc is not None:
            with contextlib.suppress(NatsError):
                await self._nc.drain()

    def desired(self) -> set[tuple[str, str]]:
        """(subscriber, type) pairs the directory declares (paused ones included)."""
        out: set[tuple[str, str]] = set()
        for record in self.ctx.directory.all():
            events = record.manifest.events
            for type_name in events.subscribes if events else []:
                if self.registry.get(type_name) is not None:
                    out.add((record.plugin_id, type_name))
        return out

    async def reconcile(self) -> None:
        """Start workers (and consumers) for new subscriptions, stop removed ones, and put
        back what JetStream lost: the streams, or a running worker's consumer."""
        want = self.desired()
        live = await self._live_consumers()
        for key in sorted(want):
            known = key in self.workers
            if known and names.consumer_name(*key) in live:
                continue
            if known:  # its pulls answer "no such consumer": it would never deliver again
                log.error("event lane: consumer %s is gone; re-creating it", key)
            await stream.ensure_consumer(self.nc, self.settings, *key)
            if not known:
                worker = DeliveryWorker(self, *key)
                worker.start()
                self.workers[key] = worker
        for key in sorted(set(self.workers) - want):
            await self.workers.pop(key).stop()
        await self._collect_orphans(want, live)

    async def _live_consumers(self) -> set[str]:
        """The lane's consumers JetStream holds. A missing event stream (a JetStream store
        lost, or the stream deleted) is made again first: until then every publish answers
        503, and with it every event accepted from now on is stored. What the lost store held
        is gone; this does not hide that (the subscribers' counts and the trail show it)."""
        try:
            return set(await stream.owned_consumers(self.js, self.settings))
        except NotFoundError:
            log.error(
                "event lane: stream %s is gone; re-creating the streams", self.settings.stream
            )
            await stream.ensure_streams(self.js, self.settings)
            return set()

    async def _collect_orphans(self, want: set[tuple[str, str]], live: set[str]) -> None:
        """Delete consumers of removed subscriptions after a grace (a directory that is still
        filling at start-up must not cost anyone their position)."""
        now = time.monotonic()
        for durable in sorted(live):
            parsed = names.parse_consumer_name(durable)
            if parsed is None or parsed in want:
                self._missing_since.pop(durable, None)
                continue
            since = self._missing_since.setdefault(durable, now)
            if now - since >= self.settings.orphan_grace_seconds:
                with contextlib.suppress(NotFoundError):
                    await self.js.delete_consumer(self.settings.stream, durable)
                self._missing_since.pop(durable, None)
                log.info("deleted consumer %s (subscription gone)", durable)

    async def status_report(self) -> dict[str, object]:
        """Every subscriber's counts in one document (``GET /v1/events/status``, the
        operator's): one consumer listing and one dead-letter stream summary, whatever the
        number of plugins. Keyed by plugin id, with its namespace (the operator keys by both).
        """
        subscribed = {
            record.plugin_id: record
            for record in self.ctx.directory.all()
            if record.manifest.events and record.manifest.events.subscribes
        }
        pending = dict.fromkeys(subscribed, 0)
        for info in await stream.consumer_infos(self.js, self.settings):
            parsed = names.parse_consumer_name(info.name or "")
            if parsed is None or parsed[0] not in subscribed:
                continue
            events = subscribed[parsed[0]].manifest.events
            if events is not None and parsed[1] in events.subscribes:
                pending[parsed[0]] += (info.num_pending or 0) + (info.num_ack_pending or 0)
        dead = dict.fromkeys(subscribed, 0)
        with contextlib.suppress(NotFoundError):
            summary = await self.js.stream_info(
                self.settings.dead_letter_stream,
                subjects_filter=f"{names.DEAD_LETTER_PREFIX}>",
            )
            for subject, count in (summary.state.subjects or {}).items():
                subscriber = subject[len(names.DEAD_LETTER_PREFIX) :].split(".", 1)[0]
                if subscriber in dead:
                    dead[subscriber] += count
        return {
            "plugins": {
                plugin_id: {
                    "namespace": record.namespace,
                    "pending": pending[plugin_id],
                    "deadLettered": dead[plugin_id],
                }
                for plugin_id, record in sorted(subscribed.items())
            }
        }

    async def subscriber_status(self, plugin_id: str) -> dict[str, object]:
        """Counts for the plugin's status: ``pending`` (stored, not yet acknowledged by it)
        and ``deadLettered`` (in the dead-letter stream)."""
        record = self.ctx.directory.get(plugin_id)
        events = record.manifest.events if record else None
        pending = 0
        for type_name in events.subscribes if events else []:
            with contextlib.suppress(NotFoundError):
                info = await self.js.consumer_info(
                    self.settings.stream, names.consumer_name(plugin_id, type_name)
                )
                pending += (info.num_pending or 0) + (info.num_ack_pending or 0)
        dead = 0
        with contextlib.suppress(NotFoundError):
            info_s = await self.js.stream_info(
                self.settings.dead_letter_stream,
                subjects_filter=f"{names.DEAD_LETTER_PREFIX}{plugin_id}.>",
            )
            dead = sum((info_s.state.subjects or {}).values())
        return {
            "publishes": list(events.publishes) if events else [],
            "subscribes": list(events.subscribes) if events else [],
            "pending": pending,
            "deadLettered": dead,
        }
