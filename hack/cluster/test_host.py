"""An "external" test host: HTTP on 80 and HTTPS on 443 (test CA), inside its own netns.

Every request is answered with ``{"host": NAME, "path": ...}`` so a test can tell which host
it reached. Started by node.py: test_host.py NAME CERT KEY STATE_DIR
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys


def handler(name: str):  # type: ignore[no-untyped-def]
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            path = head.split(b" ", 2)[1].decode("latin-1") if b" " in head else "/"
            body = json.dumps({"host": name, "path": path}).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            writer.close()

    return handle


async def main(name: str, cert: str, key: str) -> None:
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    plain = await asyncio.start_server(handler(name), "0.0.0.0", 80)  # noqa: S104 (own netns)
    secure = await asyncio.start_server(handler(name), "0.0.0.0", 443, ssl=tls)  # noqa: S104
    print(f"test host {name} serving on :80 and :443", flush=True)
    async with plain, secure:
        await asyncio.gather(plain.serve_forever(), secure.serve_forever())


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
