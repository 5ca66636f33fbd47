"""Faults on the data plane (issue 13): nats-server killed -9 during a publish burst, and a core
replica killed during operator-lane calls, proxy tunnels and event deliveries.

The ground (:func:`lane_ground`): the test ground's API server with a ``vivified operator``
for one namespace (plugins Active, tokens minted), a real nats-server, and two ``vivified core``
replicas (:class:`~tests.chaos.harness.CoreReplicas`) writing their audit chains to it. Two
plugins: ``lane-caller`` (depends on ``lane-target``, publishes DocumentProcessed, may reach
``api.partner.test`` through the proxy) and ``lane-target`` (serves ``lookup`` and subscribes
to DocumentProcessed), played by a loopback HTTP server through the core's address map; the
partner is a loopback echo server.

Clients (:class:`Clients`) send calls, tunnels and publishes through the idealised Service,
retry each failed attempt until it succeeds, and keep every attempt as a
:class:`~tests.chaos.lane_invariants.Request`. :func:`judge` applies invariants 8-10 to the
history, the deliveries and the trail as stored. Used by tests/chaos/test_lane_faults.py (short)
and bench/chaos.py rows ``nats``, ``core`` and the broken ``nats-wiped`` (long).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import http.server
import json
import os
import socket
import socketserver
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client
from tests.chaos.harness import CoreReplicas, Operator, Outcome, kill9_nats
from tests.chaos.lane_invariants import (
    Fault,
    Request,
    check_errors,
    check_events,
    check_trail,
)
from tests.e2e.conftest import OPERATOR_NAMESPACE, delete_plugins, strip_finalizers
from tests.e2e.kube import Cluster, plugin_body, wait_for
from tests.nats_support import NatsServer, nats_server_binary

CALLER, TARGET = "lane-caller", "lane-target"
PARTNER = "api.partner.test"
EVENT_TYPE = "DocumentProcessed"
#: After nats-server serves again: the clients' reconnect wait (0.5 s) plus the audit sink's
#: probe (1 s) and a connect, during which the lanes may still refuse (docs/events.md).
RECONNECT_SLACK = 3.0


def _plugin(plugin_id: str, traits: list[str], **manifest: Any) -> dict[str, Any]:
    body = plugin_body(plugin_id, traits=traits)
    body["spec"]["manifest"].update(manifest, health_check={"type": "custom"})
    return body


PLUGINS = (
    _plugin(
        TARGET,
        ["audit_required"],
        endpoints={"health": "/health", "lookup": "/l/{id}", "events": "/events"},
        events={"subscribes": [EVENT_TYPE]},
    ),
    _plugin(
        CALLER,
        ["audit_required", "emits_events", "external_service"],
        dependencies=[TARGET],
        allowed_domains=[PARTNER],
        events={"publishes": [EVENT_TYPE]},
    ),
)


class Target(http.server.ThreadingHTTPServer):
    """``lane-target``: answers ``lookup`` calls, records every event delivered to it."""

    daemon_threads = True

    def __init__(self) -> None:
        self.received: list[str] = []
        target = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._answer(200, b'{"found":true}')

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    target.received.append(str(json.loads(body)["id"]))
                self._answer(204, b"")

            def _answer(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                del args

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class Echo(socketserver.ThreadingTCPServer):
    """The partner behind the proxy: echoes what a tunnel sends."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with contextlib.suppress(OSError):
                    while data := self.request.recv(4096):
                        self.request.sendall(data)

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])


@dataclass
class LaneGround:
    api: client.ApiClient
    namespace: str
    nats: NatsServer
    cores: CoreReplicas
    target: Target
    echo: Echo
    tokens: dict[str, str]
    public_key: bytes
    operator: Operator


