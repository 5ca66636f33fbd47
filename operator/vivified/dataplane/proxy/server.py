"""The proxy lane's server: one asyncio handler per client connection, default deny.

Order of a request: head (h11, size and time limits) → identity (Proxy-Authorization) →
per-plugin rate and tunnel limits → target decision (pure) → one DNS look-up → address
decision (pure) → decision audit record → dial exactly a checked address → relay → close
audit record. Anything that fails answers with its reason and dials nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11

from vivified.audit.hook import Auditor, AuditUnavailable
from vivified.dataplane.directory import PluginDirectory, PluginRecord
from vivified.policy.egress import (
    EgressDecision,
    apply_mode,
    decide_addresses,
    decide_host_header,
    decide_target,
)

from .auth import Authenticator, AuthFailure
from .forward import forward_request
from .head import HeadError, RequestHead, read_head
from .limits import PluginLimits
from .metrics import ProxyMetrics
from .records import auth_failure_entry, close_entry, decision_entry
from .resolver import ResolveError, Resolver, StaticResolver, SystemResolver
from .responses import refusal, tunnel_established
from .settings import ProxySettings
from .target import Refusal, first_header, request_target
from .tunnel import Closed, Tunnel
from .verifier import VerifiedToken, Verifier

__all__ = ["Dialer", "ProxyServer"]

Dialer = Callable[[str, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]

logger = logging.getLogger(__name__)


@dataclass
class _Request:
    """One proxied request's context, from head to close."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    conn: h11.Connection
    head: RequestHead
    identity: VerifiedToken
    record: PluginRecord | None
    kind: str = ""
    host: str = ""
    port: int = 0
    started: float = 0.0


