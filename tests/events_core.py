"""The core's app with the event lane as its own process, so a test can SIGKILL it.

    python tests/events_core.py CONFIG.json

CONFIG (``World.process_config``): ``nats_url``, ``port``, ``jwks`` (the operator's public
keys: publishers' tokens are verified against them), ``core_key_file`` (the core's PEM: it
signs the deliveries' call tokens), ``plugins: [{"manifest": {...}, "url": "http://..."}]``.
It is ``vivified.dataplane.app.build_app`` with the lane ``core_lanes`` mounts, fed a static
directory instead of the API-server watch.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import json
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))

from events_support import core_context, record
from vivified import tokens
from vivified.dataplane import events
from vivified.dataplane.app import build_app
from vivified.dataplane.directory import StaticDirectory


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    urls = {p["manifest"]["id"]: p["url"] for p in config["plugins"]}
    directory = StaticDirectory(record(p["manifest"]) for p in config["plugins"])
    key = tokens.load_signing_key(
        Path(config["core_key_file"]).read_bytes(), created_at=datetime.now(UTC)
    )
    ctx = core_context(directory, config["jwks"], key)
    lane = events.lane(
        events.EventLaneSettings(
            nats_url=config["nats_url"],
            reconcile_seconds=0.2,
            ack_wait_seconds=2.0,
            backoff_initial_seconds=0.05,
            max_in_flight=config.get("max_in_flight", 1),
            pin_timeout_seconds=3.0,
        ),
        resolve_url=lambda r: urls[r.plugin_id],
    )
    app = build_app(ctx, [lane])
    app.on_startup.append(_freeze_startup_heap)
    if os.environ.get("EVENTS_CORE_PROFILE"):  # the benchmark's breakdown (bench/events.py)
        _profile_on_signals(os.environ["EVENTS_CORE_PROFILE"])
    if os.environ.get("EVENTS_CORE_UVLOOP"):
        import uvloop  # noqa: PLC0415 - optional, only for the comparison

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(app, host="127.0.0.1", port=config["port"], access_log=None, print=None)


async def _freeze_startup_heap(_: web.Application) -> None:
    """As ``vivified core`` does once started: full collections then skip start-up's objects
    (one took 14.8 ms in the middle of a paced event run)."""
    gc.collect()
    gc.freeze()


def _profile_on_signals(out: str) -> None:
    """SIGUSR1 starts cProfile, SIGUSR2 stops it and writes ``out``: only the measured
    stretch is profiled, not start-up."""
    profiler = cProfile.Profile()

    def start(*_: object) -> None:
        profiler.enable()

    def stop(*_: object) -> None:
        profiler.disable()
        profiler.dump_stats(out)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)


if __name__ == "__main__":
    main()
