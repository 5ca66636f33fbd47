"""``status.events.pending`` / ``deadLettered`` (issue 10): the core's counts in each
subscriber's status, read once per period for every plugin, written only when a value changes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from tests.fake_operator import NAMESPACE, FakeOperator, plugin_body

from vivified import tokens
from vivified.shell.corepoll import OperatorToken
from vivified.shell.event_counts import EventCountReports
from vivified.status import EventCounts, PluginFacts, counts_from_document, derive_status
from vivified_sdk import contract

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("document", "expected", "why"),
    [
        (
            {"plugins": {"b": {"namespace": "ns", "pending": 2, "deadLettered": 5}}},
            {("ns", "b"): EventCounts(2, 5)},
            "keyed by namespace and id, as the operator's queue is",
        ),
        ({"plugins": {"b": {"pending": 2, "deadLettered": 5}}}, {}, "no namespace"),
        ({"plugins": {"b": {"namespace": "ns", "pending": -1, "deadLettered": 0}}}, {}, "< 0"),
        ({"plugins": {"b": {"namespace": "ns", "pending": True, "deadLettered": 0}}}, {}, "bool"),
        ({"plugins": {"b": {"namespace": "ns", "pending": "3", "deadLettered": 0}}}, {}, "text"),
        ({"plugins": {"b": {"namespace": "ns", "pending": 1}}}, {}, "a count missing"),
        ({"plugins": []}, {}, "plugins not an object"),
        ("nonsense", {}, "not an object at all"),
    ],
)
def test_counts_from_document(document: object, expected: dict[Any, Any], why: str) -> None:
    assert counts_from_document(document) == expected, why


def _facts(counts: EventCounts | None, subscribes: tuple[str, ...] = ("UserCreated",)) -> Any:
    return PluginFacts(generation=1, event_subscribes=subscribes, event_counts=counts)


@pytest.mark.parametrize(
    ("facts", "previous", "expected", "why"),
    [
        (
            _facts(EventCounts(3, 1)),
            {},
            {"publishes": [], "subscribes": ["UserCreated"], "pending": 3, "deadLettered": 1},
            "reported counts are shown",
        ),
        (
            _facts(None),
            {"publishes": [], "subscribes": ["UserCreated"]},
            {"publishes": [], "subscribes": ["UserCreated"]},
            "not reported (poll off, core silent): nothing claimed",
        ),
        (
            _facts(None),
            {"publishes": [], "subscribes": ["UserCreated"], "pending": 3, "deadLettered": 1},
            {"publishes": [], "subscribes": ["UserCreated"], "pending": None, "deadLettered": None},
            "no longer reported: removed by the merge patch (once)",
        ),
        (
            PluginFacts(generation=1, event_publishes=("UserCreated",), event_counts=None),
            {},
            {"publishes": ["UserCreated"], "subscribes": []},
            "a publisher only has nothing to count",
        ),
    ],
)
def test_the_counts_in_status(
    facts: PluginFacts, previous: dict[str, Any], expected: dict[str, Any], why: str
) -> None:
    status = derive_status(facts, {"events": previous} if previous else {}, NOW)
    assert status["events"] == expected, why


def subscriber(plugin_id: str) -> dict[str, Any]:
    return plugin_body(
        plugin_id,
        manifest={
            "events": {"subscribes": ["DocumentProcessed"]},
            "endpoints": {"health": "/health", "events": "/events"},
        },
    )


def _status_writes(operator: FakeOperator, since: int, plugin_id: str) -> int:
    return sum(
        1
        for w in operator.cluster.log[since:]
        if w[1] == "VivifiedPlugin" and w[3] == f"{plugin_id}/status"
    )


async def _counts_become(operator: FakeOperator, counts: EventCounts | None) -> int:
    """Set what the core reports, reconcile (as the poll's change announcement does), count."""
    key = (NAMESPACE, "sub")
    if counts is None:
        operator.event_counts.pop(key, None)
    else:
        operator.event_counts[key] = counts
    since = len(operator.cluster.log)
    operator.queue.add(key)
    await operator.settle()
    return _status_writes(operator, since, "sub")


async def test_one_status_write_per_change_and_none_when_unchanged() -> None:
    operator = FakeOperator()
    await operator.start()
    operator.create(subscriber("sub"))
    await operator.settle()
    assert "pending" not in operator.status("sub")["events"]

    assert await _counts_become(operator, EventCounts(4, 0)) == 1, "first report"
    assert await _counts_become(operator, EventCounts(4, 0)) == 0, "same values: no write"
    assert await _counts_become(operator, EventCounts(0, 4)) == 1, "delivery gave up on 4"
    assert operator.status("sub")["events"]["deadLettered"] == 4
    assert await _counts_become(operator, None) == 1, "no longer reported: removed"
    assert "deadLettered" not in operator.status("sub")["events"]
    assert await _counts_become(operator, None) == 0, "and left alone after"
    await operator.stop()


class FakeCore:
    """``GET /v1/events/status`` as the core serves it, recording the credentials it got."""

    def __init__(self) -> None:
        self.plugins: dict[str, Any] = {
            "sub": {"namespace": "team-a", "pending": 1, "deadLettered": 0}
        }
        self.status = 200
        self.seen: list[tuple[str, str | None]] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.url.path, request.headers.get("Authorization")))
        if self.status != 200:
            body = {"status": self.status, "reason": "operator_only", "detail": "x"}
            return httpx.Response(self.status, content=json.dumps(body).encode())
        return httpx.Response(200, content=json.dumps({"plugins": self.plugins}).encode())


