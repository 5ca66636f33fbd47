"""URL sources: refreshed by a background thread only; ``verify()`` never waits on the network.

Servers here are real HTTP servers on 127.0.0.1 (``sdk_support.Server``); a "stalled" one
accepts the request and does not answer until the test releases it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from sdk_support import AUD, ISS, Clock, Server, Signer, fixed_clock, jti_of, revocation_document
from vivified_sdk import (
    JwksSource,
    JwksUrl,
    RevocationSource,
    RevocationUrl,
    StaticJwks,
    TokenInvalid,
    TokenVerifier,
    VerifierUnavailable,
    contract,
)


def verifier(
    jwks: JwksSource, revocations: RevocationSource | None = None, **kwargs: Any
) -> TokenVerifier:
    return TokenVerifier(
        jwks, audience=AUD, issuer=ISS, revocations=revocations, clock=fixed_clock(), **kwargs
    )


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def refused(v: TokenVerifier, token: str) -> bool:
    try:
        v.verify(token)
    except TokenInvalid:
        return True
    return False


# -- the verify path never does network I/O ------------------------------------------------------


def test_verify_sends_no_request_however_it_is_called(server: Server, signer: Signer) -> None:
    """Not started: the URL sources are never fetched, whatever tokens arrive."""
    server.serve(signer.jwks())
    v = verifier(
        JwksUrl(server.url("/jwks"), min_refresh_seconds=0),
        RevocationUrl(server.url("/revocations")),
    )
    tokens: Iterable[str] = [signer.mint(), Signer().mint(), "garbage"] * 100
    for token in tokens:
        with pytest.raises(TokenInvalid):
            v.verify(token)
    assert server.requests == 0
    with pytest.raises(VerifierUnavailable, match="revocation list unavailable"):
        v.verify(signer.mint())


def test_a_stalled_jwks_server_never_delays_verification(server: Server, signer: Signer) -> None:
    server.serve(signer.jwks())
    jwks = JwksUrl(server.url("/jwks"), min_refresh_seconds=0, timeout_seconds=30)
    v = verifier(jwks)
    v.refresh_now()  # keys loaded; from now on the server hangs
    token = signer.mint()
    server.stall.set()
    server.arrived.clear()
    with v:
        with pytest.raises(TokenInvalid, match="unknown key id"):
            v.verify(Signer().mint())  # wakes the refresher, which now hangs in its fetch
        assert server.arrived.wait(5)
        started = time.perf_counter()
        for _ in range(1000):
            assert v.verify(token).plugin_id == "billing"
        elapsed = time.perf_counter() - started
        # Structural, not a stopwatch: the one fetch in flight is still hanging (the server
        # was never released) and no verification sent a request of its own.
        assert not server.release.is_set()
        assert server.requests == 2  # refresh_now, and the background fetch that hangs
        server.release.set()
    assert elapsed >= 0  # measured in bench/sdk_verify.py


def test_a_stale_list_refuses_while_the_server_hangs(server: Server, signer: Signer) -> None:
    clock = Clock()
    server.serve(revocation_document())
    revocations = RevocationUrl(
        server.url("/revocations"),
        refresh_seconds=15,
        max_stale_seconds=300,
        timeout_seconds=30,
        monotonic=clock,
    )
    v = verifier(StaticJwks(signer.jwks()), revocations)
    v.refresh_now()
    v.verify(signer.mint())
    server.stall.set()
    server.arrived.clear()
    clock.now += 301  # the refresher is due: it fetches and hangs
    with v:
        assert server.arrived.wait(5)
        with pytest.raises(VerifierUnavailable, match="revocation list stale"):
            v.verify(signer.mint())
        server.release.set()


# -- background refresh --------------------------------------------------------------------------


def test_background_refresh_picks_up_a_revocation(server: Server, signer: Signer) -> None:
    token = signer.mint()
    server.serve(revocation_document())
    revocations = RevocationUrl(server.url("/r"), refresh_seconds=0.05, max_stale_seconds=60)
    v = verifier(StaticJwks(signer.jwks()), revocations)
    with v:
        assert v.running
        assert v.wait_ready(5)
        v.verify(token)
        server.serve(revocation_document(jti_of(token)))
        eventually(lambda: refused(v, token))
    assert not v.running


def test_an_unknown_key_is_fetched_soon_but_rate_limited(server: Server) -> None:
    old, new = Signer(), Signer()
    server.serve(old.jwks())
    jwks = JwksUrl(server.url("/jwks"), min_refresh_seconds=1.0)
    v = verifier(jwks)
    flood = [Signer().mint() for _ in range(20)] * 10
    with v:
        assert v.wait_ready(5)
        v.verify(old.mint())
        server.serve({"keys": [old.jwk, new.jwk]})
        fetched = jwks.fetches
        for token in flood:  # a flood of unknown kids costs at most a fetch per interval
            refused(v, token)
        assert jwks.fetches <= fetched + 1
        eventually(lambda: not refused(v, new.mint()))


def test_the_missing_hint_respects_the_minimum_interval() -> None:
    clock = Clock()
    woken: list[int] = []
    jwks = JwksUrl("http://127.0.0.1:9/jwks", min_refresh_seconds=30, monotonic=clock)
    jwks.wake = lambda: woken.append(1)
    assert jwks.due_in() == 0  # never fetched: due now
    jwks.refresh()  # fails (nothing listens on port 9 of loopback); counts as an attempt
    assert jwks.due_in() > 0
    jwks.missing("kid")
    assert (woken, jwks.due_in() > 0) == ([], True)
    clock.now += 30
    jwks.missing("kid")
    assert (woken, jwks.due_in()) == ([1], 0)


def test_jwks_url_failures_keep_the_last_keys(server: Server, signer: Signer) -> None:
    server.serve(signer.jwks())
    v = verifier(JwksUrl(server.url("/jwks")))
    v.refresh_now()
    server.status = 500
    v.refresh_now()
    server.status = 200
    server.serve("{not json")
    v.refresh_now()
    assert v.verify(signer.mint()).plugin_id == "billing"


@pytest.mark.parametrize("failure", ["down", "500", "garbage", "duplicate-keys", "too-large"])
def test_a_revocation_list_never_loaded_refuses(
    server: Server, signer: Signer, failure: str
) -> None:
    url = server.url("/r")
    if failure == "down":
        server.close()
    elif failure == "500":
        server.status = 500
    elif failure == "garbage":
        server.serve("<html>")
    elif failure == "duplicate-keys":
        server.serve('{"revoked": {}, "revoked": {}, "version": 1}')
    else:
        server.serve(json.dumps([f"jti-{i:08d}" for i in range(20000)]))
    v = verifier(StaticJwks(signer.jwks()), RevocationUrl(url, timeout_seconds=2))
    v.refresh_now()
    with pytest.raises(VerifierUnavailable, match="revocation list unavailable"):
        v.verify(signer.mint())


def test_failures_are_logged_once_and_never_with_a_token(
    server: Server, signer: Signer, caplog: pytest.LogCaptureFixture
) -> None:
    server.serve(revocation_document())
    clock = Clock()
    revocations = RevocationUrl(server.url("/r"), monotonic=clock)
    v = verifier(StaticJwks(signer.jwks()), revocations)
    token = signer.mint()
    with caplog.at_level("INFO", logger="vivified_sdk"):
        v.refresh_now()
        server.status = 503
        for _ in range(3):
            v.refresh_now()
            v.verify(token)  # the last good list is still young enough
        server.status = 200
        v.refresh_now()
    assert caplog.text.count("failed") == 1
    assert caplog.text.count("works again") == 1
    assert token not in caplog.text


def test_revocation_url_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="needs a URL"):
        RevocationUrl("")
    with pytest.raises(ValueError, match="max_stale_seconds"):
        RevocationUrl("http://x", refresh_seconds=60, max_stale_seconds=30)


def test_from_env_with_urls(server: Server, signer: Signer, tmp_path: Any) -> None:
    token, revoked_by_file = signer.mint(), signer.mint()
    server.serve(signer.jwks())
    (tmp_path / "revoked.json").write_text(json.dumps([jti_of(revoked_by_file)]))
    env = {
        contract.ENV_JWKS_FILE: str(tmp_path / "absent.json"),
        contract.ENV_JWKS_URL: server.url("/jwks"),
        contract.ENV_REVOCATIONS_FILE: str(tmp_path / "revoked.json"),
    }
    v = TokenVerifier.from_env(env, clock=fixed_clock())
    with v:
        assert v.wait_ready(5)
        assert v.verify(token).plugin_id == "billing"
        with pytest.raises(TokenInvalid, match="revoked"):
            v.verify(revoked_by_file)


# -- one verifier for asyncio, FastAPI and WSGI alike ---------------------------------------------


async def test_async_with_starts_and_stops_off_the_event_loop(
    server: Server, signer: Signer
) -> None:
    server.serve(revocation_document())
    v = verifier(StaticJwks(signer.jwks()), RevocationUrl(server.url("/r")))
    async with v:
        assert v.running
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            for _ in range(5):
                ticks += 1
                await asyncio.sleep(0)

        await asyncio.gather(tick(), asyncio.to_thread(v.verify, signer.mint()))
        assert v.verify(signer.mint()).plugin_id == "billing"  # plain call in a coroutine
        assert ticks == 5
    assert not v.running


def test_a_sync_wsgi_app(server: Server, signer: Signer) -> None:
    server.serve(revocation_document())
    v = verifier(StaticJwks(signer.jwks()), RevocationUrl(server.url("/r")))

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        try:
            caller = v.verify_authorization(environ.get("HTTP_AUTHORIZATION"))
        except TokenInvalid:
            start_response("401 Unauthorized", [("Content-Type", "text/plain")])
            return [b"no"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [caller.plugin_id.encode()]

    statuses: list[str] = []
    with v:
        assert v.wait_ready(5)
        for header in (f"Bearer {signer.mint()}", None, "Bearer \udcff"):
            body = app({"HTTP_AUTHORIZATION": header}, lambda s, h: statuses.append(s))
        assert body == [b"no"]
    assert statuses == ["200 OK", "401 Unauthorized", "401 Unauthorized"]
