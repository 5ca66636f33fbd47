"""Network namespaces for the real node: entering one for a single socket.

`setns(2)` changes the calling thread's network namespace; a socket keeps the namespace it
was created in. So a process on the host can listen or dial inside a namespace the harness
created by switching in, creating the socket, and switching back (`socket_in`). Python 3.11
has no `os.setns`, hence ctypes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
from collections.abc import Iterator
from pathlib import Path

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


@contextlib.contextmanager
def entered(name: str) -> Iterator[None]:
    """This thread inside netns NAME (under /run/netns) for the block."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(NETNS_DIR / name, os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)


def socket_in(name: str, family: int = socket.AF_INET) -> socket.socket:
    """A TCP socket that lives in netns NAME."""
    with entered(name):
        return socket.socket(family, socket.SOCK_STREAM)
