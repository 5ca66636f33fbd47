"""The proxy lane over real loopback sockets: every "Bad input" of issue 9, and the happy paths.

Names resolve through the proxy's TEST-ONLY static map; the proxy's dialer is wrapped so every
dial is recorded (and any non-loopback dial fails the test). A refused request must leave the
dial log empty and another plugin's open tunnel working.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from tests.proxy_ground import (
    DialLog,
    Keys,
    LoopbackCA,
    Upstream,
    basic,
    raw_request,
    start_proxy,
)
from tests.unit.egress_fixtures import egress_manifest, egress_record

from vivified import tokens
from vivified.audit.hook import MemoryAuditor
from vivified.dataplane.directory import StaticDirectory
from vivified.dataplane.proxy import ProxyMetrics, ProxyServer, ProxySettings, allowlist_report
from vivified_sdk import TokenFile, async_egress_client

pytestmark = pytest.mark.timeout(60)

PARTNER = "api.partner.test"
OTHER = "other.partner.test"
PUBLIC_TEST_ADDRESS = "93.184.216.34"  # classified as public; never dialled (see DialLog)


@dataclass
class Ground:
    proxy: ProxyServer
    dials: DialLog
    audit: MemoryAuditor
    metrics: ProxyMetrics
    directory: StaticDirectory
    keys: Keys
    echo: Upstream
    https: Upstream
    http: Upstream
    ca: LoopbackCA
    token: str
    """billing's token (external_service, allowed_domains [api.partner.test])."""

    @property
    def port(self) -> int:
        return self.proxy.port

    def bearer(self, token: str | None = None) -> str:
        return f"Proxy-Authorization: Bearer {token or self.token}\r\n"

    async def connect(
        self, target: str, auth: str | None = None
    ) -> tuple[int, dict[str, str], bytes, asyncio.StreamReader, asyncio.StreamWriter]:
        auth = self.bearer() if auth is None else auth
        request = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{auth}\r\n".encode()
        return await raw_request(self.port, request)


@pytest.fixture(params=["kernel_splice", "transport_splice"])
async def ground(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Ground]:
    """Every tunnel test runs with both CONNECT relays (splice(2) and asyncio transports)."""
    ca = LoopbackCA.create([PARTNER, OTHER])
    echo, https, http = (
        Upstream("echo"),
        Upstream("http", tls=ca.server_context(tmp_path)),
        Upstream("http"),
    )
    for upstream in (echo, https, http):
        await upstream.start()
    keys = Keys.create(tmp_path)
    directory = StaticDirectory(
        [
            egress_record("billing"),
            egress_record("notes", traits=("audit_required",), domains=()),
            egress_record("other-plugin"),
        ]
    )
    hosts = {
        PARTNER: ("127.0.0.1",),
        OTHER: ("127.0.0.1",),
        "private.partner.test": ("10.0.0.7",),
        "split.partner.test": (PUBLIC_TEST_ADDRESS, "10.0.0.7"),
        "metadata.partner.test": ("169.254.169.254",),
        "mapped.partner.test": ("::ffff:169.254.169.254",),
    }
    proxy, dials, audit, metrics = await start_proxy(
        directory,
        keys,
        hosts=hosts,
        ports={echo.port, https.port, http.port},
        kernel_splice=request.param == "kernel_splice",
    )
    token = keys.mint(egress_manifest("billing")).token
    yield Ground(proxy, dials, audit, metrics, directory, keys, echo, https, http, ca, token)
    await proxy.close()
    for upstream in (echo, https, http):
        await upstream.close()


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def closes(ground: Ground) -> list[str]:
    return [e.reason for e in ground.audit.entries if e.action == "egress.close"]


async def echo_roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(b"ping")
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(4), 5)


def reason_of(headers: dict[str, str], body: bytes) -> str:
    problem = json.loads(body)
    assert problem["reason"] == headers["x-vivified-reason"]
    assert problem["detail"]
    return str(problem["reason"])


# ------------------------------------------------------------------------ acceptance