class ProxyServer:
    """Listens on ``settings.port``; see :mod:`vivified.dataplane.proxy` for the contract."""

    def __init__(
        self,
        settings: ProxySettings,
        directory: PluginDirectory,
        verifier: Verifier,
        auditor: Auditor,
        resolver: Resolver | None = None,
        *,
        metrics: ProxyMetrics | None = None,
    ) -> None:
        settings.validate()
        self.settings = settings
        self.directory = directory
        self.auditor = auditor
        self.config = settings.egress_config()
        if resolver is None:
            resolver = (
                StaticResolver(settings.test_static_hosts)
                if settings.test_static_hosts
                else SystemResolver()
            )
        self.resolver = resolver
        self.metrics = metrics if metrics is not None else ProxyMetrics()
        self.auth = Authenticator(verifier)
        self.limits = PluginLimits(
            rate_per_second=settings.rate_per_second,
            burst=settings.rate_burst,
            max_tunnels=settings.max_tunnels_per_plugin,
        )
        self.tunnels: set[Tunnel] = set()
        #: How upstream connections are opened (tests wrap it to see every dial).
        self.dial: Dialer = _dial
        self._connections = 0
        self._pending: dict[str, int] = {}
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._policy_task: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        if self.settings.has_test_seams:
            logger.warning(
                "proxy lane: TEST-ONLY resolver map or allowed networks are configured; "
                "never run a real installation like this"
            )
        if self.settings.mode == "report":
            logger.warning("proxy lane in REPORT mode: allowlist refusals are only recorded")
        self._server = await asyncio.start_server(
            self._handle,
            self.settings.host or "0.0.0.0",  # noqa: S104 - see ProxySettings.host
            self.settings.port,
            limit=STREAM_LIMIT,
            backlog=1024,
        )
        self._policy_task = asyncio.create_task(self._policy_loop(), name="proxy-policy")
        logger.info("proxy lane listening on %s:%d", self.settings.host, self.port)

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            return self.settings.port
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._policy_task is not None:
            self._policy_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._policy_task
        for tunnel in list(self.tunnels):
            tunnel.close("shutdown")
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _policy_loop(self) -> None:
        """Live policy: tunnels follow the directory (disable, domain removed) and idle out."""
        while True:
            await asyncio.sleep(self.settings.policy_recheck_seconds)
            self.recheck()

    def recheck(self) -> None:
        now = time.monotonic()
        for tunnel in list(self.tunnels):
            if now - tunnel.last_activity > self.settings.idle_timeout:
                tunnel.close("idle_timeout")
                continue
            record = self.directory.get(tunnel.plugin_id)
            if record is not None and record is tunnel.judged:
                continue  # records are immutable and replaced on change: the same decision
            decision = apply_mode(
                decide_target(record, tunnel.host, tunnel.port, self.config), self.config.mode
            )
            if not decision.allowed:
                tunnel.close(f"policy_{decision.reason}")
            else:
                tunnel.judged = record

    # ---------------------------------------------------------------- one connection

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        self._connections += 1
        self.metrics.connection_opened()
        try:
            if self._connections > self.settings.max_connections:
                self._count("overloaded")
                writer.write(refusal(503, "overloaded", "the proxy is at its connection limit"))
                await writer.drain()
                return
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception:
            logger.exception("proxy lane: unexpected error")
        finally:
            self._connections -= 1
            self.metrics.connection_closed()
            await _linger(reader, writer)
            writer.close()
            if isinstance(writer.transport.get_protocol(), asyncio.StreamReaderProtocol):
                with contextlib.suppress(Exception):  # (a spliced tunnel waited already)
                    async with asyncio.timeout(1.0):
                        await writer.wait_closed()
            if task is not None:
                self._handlers.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.settings.max_head_bytes)
        peer = writer.get_extra_info("peername")
        source = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        pending = self._pending.get(source, 0)
        if pending >= self.settings.max_pending_per_peer:
            self._count("too_many_pending")
            await _answer(writer, 429, "too_many_pending", "too many unfinished requests")
            return
        self._pending[source] = pending + 1
        try:
            head = await read_head(
                reader,
                conn,
                timeout=self.settings.head_timeout,
                max_headers=self.settings.max_headers,
                max_bytes=self.settings.max_head_bytes,
            )
        except HeadError as error:
            self._count(error.reason)
            await _answer(writer, error.status, error.reason, error.message)
            return
        finally:
            left = self._pending.get(source, 1) - 1
            if left > 0:
                self._pending[source] = left
            else:
                self._pending.pop(source, None)
        if head is None:
            return
        started = time.perf_counter()
        identity = self.auth.identify(first_header(head, "proxy-authorization"))
        if isinstance(identity, AuthFailure):
            self._count(identity.reason)
            if identity.reason != "credentials_missing":  # the challenge itself is routine
                await self._audit_auth_failure(head, identity)
            await _answer(writer, identity.status, identity.reason, identity.message)
            return
        plugin_id = identity.plugin_id
        req = _Request(reader, writer, conn, head, identity, self.directory.get(plugin_id))
        req.started = started
        try:
            req.kind, req.host, req.port = request_target(head)
            if req.kind == "http":
                mismatch = decide_host_header(
                    urlsplit(head.target).netloc, first_header(head, "host"), 80
                )
                if mismatch is not None:
                    raise Refusal(400, "host_mismatch", mismatch)
        except Refusal as refused:
            await self._refuse(req, refused)
            return
        if not self.limits.take(plugin_id):
            limited = Refusal(429, "rate_limited", "too many new connections; slow down")
            await self._refuse(req, limited)
            return
        if not self.limits.open(plugin_id):
            cap = self.settings.max_tunnels_per_plugin
            await self._refuse(req, Refusal(429, "tunnel_limit", f"at most {cap} open"))
            return
        try:
            await self._decide_and_relay(req)
        finally:
            self.limits.close(plugin_id)

    async def _decide_and_relay(self, req: _Request) -> None:
        record, host, port = req.record, req.host, req.port
        decision = apply_mode(decide_target(record, host, port, self.config), self.config.mode)
        dns_ms = 0.0
        if decision.allowed and not decision.addresses:
            t0 = time.perf_counter()
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for costs a Task per call.
                async with asyncio.timeout(self.settings.connect_timeout):
                    addresses = await self.resolver.resolve(decision.host, port)
            except (ResolveError, TimeoutError) as error:
                addresses = ()
                decision = EgressDecision(
                    False, "resolution_failed", str(error) or "resolution timed out", host, port
                )
            dns = time.perf_counter() - t0
            dns_ms = dns * 1000
            self.metrics.observe("dns", dns)
            decision = decide_addresses(decision, tuple(addresses), self.config)
        if not decision.allowed:
            status = 502 if decision.reason == "resolution_failed" else 403
            refused = Refusal(status, decision.reason, decision.message)
            await self._refuse(req, refused, decision, dns_ms)
            return
        assert record is not None  # an allowed decision always has a plugin  # noqa: S101
        try:
            await self.auditor.record(
                decision_entry(record.plugin_id, record, req.head, decision, dns_ms)
            )
        except AuditUnavailable:
            self._decided(record, "refused", "audit_unavailable")
            await _answer(req.writer, 503, "audit_unavailable", "the audit trail is unavailable")
            return
        self._decided(record, "allowed", decision.reason)
        await self._dial_and_relay(req, record, decision)

    async def _dial_and_relay(
        self, req: _Request, record: PluginRecord, decision: EgressDecision
    ) -> None:
        t0 = time.perf_counter()
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        address = ""
        close_reason = "upstream_unreachable"
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                for candidate in decision.addresses:  # only checked addresses, in order
                    try:
                        upstream = await self.dial(str(candidate), decision.port)
                        address = str(candidate)
                        break
                    except OSError:
                        continue
        except TimeoutError:
            close_reason = "upstream_timeout"
        self.metrics.observe("connect", time.perf_counter() - t0)
        if upstream is None:
            status = 504 if close_reason == "upstream_timeout" else 502
            await _answer(req.writer, status, close_reason, f"cannot connect to {decision.host}")
            await self._audit_close(record, decision, Tunnel.failed(close_reason))
            return
        up_reader, up_writer = upstream
        for w in (req.writer, up_writer):
            w.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        tunnel = Tunnel(
            record.plugin_id,
            decision.host,
            decision.port,
            address,
            req.reader,
            req.writer,
            up_reader,
            up_writer,
        )
        tunnel.judged = record  # the live re-check decides again only when the record changes
        self.tunnels.add(tunnel)
        self.metrics.tunnel_opened()
        try:
            if req.kind == "connect":
                req.writer.write(tunnel_established(decision.would_deny))
                leftover, _closed = req.conn.trailing_data
                self.metrics.observe("setup", time.perf_counter() - req.started)
                await tunnel.splice(bytes(leftover), kernel=self.settings.kernel_splice)
            else:
                await forward_request(
                    tunnel, req.conn, req.head, body_timeout=self.settings.idle_timeout
                )
        finally:
            self.tunnels.discard(tunnel)
            self.metrics.tunnel_closed(
                tunnel.close_reason or "eof", tunnel.bytes_in, tunnel.bytes_out
            )
            await self._audit_close(record, decision, tunnel)

    # ---------------------------------------------------------------- refusals and audit

    async def _refuse(
        self,
        req: _Request,
        refused: Refusal,
        decision: EgressDecision | None = None,
        dns_ms: float = 0.0,
    ) -> None:
        decision = decision or EgressDecision(
            False, refused.reason, refused.message, req.host, req.port
        )
        if req.record is not None:
            self._decided(req.record, "refused", refused.reason)
        else:
            self._count(refused.reason)
        entry = decision_entry(req.identity.plugin_id, req.record, req.head, decision, dns_ms)
        with contextlib.suppress(AuditUnavailable):  # the request is refused anyway
            await self.auditor.record(entry)
        await _answer(req.writer, refused.status, refused.reason, refused.message)

    async def _audit_auth_failure(self, head: RequestHead, failure: AuthFailure) -> None:
        with contextlib.suppress(AuditUnavailable):
            await self.auditor.record(auth_failure_entry(head, failure.reason))

    async def _audit_close(
        self, record: PluginRecord, decision: EgressDecision, tunnel: Tunnel | Closed
    ) -> None:
        try:
            await self.auditor.record(close_entry(record, decision, tunnel))
        except AuditUnavailable:
            logger.warning("proxy lane: close record for %s not kept", record.plugin_id)

    def _decided(self, record: PluginRecord, outcome: str, reason: str) -> None:
        self.metrics.decided(record.plugin_id, outcome, reason)

    def _count(self, reason: str) -> None:
        self.metrics.refused(reason)


#: Stream buffer size: h11 parses heads (never readuntil), so this only sets how much a
#: tunnel moves per read; 64 KiB (asyncio's default) halves bulk throughput.
STREAM_LIMIT = 1024 * 1024
WRITE_HIGH_WATER = 1024 * 1024


async def _dial(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(host, port, limit=STREAM_LIMIT)


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Before closing a refused connection: send FIN and discard what the client still sends
    for a moment, so the kernel does not answer unread input with a reset that can destroy
    the refusal before the client has read it."""
    if not isinstance(writer.transport.get_protocol(), asyncio.StreamReaderProtocol):
        return  # spliced: the tunnel closed its transports itself
    if writer.is_closing() or reader.at_eof():
        return
    with contextlib.suppress(Exception):
        if writer.can_write_eof():
            writer.write_eof()
        async with asyncio.timeout(0.2):
            while await reader.read(65536):
                pass


async def _answer(writer: asyncio.StreamWriter, status: int, reason: str, message: str) -> None:
    writer.write(refusal(status, reason, message))
    with contextlib.suppress(ConnectionError):
        await writer.drain()
