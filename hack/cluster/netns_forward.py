"""A TCP forwarder from inside the real node's network namespace to the host's loopback.

The control plane listens on 127.0.0.1 only, and the real node (kubelet, kube-proxy,
kube-router, pods) lives in its own network namespace with no route to the host. This
forwarder listens inside that namespace (on the node's address) and connects each client to
one fixed port on the host's loopback: the API server. Nothing else is reachable this way.

Usage: netns_forward.py NETNS LISTEN_ADDRESS LISTEN_PORT HOST_PORT [LABEL]
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys

from netns import socket_in


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()


async def main(netns: str, address: str, port: int, host_port: int) -> None:
    listener = socket_in(netns)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((address, port))
    listener.listen(128)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", host_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, sock=listener)
    print(f"forwarding {netns} {address}:{port} -> 127.0.0.1:{host_port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
