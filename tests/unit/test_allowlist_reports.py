"""The operator's read of the core's allowlist state (shell/allowlists.py) and its pure parts."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from tests.unit.egress_fixtures import egress_record

from vivified.dataplane.directory import StaticDirectory
from vivified.dataplane.proxy import allowlist_report
from vivified.policy.egress_status import (
    EgressReport,
    egress_condition,
    reports_from_document,
)
from vivified.shell.allowlists import AllowlistReports
from vivified.shell.corepoll import changed_keys
from vivified_sdk import contract


def document(**plugins: dict[str, Any]) -> dict[str, Any]:
    return {"mode": "enforce", "plugins": plugins}


def test_reports_are_keyed_by_namespace_and_id() -> None:
    doc = allowlist_report(StaticDirectory([egress_record("billing", generation=3)]))
    assert reports_from_document(doc) == {
        ("team-a", "billing"): EgressReport(3, ("api.partner.test",), "enforce")
    }


@pytest.mark.parametrize(
    "doc",
    [
        None,
        [],
        {"plugins": []},
        {"plugins": {"x": "y"}},
        {"plugins": {"x": {"generation": 1}}},  # no namespace
        {"plugins": {"x": {"namespace": "a", "generation": "many"}}},
        {"plugins": {"x": {"namespace": 7, "generation": 1}}},
    ],
)
def test_malformed_documents_report_nothing(doc: object) -> None:
    assert reports_from_document(doc) == {}


def test_changed_keys() -> None:
    a = EgressReport(1, ("a.test",))
    key, other = ("ns", "a"), ("ns", "b")
    assert changed_keys({}, {key: a}) == {key}
    assert changed_keys({key: a}, {key: a}) == set()
    assert changed_keys({key: a}, {key: EgressReport(2, ("a.test",))}) == {key}
    assert changed_keys({key: a, other: a}, {key: a}) == {other}


class FakeCore:
    def __init__(self) -> None:
        self.document: Any = document(
            billing={"namespace": "team-a", "generation": 1, "domains": ["api.partner.test"]}
        )
        self.status = 200
        self.paths: list[str] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        if self.status != 200:
            return httpx.Response(self.status)
        return httpx.Response(200, content=json.dumps(self.document).encode())


async def test_the_poll_announces_changes_and_drops_a_silent_core() -> None:
    core = FakeCore()
    announced: list[set[tuple[str, str]]] = []
    clock = [0.0]
    reports = AllowlistReports(
        "http://core.test:8080/",
        announced.append,
        interval=5,
        stale_after=30,
        client=httpx.AsyncClient(transport=httpx.MockTransport(core.handler)),
        monotonic=lambda: clock[0],
    )
    key = ("team-a", "billing")
    assert await reports.poll_once() == {key}
    assert core.paths == [contract.CORE_PROXY_ALLOWLISTS_PATH]
    assert reports.get(key) == EgressReport(1, ("api.partner.test",))
    assert await reports.poll_once() == set()  # unchanged: nobody is woken
    core.document["plugins"]["billing"]["generation"] = 2
    assert await reports.poll_once() == {key}
    core.status = 503  # the core stops answering: the last report holds for a while ...
    clock[0] = 10.0
    assert await reports.poll_once() == set()
    assert reports.get(key) is not None
    clock[0] = 31.0  # ... then nothing is claimed any more
    assert await reports.poll_once() == {key}
    assert reports.get(key) is None
    status, reason, _ = egress_condition(
        domains=("api.partner.test",), generation=2, through_core=True, report=reports.get(key)
    )
    assert (status, reason) == (False, "AllowlistNotLoaded")
    assert announced == [{key}, {key}, {key}]
    await reports.stop()


async def test_garbage_from_the_core_is_not_a_report() -> None:
    core = FakeCore()
    core.document = "not an object"
    reports = AllowlistReports(
        "http://core.test",
        lambda keys: None,
        client=httpx.AsyncClient(transport=httpx.MockTransport(core.handler)),
    )
    assert await reports.poll_once() == set()
    assert reports.get(("team-a", "billing")) is None
