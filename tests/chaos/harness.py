"""Faults on the local test ground: kill -9 an operator process at a chosen moment, restart
it; kill -9 a control-plane process (the API server, etcd) and start it again; and wait until
the invariants of tests/chaos/invariants.py hold (time to converge).

Used by tests/chaos/test_*.py (the short tier, in ``make test``) and bench/chaos.py (the long
variants). The operator is a ``vivified operator`` process as tests/e2e/conftest.py starts it;
the control plane's processes are restarted by ``hack/cluster/cluster.py restart``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.chaos.invariants import Snapshot, check, read_snapshot

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Operator:
    """A restartable ``vivified operator`` process scoped to some namespaces."""

    kubeconfig: Path
    operator_namespace: str
    namespaces: tuple[str, ...]
    log_dir: Path
    settings: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def log(self) -> Path:
        return self.log_dir / f"operator-{self.starts}.log"

    def start(self, wait_synced: float = 60.0, *, until: str = "caches synced") -> None:
        """Start the process and wait until its log says UNTIL (default: it reconciles)."""
        self.starts += 1
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "VIVIFIED_OPERATOR_NAMESPACE": self.operator_namespace,
            "PYTHONUNBUFFERED": "1",
            "VIVIFIED_PROBE_MODE": "overrides",
            "VIVIFIED_HEARTBEAT_HOST": "127.0.0.1",
            "VIVIFIED_HEARTBEAT_PORT": "0",
            **{f"VIVIFIED_{k.upper()}": v for k, v in self.settings.items()},
        }
        args = [sys.executable, "-m", "vivified", "operator", "--log-level", "info"]
        for namespace in self.namespaces:
            args += ["--namespace", namespace]
        with self.log().open("wb") as sink:
            self.process = subprocess.Popen(
                args, env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=REPO
            )
        deadline = time.monotonic() + wait_synced
        while until not in self.log().read_text(errors="replace"):
            if self.process.poll() is not None:
                raise AssertionError(f"operator exited: {self.log().read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"operator never logged {until!r}")
            time.sleep(0.1)

    def wait_log(self, text: str, timeout: float = 60.0) -> None:
        """Until TEXT appears in the current process's log (a moment to kill it at)."""
        deadline = time.monotonic() + timeout
        while text not in self.log().read_text(errors="replace"):
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"operator exited: {self.log().read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"operator never logged {text!r}")
            time.sleep(0.02)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill9(self) -> None:
        """SIGKILL: no finalizer, no flush, no goodbye."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass(frozen=True)
class Outcome:
    fault: str
    when: str
    converge_seconds: float | None  # None: did not converge within the bound
    violations: tuple[str, ...]


def converge(
    api: Any,
    namespaces: Iterable[str],
    operator_namespace: str,
    *,
    earlier: Sequence[Snapshot] = (),
    timeout: float = 120.0,
    interval: float = 0.5,
) -> tuple[float | None, list[str], Snapshot]:
    """Polls until ``check`` finds nothing; returns (seconds, last violations, last snapshot).

    Seconds is None when TIMEOUT passed first (the violations then say what stayed wrong)."""
    names = tuple(namespaces)
    started = time.monotonic()
    snapshot = Snapshot()
    while True:
        try:
            snapshot = read_snapshot(api, names, operator_namespace)
            problems = check(snapshot, earlier)
        except Exception as error:  # the API server may be coming back
            problems = [f"cannot read the cluster: {type(error).__name__}: {error}"[:300]]
        if not problems:
            return time.monotonic() - started, [], snapshot
        if time.monotonic() - started > timeout:
            return None, problems, snapshot
        time.sleep(interval)


def burst(create: Callable[[str], object], names: Iterable[str]) -> list[str]:
    """Creates every plugin in NAMES through CREATE; returns the names."""
    done = []
    for name in names:
        create(name)
        done.append(name)
    return done


def persistently(action: Callable[[], object], *, timeout: float = 120.0) -> int:
    """Runs ACTION until it succeeds (an idempotent write, e.g. ``Cluster.apply_plugin``),
    retrying while the API server or etcd is away; returns the number of failed attempts."""
    failures = 0
    deadline = time.monotonic() + timeout
    while True:
        try:
            action()
            return failures
        except Exception:
            failures += 1
            if time.monotonic() > deadline:
                raise
            time.sleep(0.25)


@dataclass
class ControlPlane:
    """The local cluster's control-plane processes (``hack/cluster/cluster.py restart``)."""

    state_dir: Path

    def restart(
        self, name: str, down_seconds: float = 0.0, killed: threading.Event | None = None
    ) -> dict[str, float]:
        """kill -9 NAME, keep it down DOWN_SECONDS, start it again, wait until it serves;
        returns ``{"down": s, "ready": s}``. KILLED is set once the process is dead."""
        script = REPO / "hack" / "cluster" / "cluster.py"
        process = subprocess.Popen(
            [sys.executable, str(script), "restart", name, "--down", str(down_seconds),
             "--dir", str(self.state_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert process.stderr is not None
        assert process.stdout is not None
        log = []
        for line in process.stderr:
            log.append(line)
            if killed is not None and line.startswith(f"cluster: killed {name}"):
                killed.set()
        out = process.stdout.read()
        if process.wait(timeout=300) != 0:
            raise AssertionError(f"restart {name} failed: {''.join(log)[-2000:]}")
        timing: dict[str, float] = json.loads(out.strip().splitlines()[-1])
        return timing

    def restart_in_background(self, name: str, down_seconds: float = 0.0) -> Restart:
        """Starts the restart and returns once NAME is dead (the scenario goes on while it is
        down); ``result()`` waits for it to serve again."""
        restart = Restart(self, name, down_seconds)
        restart.start()
        while not restart.killed.wait(0.05):
            if not restart.is_alive():
                restart.result()  # raises what went wrong
                raise AssertionError(f"restart of {name} ended without killing it")
        return restart


class Restart(threading.Thread):
    """A control-plane restart running while the scenario goes on (``join`` for timings)."""

    def __init__(self, plane: ControlPlane, name: str, down_seconds: float) -> None:
        super().__init__(daemon=True, name=f"restart-{name}")
        self.plane, self.component, self.down_seconds = plane, name, down_seconds
        self.timing: dict[str, float] = {}
        self.error: BaseException | None = None
        self.killed = threading.Event()

    def run(self) -> None:
        try:
            self.timing = self.plane.restart(self.component, self.down_seconds, self.killed)
        except BaseException as error:  # handed to the scenario by result()
            self.error = error

    def result(self, timeout: float = 300.0) -> dict[str, float]:
        self.join(timeout)
        if self.error is not None:
            raise self.error
        return self.timing


# --- the data plane: core replicas and nats-server (issue 13, lanes) -------------------------


@dataclass
class CoreReplicas:
    """``vivified core`` replicas (``core-0``, ``core-1``) as processes on one API server and
    one NATS, each its own audit writer, behind an idealised Service: ``pick`` round-robins
    over the replicas in ``serving``, which a replica joins once its ``/readyz`` answers 200
    and leaves the moment it is killed (a real Service lags; a client then sees more errors,
    which invariant 10 would report as outside the fault). ENV is what every replica shares
    (kubeconfig, namespaces, NATS, address map, keys); ports stay fixed across restarts."""

    env: dict[str, str]
    log_dir: Path
    names: tuple[str, ...] = ("core-0", "core-1")
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    proxy_ports: dict[str, int] = field(default_factory=dict)
    serving: list[str] = field(default_factory=list)
    starts: dict[str, int] = field(default_factory=dict)
    _turn: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def log(self, name: str) -> Path:
        return self.log_dir / f"{name}-{self.starts.get(name, 0)}.log"

    def spawn(self, name: str) -> None:
        """Start NAME's process (not yet serving: ``wait_ready`` adds it)."""
        self.ports.setdefault(name, _free_port())
        self.proxy_ports.setdefault(name, _free_port())
        self.starts[name] = self.starts.get(name, 0) + 1
        env = {
            **self.env,
            "VIVIFIED_AUDIT_WRITER": name,
            "VIVIFIED_CORE_POD_NAME": name,
            "VIVIFIED_PROXY_PORT": str(self.proxy_ports[name]),
            "PYTHONUNBUFFERED": "1",
        }
        with self.log(name).open("wb") as sink:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "vivified", "core", "--port", str(self.ports[name])],
                env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=REPO,
            )  # fmt: skip

    def ready(self, name: str) -> bool:
        import httpx  # noqa: PLC0415

        process = self.processes[name]
        if process.poll() is not None:
            raise AssertionError(f"{name} exited: {self.log(name).read_text()[-3000:]}")
        try:
            return httpx.get(f"{self.url(name)}/readyz", timeout=1, trust_env=False).is_success
        except httpx.HTTPError:
            return False

    def wait_ready(self, name: str, timeout: float = 120.0) -> float:
        """Until NAME's /readyz answers 200, then it serves; returns the seconds waited."""
        started = time.monotonic()
        while not self.ready(name):
            if time.monotonic() - started > timeout:
                raise AssertionError(f"{name} not ready: {self.log(name).read_text()[-3000:]}")
            time.sleep(0.1)
        with self._lock:
            if name not in self.serving:
                self.serving.append(name)
        return time.monotonic() - started

    def start(self, *names: str, timeout: float = 120.0) -> None:
        """Spawn NAMES (default all) at once, then wait until each is ready."""
        for name in names or self.names:
            self.spawn(name)
        for name in names or self.names:
            self.wait_ready(name, timeout)

    def pick(self) -> str:
        """The replica the Service sends the next request to."""
        with self._lock:
            if not self.serving:
                raise ConnectionError("no core replica is serving")
            self._turn += 1
            return self.serving[self._turn % len(self.serving)]

    def kill9(self, name: str) -> float:
        """Out of the endpoints, then SIGKILL; returns the moment (``time.monotonic()``)."""
        with self._lock:
            if name in self.serving:
                self.serving.remove(name)
            at = time.monotonic()
        process = self.processes.get(name)
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
        return at

    def stop(self) -> None:
        with self._lock:
            self.serving.clear()
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def kill9_nats(nats: Any, down_seconds: float = 0.0, *, wipe: bool = False) -> tuple[float, float]:
    """SIGKILL a ``tests.nats_support.NatsServer`` and start it again on the same port and
    JetStream store after DOWN_SECONDS; returns (killed, serving again) as monotonic times.
    WIPE deletes the store before the start: the deliberately broken setup (``nats-wiped``)
    whose lost events and trail the checker must report."""
    import shutil  # noqa: PLC0415

    killed = time.monotonic()
    nats.stop(kill=True)
    if wipe:
        shutil.rmtree(nats.store / "js", ignore_errors=True)
    time.sleep(down_seconds)
    nats.start()
    return killed, time.monotonic()