async def test_a_plugin_fetches_a_test_https_server_through_the_proxy(ground: Ground) -> None:
    proxy = httpx.Proxy(
        f"http://127.0.0.1:{ground.port}",
        headers={"Proxy-Authorization": f"Bearer {ground.token}"},
    )
    async with httpx.AsyncClient(
        proxy=proxy, verify=ground.ca.client_context(), trust_env=False
    ) as client:
        response = await client.get(f"https://{PARTNER}:{ground.https.port}/hello")
    assert response.status_code == 200
    assert response.text == "hello from upstream"
    assert ground.dials.dials == [("127.0.0.1", ground.https.port)]
    await until(lambda: len(closes(ground)) == 1)
    actions = [(e.action, e.outcome, e.agent) for e in ground.audit.entries]
    assert actions == [
        ("egress.decision", "allowed", "billing"),
        ("egress.close", "allowed", "billing"),
    ]
    decision, close = ground.audit.entries
    assert decision.entity == {"host": PARTNER, "port": str(ground.https.port)}
    assert decision.details["addresses"] == ["127.0.0.1"]
    assert "dns_ms" in decision.details
    assert int(str(close.details["bytes_in"])) > 0
    assert int(str(close.details["bytes_out"])) > 0
    assert "duration_ms" in close.details
    assert ground.token not in repr(ground.audit.entries)


async def test_basic_credentials_work_with_the_plugin_id_as_user(ground: Ground) -> None:
    auth = f"Proxy-Authorization: {basic('billing', ground.token)}\r\n"
    status, _, _, reader, writer = await ground.connect(f"{PARTNER}:{ground.echo.port}", auth)
    assert status == 200
    assert await echo_roundtrip(reader, writer) == b"ping"
    writer.close()


async def test_no_credential_is_challenged_with_407(ground: Ground) -> None:
    status, headers, body, _, writer = await ground.connect(f"{PARTNER}:{ground.echo.port}", "")
    writer.close()
    assert status == 407
    assert headers["proxy-authenticate"] == 'Basic realm="vivified"'
    assert reason_of(headers, body) == "credentials_missing"
    assert ground.dials.dials == []


async def test_another_domain_is_refused(ground: Ground) -> None:
    status, headers, body, _, writer = await ground.connect(f"{OTHER}:{ground.echo.port}")
    writer.close()
    assert status == 403
    assert reason_of(headers, body) == "domain_not_allowed"
    assert ground.dials.dials == []
    (entry,) = ground.audit.entries
    assert (entry.outcome, entry.reason, entry.agent) == (
        "refused",
        "domain_not_allowed",
        "billing",
    )


async def test_a_plugin_without_the_trait_is_refused(ground: Ground) -> None:
    token = ground.keys.mint(egress_manifest("notes", traits=("audit_required",), domains=()))
    status, headers, body, _, writer = await ground.connect(
        f"{PARTNER}:{ground.echo.port}", ground.bearer(token.token)
    )
    writer.close()
    assert status == 403
    assert reason_of(headers, body) == "trait_missing"
    assert ground.dials.dials == []


# ------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("127.0.0.1:{port}", "ip_literal"),
        ("[::1]:{port}", "ip_literal"),
        ("2130706433:{port}", "ip_literal"),
        ("169.254.169.254:{port}", "ip_literal"),
        ("localhost:{port}", "domain_not_allowed"),
        ("metadata.google.internal:{port}", "domain_not_allowed"),
        ("api.partner.test:22", "port_not_allowed"),
    ],
)
async def test_bad_targets_are_refused_and_nothing_is_dialled(
    ground: Ground, target: str, reason: str
) -> None:
    status, headers, body, _, writer = await ground.connect(target.format(port=ground.echo.port))
    writer.close()
    assert (status, reason_of(headers, body)) == (403, reason)
    assert ground.dials.dials == []


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("private.partner.test", "address_private"),
        ("split.partner.test", "address_private"),
        ("metadata.partner.test", "address_link_local"),
        ("mapped.partner.test", "address_link_local"),
    ],
)
async def test_names_resolving_to_non_public_addresses_are_refused(
    ground: Ground, name: str, reason: str
) -> None:
    ground.directory.put(egress_record("billing", domains=(PARTNER, name), generation=2))
    status, headers, body, _, writer = await ground.connect(f"{name}:{ground.echo.port}")
    writer.close()
    assert (status, reason_of(headers, body)) == (403, reason)
    assert ground.dials.dials == []
    (entry,) = ground.audit.entries
    assert entry.reason == reason
    assert entry.details["addresses"]  # the decision record names what the name resolved to


