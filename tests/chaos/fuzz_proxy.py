"""Hostile bytes for the proxy lane's listener (head parser, target, credentials, Host check,
the absolute-URI forwarder), over a real loopback socket (shared by tests and bench/fuzz.py).

The proxy is the real ``ProxyServer`` of tests/proxy_ground.py: names resolve through its
TEST-ONLY map (``api.partner.test`` → 127.0.0.1), every dial is recorded, and the upstreams
are loopback servers (an echo for tunnels, a one-shot HTTP server). A case writes its bytes,
half-closes, reads the answer to the end and returns a problem string when:

* the proxy's own answer is not a well-formed HTTP/1.1 response, or is a 500, or leaks a
  traceback, or says JSON and is not (upstream answers, relayed as they are, are not judged);
* the proxy logged an error (an exception escaped a connection handler: a crash of that
  connection, with no answer to the client);
* the proxy dialled anything but the allowed upstreams;
* a complete request head got no answer at all.

``settle`` checks that nothing is left behind once the cases are done (connections, tunnels,
per-peer counters): bounded memory.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st
from tests.proxy_ground import DialLog, Keys, Upstream, start_proxy
from tests.unit.egress_fixtures import egress_manifest, egress_record

from vivified.audit.hook import MemoryAuditor
from vivified.dataplane.directory import StaticDirectory
from vivified.dataplane.proxy import ProxyServer

PARTNER = "api.partner.test"
#: Placeholders a generated request carries; the driver fills in the live values.
TOKEN, ECHO, HTTP = b"%TOKEN%", b"%ECHO%", b"%HTTP%"
_LEAKS = (b"Traceback", b'File "', b"Error:", b"Exception")
_STATUS_LINE = re.compile(rb"^HTTP/1\.[01] ([1-5][0-9][0-9])[ \r]")
_MAX_ANSWER = 256 * 1024

# --- strategies -------------------------------------------------------------------------------

_latin = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=30)
_visible = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30)
_hosts = st.one_of(
    st.sampled_from(
        [
            PARTNER,
            PARTNER.upper(),
            PARTNER + ".",
            "other.partner.test",
            "127.0.0.1",
            "[::1]",
            "[::ffff:127.0.0.1]",
            "localhost",
            "10.0.0.7",
            "169.254.169.254",
            "0x7f.1",
            "2130706433",
            "[fe80::1%25eth0]",
            "api.partner.test%00.evil",
            "xn--nxasmq6b",
            "",
            "a" * 300,
        ]
    ),
    _visible,
)
_ports = st.one_of(
    st.sampled_from(
        [ECHO.decode(), HTTP.decode(), "443", "0", "65536", "-1", "", "80abc", "99999"]
    ),
    st.integers(-5, 70000).map(str),
)
_paths = st.one_of(st.just(""), st.just("/"), _visible.map(lambda s: "/" + s))


def _authority(host: str, port: str) -> str:
    return f"{host}:{port}" if port else host


targets = st.one_of(
    st.builds(_authority, _hosts, _ports),
    st.builds(
        lambda scheme, userinfo, host, port, path: (
            f"{scheme}{userinfo}{_authority(host, port)}{path}"
        ),
        st.sampled_from(["http://", "HTTP://", "https://", "ftp://", "http:/", "//"]),
        st.sampled_from(["", "user@", "user:pass@", f"{PARTNER}@", "@"]),
        _hosts,
        _ports,
        _paths,
    ),
    st.sampled_from(["*", "/", "/relative", ""]),
    _latin,
)
methods = st.one_of(
    st.sampled_from(["CONNECT", "GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS", "connect"]),
    _visible,
)
versions = st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1 ", "", "http/1.1"])


def _basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


_credentials = st.one_of(
    st.sampled_from(
        [
            "Bearer %TOKEN%",
            _basic("billing", "%TOKEN%"),
            _basic("notes", "%TOKEN%"),
            _basic("", "%TOKEN%"),
            "Bearer",
            "Bearer ",
            "Basic !!!",
            "Basic " + base64.b64encode(b"no-colon").decode(),
            "Negotiate abc",
            "bearer %TOKEN%",
        ]
    ),
    _latin,
)
_header = st.one_of(
    st.tuples(st.just("Proxy-Authorization"), _credentials),
    st.tuples(st.just("Host"), st.one_of(st.builds(_authority, _hosts, _ports), _latin)),
    st.tuples(
        st.just("Content-Length"),
        st.one_of(st.sampled_from(["0", "5", "-1", "1, 2", "99999999999", "0x10", ""]), _latin),
    ),
    st.tuples(
        st.just("Transfer-Encoding"),
        st.sampled_from(["chunked", "gzip", "chunked, chunked", "identity", "gzip, chunked", ""]),
    ),
    st.tuples(st.sampled_from(["Connection", "Expect", "Upgrade", "TE"]), _latin),
    st.tuples(_visible, _latin),
)
_chunked = st.one_of(
    st.binary(max_size=40).map(lambda b: f"{len(b):x}\r\n".encode() + b + b"\r\n0\r\n\r\n"),
    st.sampled_from([b"zz\r\nab\r\n0\r\n\r\n", b"5\r\nab", b"ffffffffffffffffff\r\n", b"0\r\n"]),
)


def _assemble(
    line_parts: tuple[str, str, str],
    headers: list[tuple[str, str]],
    eol: bytes,
    body: bytes,
) -> bytes:
    line = " ".join(line_parts).encode("latin-1", "replace")
    fields = [f"{k}: {v}".encode("latin-1", "replace") for k, v in headers]
    return eol.join([line, *fields]) + eol + eol + body


_eols = st.sampled_from([b"\r\n", b"\r\n", b"\n", b"\r"])
requests = st.builds(
    _assemble,
    st.tuples(methods, targets, versions),
    st.lists(_header, max_size=8),
    _eols,
    st.one_of(st.binary(max_size=60), _chunked),
)
#: Requests the proxy lets through (billing's token, its domain, an upstream's port), with
#: extra fields, framings and bodies: the forwarder and the tunnel see hostile input too.
_valid_auth = ("Proxy-Authorization", "Bearer %TOKEN%")
near_valid = st.one_of(
    st.builds(  # a tunnel that opens, then hostile bytes through it
        _assemble,
        st.just(("CONNECT", f"{PARTNER}:%ECHO%", "HTTP/1.1")),
        st.just([_valid_auth]),
        st.just(b"\r\n"),
        st.binary(max_size=200),
    ),
    st.builds(
        _assemble,
        st.just(("CONNECT", f"{PARTNER}:%ECHO%", "HTTP/1.1")),
        st.lists(_header, max_size=4).map(lambda h: [_valid_auth, *h]),
        _eols,
        st.binary(max_size=60),
    ),
    st.builds(
        _assemble,
        st.tuples(
            st.sampled_from(["GET", "POST", "PUT", "HEAD", "DELETE"]),
            _paths.map(lambda path: f"http://{PARTNER}:%HTTP%{path}"),
            st.sampled_from(["HTTP/1.1", "HTTP/1.0"]),
        ),
        st.lists(_header, max_size=4).map(
            lambda h: [_valid_auth, ("Host", f"{PARTNER}:%HTTP%"), *h]
        ),
        _eols,
        st.one_of(st.binary(max_size=60), _chunked),
    ),
)


def _mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """Byte edits (0 delete, 1 insert, 2 replace) at positions modulo the length."""
    out = bytearray(data)
    for kind, position, byte in edits:
        if not out:
            out.append(byte)
            continue
        at = position % len(out)
        if kind == 0:
            del out[at]
        elif kind == 1:
            out.insert(at, byte)
        else:
            out[at] = byte
    return bytes(out)


_edit = st.tuples(st.integers(0, 2), st.integers(0, 4096), st.integers(0, 255))
raw_inputs = st.one_of(
    requests,
    near_valid,
    near_valid,
    st.builds(_mutate, near_valid, st.lists(_edit, min_size=1, max_size=3)),
    st.builds(
        _mutate,
        requests,
        st.lists(
            st.tuples(st.integers(0, 2), st.integers(0, 4096), st.integers(0, 255)), max_size=4
        ),
    ),
    st.binary(max_size=300),
    # Heads at and over the size and field-count limits.
    st.integers(0, 120).map(
        lambda n: (
            f"CONNECT {PARTNER}:%ECHO% HTTP/1.1\r\n".encode()
            + b"".join(f"X-{i}: v\r\n".encode() for i in range(n))
            + b"\r\n"
        )
    ),
    st.integers(16_000, 17_000).map(
        lambda n: f"GET http://{PARTNER}/ HTTP/1.1\r\nX: ".encode() + b"a" * n + b"\r\n\r\n"
    ),
)

# --- the driver -------------------------------------------------------------------------------


class _Errors(logging.Handler):
    """Collects ERROR records of the proxy's loggers (an exception escaped a handler)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("vivified"):
            self.messages.append(f"{record.name}: {record.getMessage()} {record.exc_text or ''}")