def core_environment(
    kubeconfig: Path, namespace: str, nats: NatsServer, servers: tuple[Target, Echo], work: Path
) -> dict[str, str]:
    """What both replicas share: one call-token key, one audit key, one NATS."""
    target, echo = servers
    from vivified.audit.checkpoint import Signer  # noqa: PLC0415
    from vivified.tokens import generate_signing_key  # noqa: PLC0415

    key_file, audit_key = work / "core-key.pem", work / "audit.key"
    key_file.write_bytes(generate_signing_key(datetime.now(UTC)).private_pem)
    signer = Signer.generate()
    audit_key.write_bytes(signer.private_pem())
    (work / "audit.pub").write_bytes(signer.public_pem())
    return {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "VIVIFIED_CORE_SIGNING_KEY_FILE": str(key_file),
        "VIVIFIED_CORE_HOST": "127.0.0.1",
        "VIVIFIED_CORE_NAMESPACES": namespace,
        "VIVIFIED_CORE_IDENTITY_NAMESPACE": OPERATOR_NAMESPACE,
        "VIVIFIED_CORE_ADDRESS_MAP": f"{TARGET}=127.0.0.1:{target.port}",
        "VIVIFIED_NATS_URL": nats.url,
        "VIVIFIED_AUDIT_SINK": nats.url,
        "VIVIFIED_AUDIT_KEY_FILE": str(audit_key),
        "VIVIFIED_UI": "off",
        "VIVIFIED_EVENTS_PIN_TIMEOUT_SECONDS": "2",
        "VIVIFIED_EVENTS_ACK_WAIT_SECONDS": "3",
        "VIVIFIED_EVENTS_RECONCILE_SECONDS": "0.5",
        "VIVIFIED_EVENTS_BACKOFF_INITIAL_SECONDS": "0.1",
        "VIVIFIED_EVENTS_DELIVERY_TIMEOUT_SECONDS": "3",
        "VIVIFIED_EVENTS_MAX_ATTEMPTS": "50",
        "VIVIFIED_PROXY_ALLOWED_PORTS": str(echo.port),
        # TEST ONLY (docs/proxy.md): the partner's name from a map; never a real look-up.
        "VIVIFIED_PROXY_TEST_STATIC_HOSTS": json.dumps({PARTNER: ["127.0.0.1"]}),
        "VIVIFIED_PROXY_TEST_ALLOW_NETWORKS": "127.0.0.0/8",
    }


@contextlib.contextmanager
def lane_ground(
    api: client.ApiClient, kubeconfig: Path, work: Path | None = None
) -> Iterator[LaneGround]:
    """The ground in a fresh namespace; everything stopped and deleted afterwards."""
    work = work or Path(tempfile.mkdtemp(prefix="chaos-lanes-"))
    core_api = client.CoreV1Api(api)
    namespace = f"chaos-lanes-{os.urandom(3).hex()}"
    core_api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    nats = NatsServer(nats_server_binary(), work / "nats")
    target, echo = Target(), Echo()
    operator = Operator(kubeconfig, OPERATOR_NAMESPACE, (namespace,), work)
    cores = CoreReplicas(core_environment(kubeconfig, namespace, nats, (target, echo), work), work)
    cluster = Cluster(api)
    try:
        nats.start()
        operator.start()
        for name in cores.names:
            cores.spawn(name)  # their imports overlap the plugins' reconcile
        for body in PLUGINS:
            cluster.apply_plugin(namespace, body)
        tokens = {}
        for body in PLUGINS:
            plugin_id = body["metadata"]["name"]
            cluster.wait_phase(namespace, plugin_id, "Active", timeout=90)
            data = wait_for(
                f"{plugin_id} token",
                functools.partial(cluster.secret_data, namespace, f"{plugin_id}-token"),
                timeout=30,
            )
            tokens[plugin_id] = data["token"]
        for name in cores.names:
            cores.wait_ready(name)
        ground = LaneGround(
            api, namespace, nats, cores, target, echo, tokens,
            (work / "audit.pub").read_bytes(), operator,
        )  # fmt: skip
        wait_for("the lanes serve", lambda: _lanes_serve(ground), timeout=60, interval=0.3)
        beating = threading.Event()
        threading.Thread(target=_heartbeats, args=(ground, beating), daemon=True).start()
        yield ground
    finally:
        with contextlib.suppress(NameError):
            beating.set()
        cores.stop()
        custom = client.CustomObjectsApi(api)
        if operator.alive:
            with contextlib.suppress(Exception):
                delete_plugins(custom, namespace, timeout=30)
        operator.stop()
        strip_finalizers(custom, namespace)
        with contextlib.suppress(client.ApiException):
            core_api.delete_namespace(namespace)
        nats.stop()
        target.shutdown()
        echo.shutdown()