async def test_absolute_uri_with_a_different_host_header_is_refused(ground: Ground) -> None:
    request = (
        f"GET http://{PARTNER}:{ground.http.port}/x HTTP/1.1\r\nHost: {OTHER}\r\n"
        f"{ground.bearer()}\r\n"
    ).encode()
    status, headers, body, _, writer = await raw_request(ground.port, request)
    writer.close()
    assert (status, reason_of(headers, body)) == (400, "host_mismatch")
    assert ground.dials.dials == []


async def test_content_length_with_transfer_encoding_is_refused(ground: Ground) -> None:
    request = (
        f"POST http://{PARTNER}:{ground.http.port}/x HTTP/1.1\r\nHost: {PARTNER}:"
        f"{ground.http.port}\r\n{ground.bearer()}Content-Length: 4\r\n"
        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n"
    ).encode()
    status, headers, body, _, writer = await raw_request(ground.port, request)
    writer.close()
    assert (status, reason_of(headers, body)) == (400, "request_smuggling")
    assert ground.dials.dials == []
    assert ground.http.requests == []


@pytest.mark.parametrize(
    "extra",
    [
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: gzip, chunked\r\n",
        "Content-Length: 4\r\nContent-Length: 5\r\n",
    ],
)
async def test_other_framing_tricks_are_refused(ground: Ground, extra: str) -> None:
    request = (
        f"POST http://{PARTNER}:{ground.http.port}/x HTTP/1.1\r\nHost: {PARTNER}:"
        f"{ground.http.port}\r\n{ground.bearer()}{extra}\r\n"
    ).encode()
    status, headers, body, _, writer = await raw_request(ground.port, request)
    writer.close()
    assert status in (400, 501)
    assert reason_of(headers, body) == "request_malformed"
    assert ground.dials.dials == []


@pytest.mark.parametrize(
    "flood",
    [
        "X-Big: " + "a" * 20000 + "\r\n",
        "".join(f"X-H{i}: v\r\n" for i in range(150)),
    ],
)
async def test_header_floods_are_refused(ground: Ground, flood: str) -> None:
    target = f"{PARTNER}:{ground.echo.port}"
    request = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{flood}\r\n".encode()
    status, headers, body, _, writer = await raw_request(ground.port, request)
    writer.close()
    assert (status, reason_of(headers, body)) == (431, "headers_too_large")
    assert ground.dials.dials == []


async def test_a_half_sent_head_times_out(ground: Ground) -> None:
    request = f"CONNECT {PARTNER}:{ground.echo.port} HTTP/1.1\r\nHost: x\r\n".encode()
    status, headers, body, _, writer = await raw_request(ground.port, request)
    writer.close()
    assert (status, reason_of(headers, body)) == (408, "head_timeout")
    assert ground.dials.dials == []


async def test_a_client_that_leaves_mid_head_gets_400_and_nothing_is_dialled(
    ground: Ground,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", ground.port)
    writer.write(b"CONNECT api.partner.test:1 HTTP/1.1\r\n")
    writer.write_eof()
    answer = await asyncio.wait_for(reader.read(), 5)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"X-Vivified-Reason: request_malformed" in answer
    writer.close()
    assert ground.dials.dials == []


async def test_half_close_inside_a_tunnel_still_delivers_the_answer(ground: Ground) -> None:
    status, _, _, reader, writer = await ground.connect(f"{PARTNER}:{ground.echo.port}")
    assert status == 200
    writer.write(b"last words")
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(), 5) == b"last words"
    writer.close()


