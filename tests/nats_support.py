"""A real nats-server with JetStream on loopback, for tests (event lane, audit trail).

The binary is built from the Go module proxy by `hack/cluster/nats/build.sh` (cached in
~/.cache/vivified, like the Kubernetes binaries). `NatsServer` can be stopped and started
again on the same port and store directory, so tests can restart the engine under load.
Fixture `nats_server` (tests/conftest.py): one server per test, JetStream file storage in
the test's tmp dir, stopped afterwards.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

NATS_BUILD_SCRIPT = (
    Path(__file__).resolve().parent.parent / "hack" / "cluster" / "nats" / "build.sh"
)


def nats_server_binary() -> Path:
    """Builds once (minutes), then answers from the cache at once."""
    out = subprocess.run(
        [str(NATS_BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True
    ).stdout
    return Path(out.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class NatsServer:
    """One nats-server process: loopback only, JetStream with file storage under `store`."""

    def __init__(self, binary: Path, store: Path) -> None:
        self.binary = binary
        self.store = store
        self.port = _free_port()
        self.log = store / "nats-server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        self.store.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    str(self.binary),
                    "-a",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-js",
                    "-sd",
                    str(self.store / "js"),
                    "--http_port",
                    "0",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"nats-server exited: {self.log.read_text()[-2000:]}")
            if "Server is ready" in self.log.read_text(errors="replace"):
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                        return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("nats-server did not become ready")

    def stop(self, kill: bool = False) -> None:
        """Stops the process (SIGTERM, or SIGKILL with `kill`); the store stays."""
        if self._proc is None:
            return
        if kill:
            self._proc.kill()
        else:
            self._proc.terminate()
        try:
            self._proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None
        # A new start must not find "Server is ready" of the previous run.
        self.log.rename(self.log.with_suffix(f".{time.monotonic_ns()}.log"))

    def restart(self, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()