@dataclass
class ProxyGround:
    proxy: ProxyServer
    dials: DialLog
    audit: MemoryAuditor
    echo: Upstream
    http: Upstream
    token: str
    errors: _Errors = field(default_factory=_Errors)
    files: int = 0

    @property
    def allowed_dials(self) -> set[tuple[str, int]]:
        return {("127.0.0.1", self.echo.port), ("127.0.0.1", self.http.port)}

    def fill(self, data: bytes) -> bytes:
        return (
            data.replace(TOKEN, self.token.encode())
            .replace(ECHO, str(self.echo.port).encode())
            .replace(HTTP, str(self.http.port).encode())
        )


async def start_ground() -> ProxyGround:
    echo, http = Upstream("echo"), Upstream("http")
    await echo.start()
    await http.start()
    keys = Keys.create()
    directory = StaticDirectory(
        [egress_record("billing"), egress_record("notes", traits=("audit_required",), domains=())]
    )
    proxy, dials, audit, _ = await start_proxy(
        directory,
        keys,
        hosts={PARTNER: ("127.0.0.1",), "other.partner.test": ("127.0.0.1",)},
        ports={echo.port, http.port},
        head_timeout=2.0,
        connect_timeout=2.0,
        idle_timeout=5.0,
        rate_per_second=1e6,  # the fuzz is one client; rate limits are tested elsewhere
        rate_burst=1_000_000,
    )
    ground = ProxyGround(proxy, dials, audit, echo, http, keys.mint(egress_manifest()).token)
    logging.getLogger("vivified").addHandler(ground.errors)
    ground.files = open_files()
    return ground