async def test_closed_tunnels_leave_no_file_descriptor_behind(ground: Ground) -> None:
    async def roundtrip() -> None:
        status, _, _, reader, writer = await ground.connect(f"{PARTNER}:{ground.echo.port}")
        assert status == 200
        writer.write(b"x" * 100_000)
        writer.write_eof()
        assert len(await asyncio.wait_for(reader.read(), 5)) == 100_000
        writer.close()
        await writer.wait_closed()

    await roundtrip()  # warm: whatever is opened once (resolver, caches) stays
    await until(lambda: not ground.proxy.tunnels)
    before = len(os.listdir("/proc/self/fd"))
    await asyncio.gather(*(roundtrip() for _ in range(20)))
    await until(lambda: not ground.proxy.tunnels)
    await until(lambda: len(os.listdir("/proc/self/fd")) <= before)
    assert [e.details["bytes_in"] for e in ground.audit.entries if e.action == "egress.close"][
        -20:
    ] == [100_000] * 20


def _expired(ground: Ground) -> str:
    past = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    return ground.keys.mint(egress_manifest("billing"), now=past, ttl_seconds=60).token


def _foreign(ground: Ground) -> str:
    other = tokens.KeyRing(active=tokens.generate_signing_key(datetime.now(UTC)))
    return ground.keys.mint(egress_manifest("billing"), ring=other).token


async def test_expired_revoked_and_foreign_tokens_are_refused(ground: Ground) -> None:
    revoked = ground.keys.mint(egress_manifest("billing"))
    ground.keys.revoke(revoked)
    cases = (
        (_expired(ground), "invalid_token"),
        (revoked.token, "token_revoked"),
        (_foreign(ground), "invalid_token"),
        ("not-a-jwt", "invalid_token"),
    )
    for token, reason in cases:  # the core's own reasons, as on every lane
        status, headers, body, _, writer = await ground.connect(
            f"{PARTNER}:{ground.echo.port}", ground.bearer(token)
        )
        writer.close()
        assert (status, reason_of(headers, body)) == (407, reason)
    mismatch = f"Proxy-Authorization: {basic('other-plugin', ground.token)}\r\n"
    status, headers, body, _, writer = await ground.connect(f"{PARTNER}:1", mismatch)
    writer.close()
    assert (status, reason_of(headers, body)) == (407, "credentials_mismatch")
    assert ground.dials.dials == []
    assert all(e.outcome == "refused" for e in ground.audit.entries)
    assert all(ground.token not in repr(e) for e in ground.audit.entries)


async def test_other_plugins_tunnels_survive_every_bad_input(ground: Ground) -> None:
    other_token = ground.keys.mint(egress_manifest("other-plugin")).token
    status, _, _, reader, writer = await ground.connect(
        f"{PARTNER}:{ground.echo.port}", ground.bearer(other_token)
    )
    assert status == 200
    bad = [
        f"CONNECT 127.0.0.1:{ground.echo.port} HTTP/1.1\r\nHost: h\r\n{ground.bearer()}\r\n",
        f"CONNECT {PARTNER}:22 HTTP/1.1\r\nHost: h\r\n{ground.bearer()}\r\n",
        f"CONNECT {PARTNER}:1 HTTP/1.1\r\nHost: h\r\n" + "X: " + "a" * 20000 + "\r\n\r\n",
        f"CONNECT {PARTNER}:1 HTTP/1.1\r\nHost: h\r\nProxy-Authorization: Bearer no\r\n\r\n",
        f"POST http://{PARTNER}/ HTTP/1.1\r\nHost: {PARTNER}\r\nContent-Length: 1\r\n"
        "Transfer-Encoding: chunked\r\n\r\n",
    ]
    for request in bad:
        status, _, _, _, bad_writer = await raw_request(ground.port, request.encode())
        bad_writer.close()
        assert status >= 400
    # a slow client holding a half-sent head does not block anything either
    _, slow = await asyncio.open_connection("127.0.0.1", ground.port)
    slow.write(b"CONNECT api.partner.test:1 HTTP/1.1\r\n")
    assert await echo_roundtrip(reader, writer) == b"ping"
    writer.close()
    slow.close()
    assert ground.dials.dials == [("127.0.0.1", ground.echo.port)]


