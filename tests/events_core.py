"""The core's event lane as its own process, so a test can SIGKILL it (tests only).

    python tests/events_core.py CONFIG.json
CONFIG: {"nats_url", "port", "plugins": [{"manifest": {...}, "url": "http://..."}]}
Tokens are the fake ones of events_support; deliveries carry fake call tokens.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))

from events_support import FakeAuthenticator, record
from vivified.dataplane.directory import StaticDirectory
from vivified.dataplane.events import EventLaneDeps, EventLaneSettings, setup
from vivified.dataplane.events.tokens import FakeCallTokenMinter


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    urls = {p["manifest"]["id"]: p["url"] for p in config["plugins"]}
    directory = StaticDirectory(record(p["manifest"]) for p in config["plugins"])
    app = web.Application()
    setup(
        app,
        EventLaneDeps(
            directory=directory,
            authenticator=FakeAuthenticator(),
            minter=FakeCallTokenMinter(),
            settings=EventLaneSettings(
                nats_url=config["nats_url"],
                reconcile_seconds=0.2,
                ack_wait_seconds=2.0,
                backoff_initial_seconds=0.05,
                max_in_flight=config.get("max_in_flight", 1),
            ),
            resolve_url=lambda r: urls[r.plugin_id],
        ),
        serve_metrics=True,
    )
    web.run_app(app, host="127.0.0.1", port=config["port"], access_log=None, print=None)


if __name__ == "__main__":
    main()