async def test_the_poll_reads_every_plugin_in_one_request_with_the_operators_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    core = FakeCore()
    ring = tokens.KeyRing(active=tokens.generate_signing_key(NOW))
    credential = OperatorToken(lambda: ring, issuer="vivified-operator", clock=lambda: NOW)
    announced: list[set[tuple[str, str]]] = []
    clock = [0.0]
    reports = EventCountReports(
        "http://core.test:8080",
        announced.append,
        auth=credential.headers,
        interval=10,
        client=httpx.AsyncClient(transport=httpx.MockTransport(core.handler)),
        monotonic=lambda: clock[0],
    )
    key = ("team-a", "sub")
    assert await reports.poll_once() == {key}
    assert reports.get(key) == EventCounts(1, 0)
    assert await reports.poll_once() == set(), "unchanged: nobody is reconciled"
    core.plugins["sub"]["deadLettered"] = 2
    core.plugins["other"] = {"namespace": "team-b", "pending": 0, "deadLettered": 0}
    assert await reports.poll_once() == {key, ("team-b", "other")}
    # One request per period whatever the number of plugins, to the operator-only route.
    assert [path for path, _ in core.seen] == [contract.CORE_EVENTS_STATUS_PATH] * 3
    (bearer,) = {auth for _, auth in core.seen}
    assert bearer is not None
    token = bearer.removeprefix("Bearer ")
    tokens.verify_operator_token(
        token, tokens.jwks(ring), issuer="vivified-operator", revoked_jtis=(), now=NOW
    )
    core.status = 403  # refused (an older core, a key mix-up): the last counts stand a while
    clock[0] = 20.0
    assert await reports.poll_once() == set()
    assert "HTTP 403 operator_only" in caplog.text, "the log says why the core refused"
    clock[0] = 61.0  # ... then they are no longer claimed
    assert await reports.poll_once() == {key, ("team-b", "other")}
    assert reports.get(key) is None
    await reports.stop()


def test_the_operator_token_is_reminted_at_half_life_and_on_a_new_key() -> None:
    ring = tokens.KeyRing(active=tokens.generate_signing_key(NOW))
    now = [NOW]
    credential = OperatorToken(lambda: ring, issuer="vivified-operator", clock=lambda: now[0])
    first = credential.current()
    now[0] = NOW + timedelta(seconds=149)
    assert credential.current() is first, "reused before half its lifetime"
    now[0] = NOW + timedelta(seconds=150)
    second = credential.current()
    assert second.jti != first.jti, "re-minted at half its lifetime"
    ring = tokens.KeyRing(active=tokens.generate_signing_key(NOW))
    assert credential.current().kid == ring.active.kid, "a rotated key signs the next one"
    assert second.token not in repr(credential)