# ------------------------------------------------------------------------ live policy


async def test_editing_the_allowed_domains_takes_effect_live(ground: Ground) -> None:
    status, _, _, reader, writer = await ground.connect(f"{PARTNER}:{ground.echo.port}")
    assert status == 200
    ground.directory.put(egress_record("billing", domains=(OTHER,), generation=2))
    status, _, _, _, w2 = await ground.connect(f"{OTHER}:{ground.echo.port}")
    w2.close()
    assert status == 200
    # the tunnel to the removed domain is closed by the policy loop
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    status, headers, body, _, w3 = await ground.connect(f"{PARTNER}:{ground.echo.port}")
    w3.close()
    assert (status, reason_of(headers, body)) == (403, "domain_not_allowed")
    await until(lambda: "policy_domain_not_allowed" in closes(ground))


async def test_disabling_the_plugin_closes_its_open_tunnel(ground: Ground) -> None:
    status, _, _, reader, writer = await ground.connect(f"{PARTNER}:{ground.echo.port}")
    assert status == 200
    assert await echo_roundtrip(reader, writer) == b"ping"
    ground.directory.put(egress_record("billing", enabled=False, phase="Disabled"))
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    await until(lambda: closes(ground) == ["policy_plugin_disabled"])
    status, headers, body, _, w2 = await ground.connect(f"{PARTNER}:{ground.echo.port}")
    w2.close()
    assert (status, reason_of(headers, body)) == (403, "plugin_disabled")


async def test_a_revoked_token_opens_no_new_tunnel(ground: Ground) -> None:
    token = ground.keys.mint(egress_manifest("billing"))
    status, _, _, _, writer = await ground.connect(
        f"{PARTNER}:{ground.echo.port}", ground.bearer(token.token)
    )
    writer.close()
    assert status == 200
    ground.keys.revoke(token)
    status, headers, body, _, writer = await ground.connect(
        f"{PARTNER}:{ground.echo.port}", ground.bearer(token.token)
    )
    writer.close()
    assert (status, reason_of(headers, body)) == (407, "token_revoked")


# ------------------------------------------------------------------------ plain HTTP


async def test_plain_http_is_reframed_and_loses_the_proxy_credentials(ground: Ground) -> None:
    request = (
        f"POST http://{PARTNER}:{ground.http.port}/api?q=1 HTTP/1.1\r\n"
        f"Host: {PARTNER}:{ground.http.port}\r\n{ground.bearer()}"
        "Connection: keep-alive, X-Secret\r\nX-Secret: drop-me\r\nContent-Length: 4\r\n\r\nbody"
    ).encode()
    status, _, body, reader, writer = await raw_request(ground.port, request)
    assert status == 200
    assert body == b"hello from upstream: body"
    assert await asyncio.wait_for(reader.read(), 5) == b""  # one request per connection
    writer.close()
    (seen,) = ground.http.requests
    assert seen.startswith(b"POST /api?q=1 HTTP/1.1\r\n")
    lowered = seen.lower()
    assert b"proxy-authorization" not in lowered
    assert b"x-secret" not in lowered
    assert b"connection: close" in lowered


async def test_https_absolute_uri_is_refused_with_a_hint(ground: Ground) -> None:
    request = f"GET https://{PARTNER}/ HTTP/1.1\r\nHost: {PARTNER}\r\n{ground.bearer()}\r\n"
    status, headers, body, _, writer = await raw_request(ground.port, request.encode())
    writer.close()
    assert (status, reason_of(headers, body)) == (400, "scheme_not_supported")


# ------------------------------------------------------------------------ limits and modes


