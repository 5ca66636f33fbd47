"""The delivery POST client against real loopback sockets: each server here is scripted (what
it answers, when it closes), so the lane's rules are checked on the bytes themselves."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from vivified.dataplane.events.post import MAX_HEAD_BYTES, DeliveryClient

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]
HEADERS = {"Content-Type": "application/cloudevents+json", "Authorization": "Bearer t"}


class Server:
    """A loopback server running ``script`` per connection; records every request seen."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[bytes] = []
        self.connections = 0
        self.port = 0

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        request = head + await reader.readexactly(length)
        self.requests.append(request)
        return request

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.script(reader, writer, self.connections)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"


@asynccontextmanager
async def serving(script: Script) -> AsyncIterator[Server]:
    server = Server(script)
    listener = await asyncio.start_server(server._handle, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()


def answering(*responses: bytes, then_close: bool = False) -> Callable[[Server], Script]:
    """A script that answers each request on a connection with the next response in turn."""

    def make(server_ref: Server) -> Script:
        async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, _: int) -> None:
            for response in responses:
                await server_ref.read_request(r)
                w.write(response)
                await w.drain()
            if not then_close:
                await r.read()  # keep the connection until the client closes it

        return script

    return make


@asynccontextmanager
async def scripted(make: Callable[[Server], Script]) -> AsyncIterator[Server]:
    holder: list[Server] = []

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await make(holder[0])(r, w, n)

    async with serving(script) as server:
        holder.append(server)
        yield server


NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"
OK_BODY = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


async def test_a_post_carries_the_body_headers_and_host_and_answers_the_status() -> None:
    client = DeliveryClient()
    async with scripted(answering(NO_CONTENT)) as server:
        answer = await client.post(server.url, b'{"a":1}', HEADERS, timeout=5)
    await client.close()
    assert (answer.status, answer.error) == (204, "")
    (request,) = server.requests
    head, body = request.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /events HTTP/1.1"
    assert f"Host: 127.0.0.1:{server.port}".encode() in lines
    assert b"Authorization: Bearer t" in lines
    assert b"Content-Length: 7" in lines
    assert body == b'{"a":1}'


async def test_the_connection_is_kept_alive_across_posts() -> None:
    client = DeliveryClient()
    async with scripted(answering(OK_BODY, NO_CONTENT, OK_BODY)) as server:
        statuses = [(await client.post(server.url, b"x", HEADERS, timeout=5)).status for _ in "abc"]
    await client.close()
    assert statuses == [200, 204, 200]
    assert server.connections == 1


async def test_a_chunked_body_is_read_to_its_end_before_the_connection_is_reused() -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    client = DeliveryClient()
    async with scripted(answering(chunked, NO_CONTENT)) as server:
        first = await client.post(server.url, b"x", HEADERS, timeout=5)
        second = await client.post(server.url, b"y", HEADERS, timeout=5)
    await client.close()
    assert (first.status, second.status) == (200, 204)
    assert server.connections == 1


async def test_a_redirect_is_a_failed_attempt_and_never_followed() -> None:
    redirect = b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://evil.test/\r\n\r\n"
    client = DeliveryClient()
    async with scripted(answering(redirect)) as server:
        answer = await client.post(server.url, b"x", HEADERS, timeout=5)
    await client.close()
    assert answer.status == 307  # the worker counts any non-2xx as a failed attempt
    assert len(server.requests) == 1


async def test_an_oversized_response_head_is_refused() -> None:
    huge = b"HTTP/1.1 204 No Content\r\nX-Big: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n"
    client = DeliveryClient()
    async with scripted(answering(huge)) as server:
        answer = await client.post(server.url, b"x", HEADERS, timeout=5)
    await client.close()
    assert (answer.status, answer.error) == (0, "response head too large")


async def test_a_head_just_under_the_cap_is_fine() -> None:
    room = MAX_HEAD_BYTES - 200
    big = b"HTTP/1.1 204 No Content\r\nX-Big: " + b"a" * room + b"\r\n\r\n"
    client = DeliveryClient()
    async with scripted(answering(big)) as server:
        answer = await client.post(server.url, b"x", HEADERS, timeout=5)
    await client.close()
    assert answer.status == 204


