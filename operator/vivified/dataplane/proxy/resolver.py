"""Name resolution for the proxy: one look-up per connection, every answer returned.

The proxy checks *all* answers and then dials one of exactly those addresses, so the resolver
is asked once and never again for that connection (no second, possibly rebound, answer).

:class:`StaticResolver` is TEST ONLY: a fixed map the tests control, so no test ever makes a
real DNS query for a plugin's domain. A name it does not know fails to resolve.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Mapping, Sequence
from typing import Protocol

from vivified.policy.egress import IPAddress

__all__ = ["ResolveError", "Resolver", "StaticResolver", "SystemResolver"]


class ResolveError(Exception):
    """The name has no usable answer (message safe to show)."""


class Resolver(Protocol):
    async def resolve(self, host: str, port: int) -> Sequence[IPAddress]:
        """Every address ``host`` resolves to, in the resolver's order; may raise ResolveError."""
        ...


class SystemResolver:
    """The platform's resolver (``getaddrinfo``: cluster DNS in a pod), TCP answers only."""

    async def resolve(self, host: str, port: int) -> Sequence[IPAddress]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
        except (socket.gaierror, UnicodeError) as error:
            raise ResolveError(f"cannot resolve {host}: {error}") from None
        out: list[IPAddress] = []
        for _family, _type, _proto, _canon, sockaddr in infos:
            text = str(sockaddr[0]).split("%", 1)[0]
            address = ipaddress.ip_address(text)
            if address not in out:
                out.append(address)
        return out


class StaticResolver:
    """TEST ONLY: resolve from a fixed ``{name: [address, ...]}`` map; unknown names fail."""

    def __init__(self, hosts: Mapping[str, Sequence[str]]) -> None:
        self._hosts = {
            name.lower(): tuple(ipaddress.ip_address(a) for a in addresses)
            for name, addresses in hosts.items()
        }

    async def resolve(self, host: str, port: int) -> Sequence[IPAddress]:
        del port
        try:
            return self._hosts[host.lower()]
        except KeyError:
            raise ResolveError(f"cannot resolve {host}: not in the test resolver map") from None

    def set(self, host: str, addresses: Sequence[str]) -> None:
        self._hosts[host.lower()] = tuple(ipaddress.ip_address(a) for a in addresses)