async def test_per_plugin_tunnel_limit(tmp_path: Path) -> None:
    echo = Upstream("echo")
    await echo.start()
    keys = Keys.create(tmp_path)
    directory = StaticDirectory([egress_record("billing"), egress_record("other-plugin")])
    proxy, _, _, metrics = await start_proxy(
        directory,
        keys,
        hosts={PARTNER: ("127.0.0.1",)},
        ports={echo.port},
        max_tunnels_per_plugin=2,
    )
    try:
        token = keys.mint(egress_manifest("billing")).token
        other = keys.mint(egress_manifest("other-plugin")).token
        request = (
            f"CONNECT {PARTNER}:{echo.port} HTTP/1.1\r\nHost: {PARTNER}:{echo.port}\r\n"
            "Proxy-Authorization: Bearer "
        )
        held = []
        for _ in range(2):
            status, _, _, _, writer = await raw_request(
                proxy.port, f"{request}{token}\r\n\r\n".encode()
            )
            assert status == 200
            held.append(writer)
        status, headers, body, _, writer = await raw_request(
            proxy.port, f"{request}{token}\r\n\r\n".encode()
        )
        writer.close()
        assert (status, reason_of(headers, body)) == (429, "tunnel_limit")
        status, _, _, _, writer = await raw_request(
            proxy.port, f"{request}{other}\r\n\r\n".encode()
        )
        writer.close()
        assert status == 200  # another plugin's share is its own
        for w in held:
            w.close()
        assert metrics.decisions("billing", "refused", "tunnel_limit") == 1.0
        assert "vivified_proxy_decisions_total" in metrics.render()
    finally:
        await proxy.close()
        await echo.close()


async def test_rate_limit(tmp_path: Path) -> None:
    keys = Keys.create(tmp_path)
    directory = StaticDirectory([egress_record("billing")])
    proxy, _, _, _ = await start_proxy(
        directory, keys, hosts={}, ports={443}, rate_per_second=0.001, rate_burst=2
    )
    try:
        token = keys.mint(egress_manifest("billing")).token
        statuses = []
        for _ in range(3):
            request = (
                f"CONNECT {OTHER}:443 HTTP/1.1\r\nHost: {OTHER}:443\r\n"
                f"Proxy-Authorization: Bearer {token}\r\n\r\n"
            )
            status, headers, _, _, writer = await raw_request(proxy.port, request.encode())
            writer.close()
            statuses.append((status, headers["x-vivified-reason"]))
        assert statuses == [
            (403, "domain_not_allowed"),
            (403, "domain_not_allowed"),
            (429, "rate_limited"),
        ]
    finally:
        await proxy.close()


async def test_report_mode_allows_and_records_would_deny(tmp_path: Path) -> None:
    echo = Upstream("echo")
    await echo.start()
    keys = Keys.create(tmp_path)
    directory = StaticDirectory([egress_record("billing")])
    proxy, dials, audit, _ = await start_proxy(
        directory,
        keys,
        hosts={OTHER: ("127.0.0.1",), "private.partner.test": ("10.0.0.1",)},
        ports={echo.port},
        mode="report",
    )
    try:
        token = keys.mint(egress_manifest("billing")).token
        request = (
            f"CONNECT {OTHER}:{echo.port} HTTP/1.1\r\nHost: {OTHER}\r\n"
            f"Proxy-Authorization: Bearer {token}"
        )
        status, headers, _, reader, writer = await raw_request(
            proxy.port, f"{request}\r\n\r\n".encode()
        )
        assert status == 200
        assert headers["x-vivified-reason"] == "report_only; would_deny=domain_not_allowed"
        assert await echo_roundtrip(reader, writer) == b"ping"
        writer.close()
        decision = audit.entries[0]
        assert (decision.outcome, decision.reason) == ("allowed", "domain_not_allowed")
        assert decision.details["would_deny"] == "domain_not_allowed"
        # addresses are enforced in report mode too
        request = f"CONNECT private.partner.test:{echo.port} HTTP/1.1\r\nHost: x\r\n"
        status, headers, _, _, writer = await raw_request(
            proxy.port, f"{request}Proxy-Authorization: Bearer {token}\r\n\r\n".encode()
        )
        writer.close()
        assert (status, headers["x-vivified-reason"]) == (403, "address_private")
        assert dials.dials == [("127.0.0.1", echo.port)]
        assert allowlist_report(directory, "report")["mode"] == "report"
    finally:
        await proxy.close()
        await echo.close()


