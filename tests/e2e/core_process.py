"""``vivified core`` as a real process on loopback, for e2e tests that need the plugin services.

Plugins send heartbeats to the core (any replica), which renews a Lease per plugin that the
operator's LeaseWatcher reads; the operator itself serves plugins nothing.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
from tests.e2e.kube import REPO

from vivified.tokens import generate_signing_key


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def core_env(
    *,
    kubeconfig: Path,
    namespace: str,
    operator_namespace: str,
    key_file: Path,
    address_map: str = "",
) -> dict[str, str]:
    """The environment of a core watching ``namespace``; ``key_file`` gets a fresh call key."""
    if not key_file.exists():
        key_file.write_bytes(generate_signing_key(datetime.now(UTC)).private_pem)
    env = {
        **os.environ,
        "VIVIFIED_CORE_SIGNING_KEY_FILE": str(key_file),
        "KUBECONFIG": str(kubeconfig),
        "VIVIFIED_CORE_HOST": "127.0.0.1",
        "VIVIFIED_CORE_NAMESPACES": namespace,
        "VIVIFIED_CORE_IDENTITY_NAMESPACE": operator_namespace,
        "PYTHONUNBUFFERED": "1",
    }
    if address_map:
        env["VIVIFIED_CORE_ADDRESS_MAP"] = address_map
    return env


class CoreProcess:
    def __init__(self, env: dict[str, str], log: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # The proxy lane listens too (issue 9): a free port of its own, never the shared 3128.
        self.proxy_port = int(env.get("VIVIFIED_PROXY_PORT") or free_port())
        env = {**env, "VIVIFIED_PROXY_PORT": str(self.proxy_port)}
        with log.open("wb") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "vivified", "core", "--port", str(self.port)],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        self.log = log

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"core exited:\n{self.log.read_text()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1, trust_env=False).is_success
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
