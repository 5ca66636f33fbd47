"""The short fuzz tier: a few hundred generated hostile requests per entry point of the core
(heartbeat, invoke, event publish, the proxy's allowlist route) and of the admission webhook;
the proxy listener's own parser is in test_chaos_fuzz_proxy.py; bench/fuzz.py runs the long
variant.

Each answer must be well formed, never a 500, never a traceback (tests/chaos/fuzz.py).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.chaos import fuzz

CASES = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


@pytest.fixture(scope="module")
def driver() -> Iterator[fuzz.Driver]:
    d = fuzz.Driver()
    yield d
    d.close()


@CASES
@given(bearer=fuzz.bearers, body=fuzz.bodies, headers=fuzz.extra_headers)
def test_heartbeat_answers_every_hostile_request_well(
    driver: fuzz.Driver, bearer: str | None, body: bytes, headers: dict[str, str]
) -> None:
    problem = driver.run(fuzz.heartbeat_case(driver.client, driver.valid, bearer, body, headers))
    assert problem is None


@CASES
@given(
    request=st.fixed_dictionaries(
        {
            "method": fuzz.methods,
            "path": fuzz.paths,
            "bearer": fuzz.bearers,
            "body": fuzz.bodies,
            "headers": fuzz.extra_headers,
        }
    )
)
def test_invoke_answers_every_hostile_request_well(
    driver: fuzz.Driver, request: dict[str, Any]
) -> None:
    problem = driver.run(fuzz.invoke_case(driver.client, driver.valid, **request))
    assert problem is None


@CASES
@given(
    request=st.fixed_dictionaries(
        {
            "bearer": fuzz.event_bearers,
            "body": fuzz.event_bodies,
            "content_type": fuzz.event_content_types,
            "headers": fuzz.extra_headers,
        }
    )
)
def test_publish_answers_every_hostile_event_well(
    driver: fuzz.Driver, request: dict[str, Any]
) -> None:
    problem = driver.run(fuzz.events_case(driver.client, driver.publisher, **request))
    assert problem is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 5000 + b"]" * 5000, "malformed_json"),  # deeper than the recursion limit
        (b'{"data":' * 3000 + b"1" + b"}" * 3000, "malformed_json"),
        (fuzz._padded(65536 + 1), "event_too_large"),  # one byte over the lane's limit
        # NaN was accepted, stored as `NaN` (not JSON) and unparseable for every subscriber.
        (
            b'{"specversion":"1.0","id":"n","type":"UserCreated","data":{"user_id":"u","score":NaN}}',
            "malformed_json",
        ),
        (
            b'{"specversion":"1.0","id":"a","id":"b","type":"UserCreated","data":{}}',
            "malformed_json",
        ),  # which id? ambiguous
    ],
)
def test_publish_refuses_what_json_parsers_choke_on(
    driver: fuzz.Driver, body: bytes, reason: str
) -> None:
    """Found by the fuzz tier: a body nested deeper than Python's recursion limit raised
    RecursionError (not a ValueError) in parse_body, and the core answered 500; and the
    in-memory store's strict parse showed that NaN reached JetStream."""

    async def post() -> tuple[int, Any]:
        reply = await driver.client.post(
            fuzz.EVENTS,
            data=body,
            headers={**driver.publisher, "Content-Type": "application/cloudevents+json"},
        )
        return reply.status, await reply.json()

    status, answer = driver.run(post())
    assert (status, answer["reason"]) == (413 if reason == "event_too_large" else 400, reason)


@settings(CASES, max_examples=50)
@given(method=fuzz.methods, bearer=fuzz.bearers, headers=fuzz.extra_headers)
def test_the_allowlist_route_answers_every_request_well(
    driver: fuzz.Driver, method: str, bearer: str | None, headers: dict[str, str]
) -> None:
    problem = driver.run(
        fuzz.allowlists_case(driver.client, driver.valid, method=method, bearer=bearer,
                             headers=headers)
    )  # fmt: skip
    assert problem is None


@CASES
@given(
    obj=fuzz.admission_objects,
    old=st.one_of(st.none(), fuzz.admission_objects),
    operation=fuzz.operations,
    namespace=st.one_of(st.none(), st.text(max_size=20)),
)
def test_the_webhook_allows_or_denies_every_hostile_object(
    driver: fuzz.Driver, obj: dict[str, Any], old: Any, operation: str, namespace: str | None
) -> None:
    problem = driver.run(fuzz.admission_case(driver.admission, obj, old, operation, namespace))
    assert problem is None


@CASES
@given(body=st.one_of(fuzz.review_bodies, fuzz.deep_json))
def test_the_webhook_server_answers_every_hostile_body_well(
    driver: fuzz.Driver, body: bytes
) -> None:
    """Through the operator's HTTPS webhook server and kopf's real admission path."""
    problem = driver.run(fuzz.webhook_case(driver.webhook, body))
    assert problem is None


@pytest.mark.parametrize(
    "body",
    [b"{}", b"[]", b"null", b'{"request": null}', b"\xff", b"[" * 5000,
     b'{"request": {"resource": {"group": "vivified.dev", "version": "v1alpha1", '
     b'"resource": "vivifiedplugins"}, "userInfo": {}, "object": 5}}'],
)  # fmt: skip
def test_the_webhook_server_answers_400_to_what_is_not_a_review(
    driver: fuzz.Driver, body: bytes
) -> None:
    """Found by the fuzz tier: kopf reads the review without checking its shape, so these
    raised (KeyError, AttributeError, UnicodeDecodeError, RecursionError, ...) and aiohttp
    answered 500 with a traceback in the operator's log."""

    async def post() -> tuple[int, Any]:
        async with driver.webhook.session.post(driver.webhook.url, data=body) as reply:
            return reply.status, await reply.json()

    status, answer = driver.run(post())
    assert (status, answer["kind"], answer["reason"]) == (400, "Status", "BadRequest")


def test_the_checks_catch_a_500_and_a_traceback() -> None:
    """The oracle itself: a handler that crashes is reported, not waved through."""

    async def crash(request: web.Request) -> web.Response:
        return web.Response(status=500, text="Traceback (most recent call last):")

    async def leak(request: web.Request) -> web.Response:
        return web.Response(status=400, text='File "x.py", line 1')

    async def run() -> list[str | None]:
        app = web.Application()
        app.router.add_get("/crash", crash)
        app.router.add_get("/leak", leak)
        async with TestClient(TestServer(app)) as c:
            return [await fuzz.check_answer(await c.get(p)) for p in ("/crash", "/leak")]

    d = fuzz.Driver()
    try:
        crashed, leaked = d.run(run())
    finally:
        d.close()
    assert str(crashed).startswith("500")
    assert "leaks" in str(leaked)


def test_the_driver_keeps_no_answer_once_checked(driver: fuzz.Driver) -> None:
    """Bounded memory is measured over the server, so the harness must not grow: aiohttp's
    TestClient kept every response until it closed (+120 MiB over 15,000 fuzz cases)."""

    def responses() -> int:
        gc.collect()
        return sum(isinstance(o, aiohttp.ClientResponse) for o in gc.get_objects())

    before = responses()
    for _ in range(300):
        problem = driver.run(fuzz.heartbeat_case(driver.client, driver.valid, "VALID", b"{}", {}))
        assert problem is None
    assert responses() - before < 5