async def test_an_unreachable_upstream_answers_502_and_is_closed_in_audit(
    tmp_path: Path,
) -> None:
    keys = Keys.create(tmp_path)
    directory = StaticDirectory([egress_record("billing")])
    free = Upstream("echo")
    port = await free.start()
    await free.close()  # nothing listens there now
    proxy, _, audit, _ = await start_proxy(
        directory, keys, hosts={PARTNER: ("127.0.0.1",)}, ports={port}
    )
    try:
        token = keys.mint(egress_manifest("billing")).token
        request = (
            f"CONNECT {PARTNER}:{port} HTTP/1.1\r\nHost: {PARTNER}\r\n"
            f"Proxy-Authorization: Bearer {token}"
        )
        status, headers, _, _, writer = await raw_request(proxy.port, f"{request}\r\n\r\n".encode())
        writer.close()
        assert (status, headers["x-vivified-reason"]) == (502, "upstream_unreachable")
        await until(lambda: len(audit.entries) == 2)
        assert [(e.action, e.reason) for e in audit.entries] == [
            ("egress.decision", ""),
            ("egress.close", "upstream_unreachable"),
        ]
    finally:
        await proxy.close()


# ------------------------------------------------------------------------ the SDK's client


async def test_the_sdk_egress_client_sends_the_current_token(
    ground: Ground, tmp_path: Path
) -> None:
    token_path = tmp_path / "token"
    first = ground.keys.mint(egress_manifest("billing"))
    token_path.write_text(first.token)
    url = f"https://{PARTNER}:{ground.https.port}/"
    async with async_egress_client(
        proxy_url=f"http://127.0.0.1:{ground.port}",
        token_file=TokenFile(token_path),
        verify=ground.ca.client_context(),
    ) as http:
        assert (await http.get(url)).text == "hello from upstream"
        # rotation: the old token is revoked, the file holds a new one
        ground.keys.revoke(first)
        second = ground.keys.mint(egress_manifest("billing"), jti="second-jti")
        replacement = tmp_path / "token.new"
        replacement.write_text(second.token)
        replacement.replace(token_path)
        assert (await http.get(url)).text == "hello from upstream"
    decisions = [e for e in ground.audit.entries if e.action == "egress.decision"]
    assert [e.outcome for e in decisions] == ["allowed", "allowed"]


async def test_a_token_of_a_plugin_the_core_does_not_know_is_refused(ground: Ground) -> None:
    ghost = ground.keys.mint(egress_manifest("ghost")).token
    status, headers, body, _, writer = await ground.connect(
        f"{PARTNER}:{ground.echo.port}", ground.bearer(ghost)
    )
    writer.close()
    assert (status, reason_of(headers, body)) == (403, "plugin_unknown")
    assert ground.dials.dials == []


async def test_idle_tunnels_are_closed(tmp_path: Path) -> None:
    echo = Upstream("echo")
    await echo.start()
    keys = Keys.create(tmp_path)
    directory = StaticDirectory([egress_record("billing")])
    proxy, _, audit, _ = await start_proxy(
        directory, keys, hosts={PARTNER: ("127.0.0.1",)}, ports={echo.port}, idle_timeout=0.2
    )
    try:
        token = keys.mint(egress_manifest("billing")).token
        target = f"{PARTNER}:{echo.port}"
        request = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: Bearer "
        status, _, _, reader, writer = await raw_request(
            proxy.port, f"{request}{token}\r\n\r\n".encode()
        )
        assert status == 200
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        await until(lambda: [e.reason for e in audit.entries][-1:] == ["idle_timeout"])
    finally:
        await proxy.close()
        await echo.close()


class FailingAuditor:
    async def record(self, entry: object) -> None:
        from vivified.audit.hook import AuditUnavailable  # noqa: PLC0415

        raise AuditUnavailable("sink down")


