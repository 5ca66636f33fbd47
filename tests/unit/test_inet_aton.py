"""The policy's own inet_aton reads IPv4 shorthands exactly as the C library does."""

from __future__ import annotations

import ipaddress
import socket

from hypothesis import given
from hypothesis import strategies as st

from vivified.policy.domains import _inet_aton

PART = st.one_of(
    st.integers(0, 2**32).map(str),
    st.integers(0, 2**32).map(hex),
    st.integers(0, 2**32).map(lambda n: "0" + oct(n)[2:]),
    st.sampled_from(["", "0x", "08", "00", "0"]),
)


def reference(text: str) -> int | None:
    try:
        return int(ipaddress.IPv4Address(socket.inet_aton(text)))
    except (OSError, ValueError):
        return None


@given(st.lists(PART, min_size=1, max_size=5).map(".".join))
def test_matches_the_c_library(text: str) -> None:
    assert _inet_aton(text) == reference(text), text
