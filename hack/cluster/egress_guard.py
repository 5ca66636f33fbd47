"""Egress guard: the only way out of the test cluster's kube-apiserver.

kube-apiserver sends its traffic towards the cluster network (admission
webhooks, the pod/service/node proxy, `kubectl logs`/`exec` through the
"kubelet") through its egress selector. Here the egress selector points at
this tiny HTTP CONNECT proxy on a unix socket, which connects to loopback
addresses only and refuses everything else (kwok's fake pod IPs, ClusterIPs,
DNS names), logging one line per decision. So a mistake in a test or chart
cannot make the API server dial a fake or foreign address.

With a real node (node.py), addresses inside the node's network namespace are allowed too:
its pods, its Services' ClusterIPs and the kubelet. Those connections are opened from inside
that namespace (the host has no route to it), so the API server reaches a webhook behind a
Service, `kubectl logs/exec` on the real node and the `pods/proxy` subresource, and still
nothing outside the machine.

Usage: egress_guard.py SOCKET_PATH [NETNS CIDR...]
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import sys
from datetime import UTC, datetime

from netns import socket_in

# The apiserver sends "CONNECT host:port HTTP/1.1" and a few headers.
MAX_HEADER_BYTES = 8192


def loopback_address(host: str) -> str | None:
    """The address to connect to, if HOST is on loopback; else None.

    Only literal loopback addresses and the name "localhost" (mapped here, so
    no resolver is asked): any other name would need a DNS look-up.
    """
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    return str(address) if address.is_loopback else None


#: (network namespace, address ranges dialled inside it), from the command line.
NODE_NETNS: str | None = None
NODE_RANGES: list[ipaddress.IPv4Network] = []


def node_address(host: str) -> str | None:
    """HOST if it is a literal address inside the real node's ranges, else None."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv4Address) and any(address in r for r in NODE_RANGES):
        return str(address)
    return None


async def connect(
    address: str, port: int, inside: bool
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if not inside or NODE_NETNS is None:
        return await asyncio.open_connection(address, port)
    sock = socket_in(NODE_NETNS)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (address, port)), 10)
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock)


def log(message: str) -> None:
    print(f"{datetime.now(UTC).isoformat(timespec='seconds')} {message}", flush=True)


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


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        header = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        writer.close()
        return
    request_line = header.split(b"\r\n", 1)[0].decode("latin-1")
    parts = request_line.split()
    if len(parts) != 3 or parts[0] != "CONNECT" or ":" not in parts[1]:
        log(f"REFUSED malformed request {request_line!r}")
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        writer.close()
        return
    target = parts[1]
    host, _, port = target.rpartition(":")
    address = loopback_address(host)
    inside = False
    if address is None and (address := node_address(host)) is not None:
        inside = True
    if address is None:
        log(f"REFUSED {target} (not loopback)")
        writer.write(b"HTTP/1.1 403 Forbidden\r\n\r\n")
        writer.close()
        return
    try:
        upstream_reader, upstream_writer = await connect(address, int(port), inside)
    except (OSError, ValueError, TimeoutError) as error:
        log(f"FAILED {target}: {error}")
        writer.write(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
        writer.close()
        return
    log(f"ALLOWED {target}{' (real node)' if inside else ''}")
    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
    await writer.drain()
    await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


async def main(socket_path: str) -> None:
    server = await asyncio.start_unix_server(handle, path=socket_path, limit=MAX_HEADER_BYTES)
    log(f"listening on {socket_path}")
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) > 2:
        NODE_NETNS = sys.argv[2]
        NODE_RANGES = [ipaddress.IPv4Network(c) for c in sys.argv[3:]]
    asyncio.run(main(sys.argv[1]))