async def test_audit_required_plugins_fail_closed_when_audit_is_down(tmp_path: Path) -> None:
    echo = Upstream("echo")
    await echo.start()
    keys = Keys.create(tmp_path)
    manifest = egress_manifest("billing", traits=("external_service", "audit_required"))
    record = egress_record("billing")
    directory = StaticDirectory([type(record)(**{**record.__dict__, "manifest": manifest})])
    proxy = ProxyServer(
        ProxySettings(
            host="127.0.0.1",
            port=0,
            allowed_ports=frozenset({echo.port}),
            test_static_hosts={PARTNER: ("127.0.0.1",)},
            test_allow_networks=("127.0.0.0/8",),
        ),
        directory,
        keys.verifier(),
        FailingAuditor(),
        metrics=ProxyMetrics(),
    )
    dials = DialLog()
    proxy.dial = dials
    await proxy.start()
    try:
        token = keys.mint(manifest).token
        target = f"{PARTNER}:{echo.port}"
        request = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: Bearer "
        status, headers, _, _, writer = await raw_request(
            proxy.port, f"{request}{token}\r\n\r\n".encode()
        )
        writer.close()
        assert (status, headers["x-vivified-reason"]) == (503, "audit_unavailable")
        assert dials.dials == []
    finally:
        await proxy.close()
        await echo.close()


async def test_slow_clients_from_one_address_are_capped(tmp_path: Path) -> None:
    keys = Keys.create(tmp_path)
    directory = StaticDirectory([egress_record("billing")])
    proxy, _, _, _ = await start_proxy(
        directory, keys, hosts={}, ports={443}, max_pending_per_peer=3, head_timeout=5.0
    )
    try:
        slow = []
        for _ in range(3):
            _, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(b"CONNECT api.partner.test:443 HTTP/1.1\r\n")
            await writer.drain()
            slow.append(writer)
        await asyncio.sleep(0.1)
        status, headers, _, _, writer = await raw_request(proxy.port, b"CONNECT x:443 HTTP/1.1\r\n")
        writer.close()
        assert (status, headers["x-vivified-reason"]) == (429, "too_many_pending")
        for w in slow:
            w.close()
    finally:
        await proxy.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_stock_curl_goes_through_the_proxy_and_sees_refusal_reasons(
    ground: Ground, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(ground.ca.ca_pem)

    async def curl(host: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            "curl", "-sS", "-v", "--max-time", "10", "--cacert", str(ca),
            "--proxy", f"http://127.0.0.1:{ground.port}",
            "--proxy-user", f"billing:{ground.token}",
            f"https://{host}:{ground.https.port}/",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )  # fmt: skip
        out, err = await proc.communicate()
        return proc.returncode or 0, out.decode(), err.decode()

    code, out, _ = await curl(PARTNER)
    assert (code, out) == (0, "hello from upstream")
    code, _, err = await curl(OTHER)
    assert code != 0
    assert "403" in err
    assert "X-Vivified-Reason: domain_not_allowed" in err


async def test_bytes_sent_right_after_the_connect_head_are_not_lost(ground: Ground) -> None:
    target = f"{PARTNER}:{ground.echo.port}"
    request = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{ground.bearer()}\r\nearly"
    status, _, _, reader, writer = await raw_request(ground.port, request.encode())
    assert status == 200
    assert await asyncio.wait_for(reader.readexactly(5), 5) == b"early"
    big = b"x" * (3 * 1024 * 1024)  # more than every buffer on the way: flow control holds
    writer.write(big)
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(-1), 10) == big
    writer.close()
    await until(lambda: closes(ground) == ["eof"])
    close = next(e for e in ground.audit.entries if e.action == "egress.close")
    assert close.details["bytes_out"] == len(big) + 5
    assert close.details["bytes_in"] == len(big) + 5


async def test_a_stock_client_uses_plain_http_through_the_proxy(ground: Ground) -> None:
    proxy = httpx.Proxy(
        f"http://127.0.0.1:{ground.port}",
        headers={"Proxy-Authorization": f"Bearer {ground.token}"},
    )
    async with httpx.AsyncClient(proxy=proxy, trust_env=False) as client:
        response = await client.post(f"http://{PARTNER}:{ground.http.port}/in", content=b"abc")
    assert (response.status_code, response.text) == (200, "hello from upstream: abc")
    assert ground.http.requests[0].startswith(b"POST /in HTTP/1.1\r\n")