async def stop_ground(ground: ProxyGround) -> None:
    logging.getLogger("vivified").removeHandler(ground.errors)
    await ground.proxy.close()
    await ground.echo.close()
    await ground.http.close()


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    answer = b""
    while len(answer) < _MAX_ANSWER and (chunk := await reader.read(65536)):
        answer += chunk
    return answer


def _complete_head(data: bytes) -> bool:
    return b"\r\n\r\n" in data or b"\n\n" in data


def judge(sent: bytes, answer: bytes) -> str | None:
    """The proxy's answer to SENT, or why it is wrong (see the module docstring)."""
    if not answer:
        return "no answer to a complete request head" if _complete_head(sent) else None
    status_line = _STATUS_LINE.match(answer)
    if status_line is None:
        return f"not an HTTP/1.x response: {answer[:80]!r}"
    status = int(status_line.group(1))
    head, _, body = answer.partition(b"\r\n\r\n")
    own = b"x-vivified-reason:" in head.lower()  # the proxy's answer, not an upstream's
    if status == 500:
        return f"500: {answer[:200]!r}"
    if own:
        for leak in _LEAKS:
            if leak in answer:
                return f"{status} leaks {leak!r}: {answer[:200]!r}"
        if b"application/problem+json" in head.lower():
            import json  # noqa: PLC0415 - only for the proxy's own answers

            try:
                json.loads(body)
            except ValueError:
                return f"{status} says JSON but is not: {body[:120]!r}"
    return None


async def exchange(ground: ProxyGround, data: bytes, *, timeout: float = 10.0) -> bytes:
    """Sends DATA (placeholders filled in), half-closes, and reads the answer to its end.
    Raises TimeoutError when it does not end, ConnectionResetError on a reset."""
    reader, writer = await asyncio.open_connection("127.0.0.1", ground.proxy.port)
    try:
        writer.write(ground.fill(data))
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        return await asyncio.wait_for(_read_all(reader), timeout)
    finally:
        writer.close()


async def proxy_case(ground: ProxyGround, data: bytes, *, timeout: float = 10.0) -> str | None:
    sent = ground.fill(data)
    errors_before = len(ground.errors.messages)
    try:
        answer = await exchange(ground, data, timeout=timeout)
    except TimeoutError:
        return f"no end of answer within {timeout}s for {data[:300]!r}"
    except ConnectionResetError:
        if _complete_head(sent):
            return f"connection reset after a complete head for {data[:300]!r}"
        answer = b""
    problem = judge(sent, answer)
    if problem is None:
        # Give the handler its last turn (close records, lingering) before judging the logs.
        await asyncio.sleep(0)
        new_errors = ground.errors.messages[errors_before:]
        if new_errors:
            problem = f"proxy logged an error: {new_errors[0][:300]}"
    stray = [d for d in ground.dials.dials if d not in ground.allowed_dials]
    if problem is None and stray:
        problem = f"dialled {stray[0]}"
    return None if problem is None else f"{problem} for {data[:300]!r}"


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


#: File descriptors the process may gain during a run without it being a leak (the event
#: loop's self-pipe, hypothesis' and logging's files).
FD_SLACK = 8


async def settle(ground: ProxyGround, *, timeout: float = 10.0) -> list[str]:
    """Waits for every connection to end; returns what is still held (should be nothing):
    connections, tunnels, per-peer counters, handler tasks, and sockets (file descriptors
    beyond those open when the ground started)."""
    proxy = ground.proxy
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        held = proxy._connections or proxy.tunnels or proxy._pending or proxy._handlers
        if not held and open_files() <= ground.files + FD_SLACK:
            return []
        await asyncio.sleep(0.05)
    return [
        f"{proxy._connections} connections, {len(proxy.tunnels)} tunnels, "
        f"{len(proxy._pending)} peers pending, {len(proxy._handlers)} handlers, "
        f"{open_files() - ground.files} more open files than at the start"
    ]


class ProxyDriver:
    """One event loop and one proxy ground for many generated cases."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.ground = self.loop.run_until_complete(start_ground())

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def case(self, data: bytes) -> str | None:
        problem: str | None = self.run(proxy_case(self.ground, data))
        return problem

    def close(self) -> list[str]:
        left: list[str] = self.run(settle(self.ground))
        self.run(stop_ground(self.ground))
        self.loop.close()
        return left


__all__ = ["ProxyDriver", "exchange", "judge", "raw_inputs", "requests", "settle"]
