"""The short fuzz tier: a few hundred generated hostile requests per entry point of the core
(heartbeat, invoke) and of the admission webhook; bench/fuzz.py runs the long variant.

Each answer must be well formed, never a 500, never a traceback (tests/chaos/fuzz.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

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
