"""Faults on the local test ground: kill -9 an operator process at a chosen moment, restart
it, and wait until the invariants of tests/chaos/invariants.py hold (time to converge).

Used by tests/chaos/test_*.py (the short tier, in ``make test``) and bench/chaos.py (the long
variants). The operator is a ``vivified operator`` process as tests/e2e/conftest.py starts it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
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

    def start(self, wait_synced: float = 60.0) -> None:
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
        while "caches synced" not in self.log().read_text(errors="replace"):
            if self.process.poll() is not None:
                raise AssertionError(f"operator exited: {self.log().read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError("operator did not sync its caches")
            time.sleep(0.1)

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
    while True:
        snapshot = read_snapshot(api, names, operator_namespace)
        problems = check(snapshot, earlier)
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