async def test_garbage_is_a_malformed_response() -> None:
    client = DeliveryClient()
    async with scripted(answering(b"SMTP ready\r\n\r\n")) as server:
        answer = await client.post(server.url, b"x", HEADERS, timeout=5)
    await client.close()
    assert answer.status == 0
    assert answer.error.startswith("malformed response")


async def test_a_hanging_subscriber_times_out_and_its_connection_is_closed() -> None:
    hung_up = asyncio.Event()

    async def hang(r: asyncio.StreamReader, w: asyncio.StreamWriter, _: int) -> None:
        await r.read()  # returns at EOF: the client closed the connection
        hung_up.set()

    client = DeliveryClient()
    async with serving(hang) as server:
        answer = await client.post(server.url, b"x", HEADERS, timeout=0.2)
        await asyncio.wait_for(hung_up.wait(), 5)  # not left open for the next POST, or ever
    assert (answer.status, answer.error) == (0, "timed out")


async def test_a_cancelled_post_closes_its_connection() -> None:
    """A worker stopped mid-delivery (its subscriber was removed) leaves nothing open."""
    hung_up = asyncio.Event()

    async def hang(r: asyncio.StreamReader, w: asyncio.StreamWriter, _: int) -> None:
        await r.read()
        hung_up.set()

    client = DeliveryClient()
    async with serving(hang) as server:
        task = asyncio.create_task(client.post(server.url, b"x", HEADERS, timeout=30))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(hung_up.wait(), 5)


async def test_a_body_that_never_ends_times_out_too() -> None:
    async def trickle(r: asyncio.StreamReader, w: asyncio.StreamWriter, _: int) -> None:
        await r.readuntil(b"\r\n\r\n")
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
        await r.read()

    client = DeliveryClient()
    async with serving(trickle) as server:
        answer = await client.post(server.url, b"", HEADERS, timeout=0.2)
    await client.close()
    assert (answer.status, answer.error) == (0, "timed out")


async def test_nobody_listening_is_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused
        client = DeliveryClient()
        answer = await client.post(f"http://127.0.0.1:{port}/events", b"x", HEADERS, timeout=2)
    await client.close()
    assert answer.status == 0
    assert answer.error.startswith("unreachable")


