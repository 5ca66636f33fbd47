"""The core's event loop: uvloop where it is installed, asyncio's own otherwise.

Every lane request crosses the core twice (the plugin's connection and the upstream one), so
the loop's per-I/O cost is the core's cost. uvloop (libuv) cut it measurably here: closed-loop
operator-lane throughput +19 % and p99 at 500 req/s from 20 ms to 8 ms in the same bench
(bench/gateway.py, docs/core.md). ``VIVIFIED_CORE_EVENT_LOOP``: ``auto`` (default), ``uvloop``
(refuse to start without it), ``asyncio``.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["EVENT_LOOPS", "EventLoopUnavailableError", "loop_factory", "new_event_loop", "run"]

T = TypeVar("T")
EVENT_LOOPS = ("auto", "uvloop", "asyncio")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


class EventLoopUnavailableError(RuntimeError):
    """``uvloop`` was asked for and is not installed."""


def loop_factory(choice: str = "auto") -> LoopFactory:
    """What makes the loop for CHOICE (one of :data:`EVENT_LOOPS`)."""
    if choice not in EVENT_LOOPS:
        raise ValueError(f"event loop must be one of {', '.join(EVENT_LOOPS)}, got {choice!r}")
    if choice == "asyncio":
        return asyncio.new_event_loop
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        if choice == "uvloop":
            raise EventLoopUnavailableError(
                "VIVIFIED_CORE_EVENT_LOOP=uvloop but uvloop is not installed"
            ) from None
        return asyncio.new_event_loop
    factory: LoopFactory = uvloop.new_event_loop
    return factory


def new_event_loop(choice: str = "auto") -> asyncio.AbstractEventLoop:
    return loop_factory(choice)()


def run(main: Coroutine[Any, Any, T], choice: str = "auto") -> T:
    """``asyncio.run`` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(main)
