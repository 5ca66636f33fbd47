"""Listing the event stream's consumers pages through JetStream's 256-per-request limit.

Against a fake JetStream context that serves pages by offset, as the server does; the real
server: tests/integration/test_events_lane.py (orphan collection)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from vivified.dataplane.events import stream
from vivified.dataplane.events.settings import EventLaneSettings


@dataclass
class Info:
    name: str | None


class PagedJetStream:
    """Serves ``consumers_info`` like the server: at most ``page`` names from ``offset``."""

    def __init__(self, names: list[str], page: int = stream.LIST_PAGE, ignore_offset: bool = False):
        self.names = names
        self.page = page
        self.ignore_offset = ignore_offset
        self.offsets: list[int | None] = []

    async def consumers_info(self, name: str, offset: int | None = None) -> list[Info]:
        self.offsets.append(offset)
        start = 0 if self.ignore_offset else offset or 0
        return [Info(n) for n in self.names[start : start + self.page]]


def owned(count: int) -> list[str]:
    return [f"vd_p{i}_UserCreated" for i in range(count)]


@pytest.mark.parametrize(
    ("total", "requests", "reason"),
    [
        (0, 1, "only a foreign consumer: one request"),
        (254, 1, "less than a page: one request"),
        (255, 2, "exactly a page (with the foreign one): an empty page ends the listing"),
        (600, 3, "past the first page: the consumers beyond 256 are listed too"),
    ],
)
def test_every_consumer_is_listed(total: int, requests: int, reason: str) -> None:
    js = PagedJetStream([*owned(total), "not-ours"])
    found = asyncio.run(stream.owned_consumers(js, EventLaneSettings()))  # type: ignore[arg-type]
    assert found == owned(total), reason
    assert len(js.offsets) == requests, reason


def test_a_server_ignoring_the_offset_cannot_loop_forever() -> None:
    js = PagedJetStream(owned(300), ignore_offset=True)
    infos: list[Any] = asyncio.run(stream.consumer_infos(js, EventLaneSettings()))  # type: ignore[arg-type]
    assert stream.MAX_CONSUMERS <= len(infos) < stream.MAX_CONSUMERS + stream.LIST_PAGE