async def test_a_connection_closed_while_idle_is_replaced_and_the_post_sent_once_more() -> None:
    async def one_then_close(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await holder[0].read_request(r)
        w.write(NO_CONTENT)
        await w.drain()
        if n == 1:
            await asyncio.sleep(0.05)
            return  # closes the kept-alive connection while the client holds it idle
        await r.read()

    holder: list[Server] = []
    client = DeliveryClient()
    async with serving(one_then_close) as server:
        holder.append(server)
        first = await client.post(server.url, b"1", HEADERS, timeout=5)
        await asyncio.sleep(0.2)
        second = await client.post(server.url, b"2", HEADERS, timeout=5)
    await client.close()
    assert (first.status, second.status) == (204, 204)
    assert server.connections == 2


async def test_a_reused_connection_that_dies_unanswered_is_re_sent_once() -> None:
    """The race the idle check cannot see: the close arrives after the request was written."""

    async def drop_second(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await holder[0].read_request(r)
        w.write(NO_CONTENT)
        await w.drain()
        if n == 1:
            await holder[0].read_request(r)  # the second request: read, never answered
            return
        await r.read()

    holder: list[Server] = []
    client = DeliveryClient()
    async with serving(drop_second) as server:
        holder.append(server)
        await client.post(server.url, b"1", HEADERS, timeout=5)
        answer = await client.post(server.url, b"2", HEADERS, timeout=5)
    await client.close()
    assert answer.status == 204
    assert [r.endswith(b"2") for r in server.requests] == [False, True, True]


async def test_a_connection_that_dies_mid_answer_is_not_re_sent() -> None:
    async def half(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await holder[0].read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await w.drain()

    holder: list[Server] = []
    client = DeliveryClient()
    async with serving(half) as server:
        holder.append(server)
        answer = await client.post(server.url, b"x", HEADERS, timeout=5)
    await client.close()
    assert (answer.status, answer.error) == (0, "connection closed")
    assert len(server.requests) == 1


async def test_connection_close_is_honoured() -> None:
    closing = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
    client = DeliveryClient()
    async with scripted(answering(closing, then_close=True)) as server:
        first = await client.post(server.url, b"1", HEADERS, timeout=5)
        second = await client.post(server.url, b"2", HEADERS, timeout=5)
    await client.close()
    assert (first.status, second.status) == (204, 204)
    assert server.connections == 2


async def test_a_body_until_close_answers_with_the_status() -> None:
    until_close = b"HTTP/1.0 200 OK\r\n\r\nwhatever follows"
    client = DeliveryClient()
    async with scripted(answering(until_close, then_close=True)) as server:
        answer = await client.post(server.url, b"x", HEADERS, timeout=5)
    await client.close()
    assert answer.status == 200


async def test_an_interim_answer_is_skipped() -> None:
    interim = b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + NO_CONTENT
    client = DeliveryClient()
    async with scripted(answering(interim)) as server:
        answer = await client.post(server.url, b"x", HEADERS, timeout=5)
    await client.close()
    assert answer.status == 204


async def test_concurrent_posts_use_their_own_connections() -> None:
    async def slow(r: asyncio.StreamReader, w: asyncio.StreamWriter, _: int) -> None:
        while True:
            await holder[0].read_request(r)
            await asyncio.sleep(0.05)
            w.write(NO_CONTENT)
            await w.drain()

    holder: list[Server] = []
    client = DeliveryClient()
    async with serving(slow) as server:
        holder.append(server)
        answers = await asyncio.gather(
            *(client.post(server.url, b"x", HEADERS, timeout=5) for _ in range(4))
        )
        again = await asyncio.gather(
            *(client.post(server.url, b"x", HEADERS, timeout=5) for _ in range(4))
        )
    await client.close()
    assert {a.status for a in [*answers, *again]} == {204}
    assert server.connections == 4  # the second round reused the four


async def test_a_query_string_is_kept() -> None:
    client = DeliveryClient()
    async with scripted(answering(NO_CONTENT)) as server:
        await client.post(server.url + "?v=1", b"x", HEADERS, timeout=5)
    await client.close()
    assert server.requests[0].startswith(b"POST /events?v=1 HTTP/1.1\r\n")


@pytest.mark.parametrize(
    "url",
    ["https://sub.test/events", "ftp://sub.test/x", "http:///events", "http://a b/x"],
)
async def test_an_unusable_url_is_a_failed_attempt(url: str) -> None:
    client = DeliveryClient()
    answer = await client.post(url, b"x", HEADERS, timeout=1)
    assert answer.status == 0
    assert "URL" in answer.error


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "a\rb"])
async def test_a_header_with_a_line_break_is_never_sent(value: str) -> None:
    client = DeliveryClient()
    async with scripted(answering(NO_CONTENT)) as server:
        answer = await client.post(server.url, b"x", {"X-A": value}, timeout=5)
    await client.close()
    assert (answer.status, answer.error) == (0, "a header with a line break")
    assert server.requests == []


async def test_bytes_nobody_asked_for_drop_the_idle_connection() -> None:
    async def chatty(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await holder[0].read_request(r)
        w.write(NO_CONTENT)
        await w.drain()
        await asyncio.sleep(0.05)
        w.write(NO_CONTENT)  # unsolicited: a second answer to one request
        await w.drain()
        await r.read()

    holder: list[Server] = []
    client = DeliveryClient()
    async with serving(chatty) as server:
        holder.append(server)
        await client.post(server.url, b"1", HEADERS, timeout=5)
        await asyncio.sleep(0.2)
        answer = await client.post(server.url, b"2", HEADERS, timeout=5)
    await client.close()
    assert answer.status == 204
    assert server.connections == 2  # the confused connection was not reused