def _heartbeats(ground: LaneGround, stop: threading.Event, every: float = 2.0) -> None:
    """Both plugins report healthy, as real ones do: without heartbeats the operator marks a
    custom-health plugin unhealthy after a while, and the core refuses calls to it."""
    while not stop.wait(every):
        for token in ground.tokens.values():
            with contextlib.suppress(ConnectionError, httpx.HTTPError):
                httpx.post(
                    f"{ground.cores.url(ground.cores.pick())}/v1/heartbeat",
                    json={"status": "healthy"},
                    headers={"Authorization": f"Bearer {token}", "Connection": "close"},
                    timeout=5,
                    trust_env=False,
                )


def _lanes_serve(ground: LaneGround) -> bool:
    """Every replica forwards a call and opens a tunnel (a warm-up, not in the history):
    the directory of each has seen both plugins Active."""
    probe = Clients(ground)
    for replica in ground.cores.names:
        for kind in ("invoke", "tunnel"):
            if not probe.attempt(kind, f"warm-{replica}", replica).ok:
                return False
    return True


# --- clients -----------------------------------------------------------------------------------


@dataclass
class Clients:
    """Calls, tunnels and publishes as ``lane-caller``, through the Service, each retried
    until it succeeds (or ``give_up`` seconds pass); every attempt kept in ``history``."""

    ground: LaneGround
    give_up: float = 60.0
    history: list[Request] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attempt(self, kind: str, key: str, replica: str) -> Request:
        started = time.monotonic()
        error = ""
        try:
            error = {"invoke": self._invoke, "tunnel": self._tunnel, "publish": self._publish}[
                kind
            ](key, replica)
        except (OSError, httpx.HTTPError) as exc:
            error = type(exc).__name__
        return Request(kind, key, started, time.monotonic(), not error, replica, CALLER, error)

    def run(self, kind: str, key: str) -> None:
        deadline = time.monotonic() + self.give_up
        while True:
            try:
                replica = self.ground.cores.pick()
            except ConnectionError:
                time.sleep(0.05)
                continue
            request = self.attempt(kind, key, replica)
            with self._lock:
                self.history.append(request)
            if request.ok or time.monotonic() > deadline:
                return
            time.sleep(0.1)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.ground.tokens[CALLER]}", "Connection": "close"}

    def _invoke(self, key: str, replica: str) -> str:
        url = f"{self.ground.cores.url(replica)}/v1/invoke/{TARGET}/lookup/{key}"
        response = httpx.get(url, headers=self._headers(), timeout=10, trust_env=False)
        return "" if response.status_code == 200 else _reason(response)

    def _publish(self, key: str, replica: str) -> str:
        event = {"specversion": "1.0", "id": key, "type": EVENT_TYPE,
                 "data": {"document_id": key, "status": "succeeded"}}  # fmt: skip
        response = httpx.post(
            f"{self.ground.cores.url(replica)}/v1/events",
            content=json.dumps(event),
            headers={**self._headers(), "Content-Type": "application/cloudevents+json"},
            timeout=10,
            trust_env=False,
        )
        return "" if response.status_code in (200, 201) else _reason(response)

    def _tunnel(self, key: str, replica: str) -> str:
        port, target = self.ground.cores.proxy_ports[replica], f"{PARTNER}:{self.ground.echo.port}"
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            token = self.ground.tokens[CALLER]
            sock.sendall(
                f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
                f"Proxy-Authorization: Bearer {token}\r\n\r\n".encode()
            )
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk:
                    return "closed before the answer"
                head += chunk
            if not head.startswith(b"HTTP/1.1 200"):
                return head.split(b"\r\n", 1)[0].decode(errors="replace")
            ping = f"ping {key}".encode()
            sock.sendall(ping)
            echoed = b""
            while len(echoed) < len(ping):
                chunk = sock.recv(4096)
                if not chunk:
                    return "tunnel closed"
                echoed += chunk
            return "" if echoed == ping else "echo differs"

    def drive(
        self, work: Sequence[tuple[str, str]], *, threads: int = 6,
        at: int | None = None, fault: Callable[[], None] | None = None,
    ) -> None:  # fmt: skip
        """Runs WORK ((kind, key) pairs) on THREADS; starts FAULT (in its own thread, so the
        work goes on during it) once item AT has started."""
        injector = threading.Thread(target=fault or (lambda: None), daemon=True)
        with ThreadPoolExecutor(threads) as pool:
            futures = []
            for n, (kind, key) in enumerate(work):
                futures.append(pool.submit(self.run, kind, key))
                if n == at:
                    injector.start()
                while sum(not f.done() for f in futures) > threads:
                    time.sleep(0.002)  # no queue: the fault meets requests on the wire
            for future in futures:
                future.result()
        if injector.is_alive() or at is not None:
            injector.join()


