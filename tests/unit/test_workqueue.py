"""The work queue: bursts collapse, one worker per key, failures back off, delays are honoured."""

import asyncio
from typing import Any

import pytest

from vivified.workqueue import RetryLater, WorkQueue, failure_backoff


async def settle(queue: WorkQueue[str], seconds: float = 0.05) -> None:
    await asyncio.sleep(seconds)
    await asyncio.wait_for(queue.join(), 2)


async def test_a_burst_of_adds_is_handled_once() -> None:
    seen: list[str] = []

    async def handle(key: str) -> None:
        seen.append(key)

    queue: WorkQueue[str] = WorkQueue(handle, workers=2)
    for _ in range(50):
        queue.add("a")
    queue.start()
    await settle(queue)
    await queue.stop()
    assert seen == ["a"]


async def test_a_key_is_never_handled_concurrently_and_adds_during_work_rerun_once() -> None:
    running: set[str] = set()
    overlaps = 0
    calls = 0
    release = asyncio.Event()

    async def handle(key: str) -> None:
        nonlocal overlaps, calls
        calls += 1
        if key in running:
            overlaps += 1
        running.add(key)
        await release.wait()
        running.discard(key)

    queue: WorkQueue[str] = WorkQueue(handle, workers=4)
    queue.start()
    queue.add("a")
    await asyncio.sleep(0.01)
    for _ in range(10):
        queue.add("a")
    release.set()
    await settle(queue)
    await queue.stop()
    assert overlaps == 0
    assert calls == 2


class _DelaySpy(WorkQueue[str]):
    """Records the delays the queue asks for (what backoff means), not wall-clock gaps,
    which a busy machine stretches at will."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.delays: list[float] = []

    def add_after(self, key: str, delay: float) -> None:
        self.delays.append(delay)
        super().add_after(key, delay)


async def test_failures_are_retried_with_backoff() -> None:
    attempts = 0

    async def handle(key: str) -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise RuntimeError("transient")

    queue = _DelaySpy(handle, workers=1, base_backoff=0.02)
    queue.start()
    queue.add("a")
    for _ in range(500):
        if attempts >= 3:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # a fourth attempt would be a bug: give it the chance
    await queue.stop()
    assert attempts == 3
    assert queue.delays == [0.02, 0.04]


@pytest.mark.parametrize(
    ("reason", "failures", "expected"),
    [
        ("the first retry waits the base", 1, 0.5),
        ("each further failure doubles it", 3, 2.0),
        ("never above the cap", 20, 60.0),
    ],
)
def test_failure_backoff(reason: str, failures: int, expected: float) -> None:
    assert failure_backoff(failures, 0.5, 60.0) == expected, reason


async def test_requeue_after_is_honoured() -> None:
    calls = 0

    async def handle(key: str) -> float | None:
        nonlocal calls
        calls += 1
        return 0.05 if calls == 1 else None

    queue: WorkQueue[str] = WorkQueue(handle, workers=1)
    queue.start()
    queue.add("a")
    await asyncio.sleep(0.02)
    assert calls == 1
    await asyncio.sleep(0.1)
    await queue.stop()
    assert calls == 2


async def test_retry_later_comes_back_without_counting_as_failure() -> None:
    calls = 0

    async def handle(key: str) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RetryLater(0.03, "waiting")

    queue: WorkQueue[str] = WorkQueue(handle, workers=1)
    queue.start()
    queue.add("a")
    await asyncio.sleep(0.1)
    await queue.stop()
    assert calls == 2


async def test_an_immediate_add_cancels_a_pending_delay() -> None:
    calls = 0

    async def handle(key: str) -> None:
        nonlocal calls
        calls += 1

    queue: WorkQueue[str] = WorkQueue(handle, workers=1)
    queue.start()
    queue.add_after("a", 10)
    queue.add("a")
    await settle(queue)
    await queue.stop()
    assert calls == 1


async def test_the_earlier_of_two_delays_wins() -> None:
    calls = 0

    async def handle(key: str) -> None:
        nonlocal calls
        calls += 1

    queue: WorkQueue[str] = WorkQueue(handle, workers=1)
    queue.start()
    queue.add_after("a", 10)
    queue.add_after("a", 0.02)
    queue.add_after("a", 5)
    await asyncio.sleep(0.1)
    await queue.stop()
    assert calls == 1


@pytest.mark.parametrize("workers", [1, 3])
async def test_many_keys_are_all_handled(workers: int) -> None:
    seen: set[int] = set()

    async def handle(key: int) -> None:
        await asyncio.sleep(0)
        seen.add(key)

    queue: WorkQueue[int] = WorkQueue(handle, workers=workers)
    queue.start()
    for i in range(100):
        queue.add(i)
    await asyncio.sleep(0.01)
    await asyncio.wait_for(queue.join(), 2)
    await queue.stop()
    assert seen == set(range(100))
