"""The core freezes its start-up heap: full collections then skip the long-lived objects."""

from __future__ import annotations

import gc
import weakref


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def test_start_up_objects_are_frozen_and_garbage_is_not() -> None:
    garbage = _Node()
    dead = weakref.ref(garbage)
    del garbage
    from vivified.dataplane.server import freeze_startup_heap  # noqa: PLC0415

    try:
        frozen = freeze_startup_heap()
        assert frozen == gc.get_freeze_count() > 0
        assert dead() is None, "garbage is collected first, not frozen for good"
        # The collector now tracks only what was made after the freeze.
        assert sum(len(gc.get_objects(generation)) for generation in range(3)) < frozen
    finally:
        gc.unfreeze()