def _reason(response: httpx.Response) -> str:
    try:
        return f"{response.status_code} {response.json().get('reason', '')}"
    except ValueError:
        return str(response.status_code)


def mixed(n: int, prefix: str) -> list[tuple[str, str]]:
    """N requests, calls, tunnels and publishes in turn (publish keys are event ids)."""
    kinds = ("invoke", "publish", "tunnel")
    return [(kinds[i % 3], f"{prefix}-{i:05d}") for i in range(n)]


# --- judging ---------------------------------------------------------------------------------


async def _read_trail(url: str) -> tuple[list[bytes], list[bytes]]:
    import nats  # noqa: PLC0415

    from vivified.dataplane.audit.jetstream import StreamSettings, read_stream  # noqa: PLC0415

    settings = StreamSettings(url=url)
    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=2)
    try:
        js = nc.jetstream()
        out = []
        for stream in (settings.stream, settings.checkpoint_stream):
            try:
                out.append(await read_stream(js, stream))
            except Exception:  # a wiped store has no stream: an empty trail
                out.append([])
        return out[0], out[1]
    finally:
        await nc.close()


def wait_delivered(ground: LaneGround, requests: Sequence[Request], timeout: float) -> float | None:
    """Until every acknowledged event reached the target; the moment, or None (timed out)."""
    acked = {r.key for r in requests if r.kind == "publish" and r.ok}
    deadline = time.monotonic() + timeout
    while not acked <= set(ground.target.received):
        if time.monotonic() > deadline:
            return None
        time.sleep(0.2)
    return time.monotonic()


