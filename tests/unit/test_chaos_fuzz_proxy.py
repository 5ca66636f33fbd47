"""The short fuzz tier of the proxy lane's listener: a few hundred generated hostile byte
streams (mutated heads, targets, credentials, framings, bodies) over a real loopback socket;
bench/fuzz.py --only proxy runs the long variant. Each must get a well-formed answer (never a
500, no traceback, no escaped exception, no dial but the allowed upstreams), and nothing may
be left open afterwards (tests/chaos/fuzz_proxy.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from tests.chaos import fuzz_proxy as fp

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def driver() -> Iterator[fp.ProxyDriver]:
    d = fp.ProxyDriver()
    yield d
    d.close()


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
@given(data=fp.raw_inputs)
def test_the_proxy_answers_every_hostile_byte_stream_well(
    driver: fp.ProxyDriver, data: bytes
) -> None:
    assert driver.case(data) is None


VALID = "Proxy-Authorization: Bearer %TOKEN%\r\nHost: api.partner.test:%HTTP%\r\n"


@pytest.mark.parametrize(
    ("request_bytes", "status", "reason"),
    [
        # obs-text (a byte >= 0x80) in a header value: h11 accepts it, the forwarder then
        # raised UnicodeEncodeError; now forwarded as the same bytes.
        (f"GET http://api.partner.test:%HTTP%/ HTTP/1.1\r\n{VALID}X-Name: caf".encode()
         + b"\xe9\r\n\r\n", 200, None),
        # A chunked body that is not chunked: was an escaped RemoteProtocolError, no answer.
        (f"POST http://api.partner.test:%HTTP%/ HTTP/1.1\r\n{VALID}"
         "Transfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n".encode(), 400,
         "request_malformed"),
        # A body shorter than its Content-Length, then the client's half-close: the same.
        (f"PUT http://api.partner.test:%HTTP%/ HTTP/1.1\r\n{VALID}Content-Length: 5\r\n\r\n"
         "ab".encode(), 400, "request_malformed"),
    ],
)  # fmt: skip
def test_the_forwarder_answers_what_it_used_to_drop(
    driver: fp.ProxyDriver, request_bytes: bytes, status: int, reason: str | None
) -> None:
    """Found by the fuzz tier (dataplane/proxy/forward.py)."""
    answer = driver.run(fp.exchange(driver.ground, request_bytes))
    assert fp.judge(request_bytes, answer) is None
    assert answer.startswith(f"HTTP/1.1 {status} ".encode())
    if reason is not None:
        assert f"x-vivified-reason: {reason}".encode() in answer.lower()
    else:
        assert driver.ground.http.requests[-1].endswith(
            b"x-name: caf\xe9\r\nconnection: close\r\n\r\n"
        )


def test_the_oracle_catches_a_500_a_leak_and_a_dropped_request() -> None:
    """judge() itself: what it must not wave through."""
    head = b"GET http://a/ HTTP/1.1\r\n\r\n"
    assert fp.judge(head, b"HTTP/1.1 500 Internal\r\n\r\n") is not None
    leak = b"HTTP/1.1 400 Bad\r\nX-Vivified-Reason: x\r\n\r\nTraceback (most recent call last)"
    assert "leaks" in str(fp.judge(head, leak))
    assert fp.judge(head, b"") == "no answer to a complete request head"
    assert fp.judge(b"GET http://a/ HT", b"") is None  # no complete head: nothing to answer
    assert fp.judge(head, b"garbage") is not None


def test_nothing_is_left_open_after_the_cases(driver: fp.ProxyDriver) -> None:
    assert driver.run(fp.settle(driver.ground)) == []