def judge(
    ground: LaneGround, requests: Sequence[Request], faults: Sequence[Fault], since: int = 0
) -> tuple[list[str], int]:
    """Invariants 8-10 on the history: (violations, duplicate deliveries). SINCE: the number of
    deliveries the target had before this run (earlier runs' events are not judged)."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key  # noqa: PLC0415

    from vivified.audit.verify import verify_trail  # noqa: PLC0415

    problems = check_errors(requests, faults)
    deliveries = check_events(requests, {TARGET: ground.target.received[since:]})
    problems += deliveries.lost
    records, checkpoints = asyncio.run(_read_trail(ground.nats.url))
    key: Any = load_pem_public_key(ground.public_key)
    report = verify_trail(records, checkpoints, key)
    parsed = [json.loads(r) for r in records]
    problems += check_trail(parsed, [str(p) for p in report.problems], requests, ground.cores.names)
    return problems, deliveries.duplicates


# --- scenarios -------------------------------------------------------------------------------


def core_killed(ground: LaneGround, n: int, *, deliver_timeout: float = 60.0) -> Outcome:
    """kill -9 ``core-0`` once a third of N mixed requests started, start it again at once;
    converge = until it serves again and every acknowledged event has arrived."""
    clients, since = Clients(ground), len(ground.target.received)
    faults: list[Fault] = []

    def kill() -> None:
        faults.append(Fault("core-0", (at := ground.cores.kill9("core-0")), at))
        ground.cores.spawn("core-0")
        threading.Thread(target=ground.cores.wait_ready, args=("core-0",), daemon=True).start()

    clients.drive(mixed(n, f"core-{os.urandom(2).hex()}"), at=n // 3, fault=kill)
    wait_for("core-0 serving again", lambda: "core-0" in ground.cores.serving, timeout=120)
    back = wait_delivered(ground, clients.history, deliver_timeout)
    problems, duplicates = judge(ground, clients.history, faults, since)
    converged = None if back is None else back - faults[0].at
    errors = sum(not r.ok for r in clients.history)
    when = f"request {n // 3} of {n}; {errors} errors, {duplicates} dup"
    return Outcome("kill-9 core-0", when, converged, tuple(problems))


def nats_killed(
    ground: LaneGround, n: int, *, down: float = 1.0, wipe: bool = False,
    deliver_timeout: float = 60.0,
) -> Outcome:  # fmt: skip
    """kill -9 nats-server once a third of N publishes started (store kept, or WIPEd), start
    it again after DOWN s; converge = until every acknowledged event has arrived."""
    clients, since = Clients(ground, give_up=2.0 if wipe else 60.0), len(ground.target.received)
    faults: list[Fault] = []

    def kill() -> None:
        killed, back = kill9_nats(ground.nats, down, wipe=wipe)
        faults.append(Fault("nats", killed, back + RECONNECT_SLACK))

    burst = [("publish", f"nats-{os.urandom(2).hex()}-{i:05d}") for i in range(n)]
    clients.drive(burst, at=n // 3, fault=kill)
    back = wait_delivered(ground, clients.history, 10.0 if wipe else deliver_timeout)
    problems, duplicates = judge(ground, clients.history, faults, since)
    converged = None if back is None else back - faults[0].at
    errors = sum(not r.ok for r in clients.history)
    name = "kill-9 nats, wiped" if wipe else "kill-9 nats"
    when = f"publish {n // 3} of {n}; {errors} errors, {duplicates} dup"
    return Outcome(name, when, converged, tuple(problems))


#: bench/chaos.py's lane rows; ``nats-wiped`` is broken on purpose (the store deleted on
#: restart): its violations show the checker catches lost events and a lost trail.
LANE_ROWS = ("nats", "core", "nats-wiped")


def lane_row(
    api: client.ApiClient, kubeconfig: Path, name: str, events: int, timeout: float
) -> Outcome:
    """One bench row on a fresh ground: EVENTS publishes (``core``: as many calls and tunnels
    besides), the fault a third of the way in."""
    with lane_ground(api, kubeconfig) as ground:
        if name == "core":
            outcome = core_killed(ground, 3 * events, deliver_timeout=timeout)
        elif name == "nats":
            outcome = nats_killed(ground, events, deliver_timeout=timeout)
        else:
            wiped = nats_killed(ground, min(events, 300), wipe=True)
            outcome = Outcome(f"{wiped.fault} (broken)", *dataclasses.astuple(wiped)[1:])
    shown = "; ".join(outcome.violations[:5])  # a row is kept even if a later one overruns
    print(f"{name}: {outcome.fault}, {outcome.when}, converge {outcome.converge_seconds}, "
          f"{len(outcome.violations)} violations {shown}", flush=True)  # fmt: skip
    return outcome
