"""The core's call-token cache: one signature per (key, caller, target, operation, traits)
while the token is young; anything that changes what the token says mints a new one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vivified import tokens
from vivified.dataplane.call_tokens import CallTokenCache
from vivified_sdk import verify_call_token

T0 = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
KEY = tokens.generate_signing_key(T0)
OTHER_KEY = tokens.generate_signing_key(T0)
BASE: dict[str, Any] = {
    "caller": "a",
    "caller_traits": ("handles_pii",),
    "target": "b",
    "operation": "user_info",
}


def mint(
    cache: CallTokenCache, key: tokens.SigningKey = KEY, *, at: datetime = T0, **over: Any
) -> str:
    return cache.token(key.private_key(), key.kid, now=at, **{**BASE, **over})


def test_a_young_token_is_reused_and_verifies_for_its_target() -> None:
    cache = CallTokenCache(issuer="vivified-core", ttl_seconds=60)
    first = mint(cache)
    assert mint(cache, at=T0 + timedelta(seconds=29)) == first
    assert cache.signatures == 1
    identity = verify_call_token(
        first,
        {"keys": [KEY.public_jwk()]},
        audience="b",
        issuer="vivified-core",
        now=T0 + timedelta(seconds=29),
        leeway=0,
    )
    assert (identity.caller, identity.operation) == ("a", "user_info")


def test_past_half_its_lifetime_a_fresh_token_is_minted() -> None:
    cache = CallTokenCache(issuer="vivified-core", ttl_seconds=60)
    first = mint(cache)
    second = mint(cache, at=T0 + timedelta(seconds=30))
    assert second != first
    assert cache.signatures == 2


@pytest.mark.parametrize(
    ("reason", "change"),
    [
        ("another caller is another subject", {"caller": "c"}),
        ("the audience pins the target", {"target": "d"}),
        ("the operation is a claim", {"operation": "other"}),
        ("changed traits must be what the target sees", {"caller_traits": ()}),
    ],
)
def test_anything_the_token_says_is_part_of_the_key(reason: str, change: dict[str, Any]) -> None:
    cache = CallTokenCache(issuer="vivified-core", ttl_seconds=60)
    assert mint(cache) != mint(cache, **change), reason
    assert cache.signatures == 2


def test_a_rotated_key_mints_with_the_new_kid() -> None:
    cache = CallTokenCache(issuer="vivified-core", ttl_seconds=60)
    mint(cache)
    rotated = mint(cache, OTHER_KEY)
    verify_call_token(
        rotated,
        {"keys": [OTHER_KEY.public_jwk()]},
        audience="b",
        issuer="vivified-core",
        now=T0,
        leeway=0,
    )


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    cache = CallTokenCache(issuer="vivified-core", ttl_seconds=60, max_entries=2)
    a = mint(cache, caller="a")
    mint(cache, caller="b")
    assert mint(cache, caller="a") == a  # a is now the most recent
    mint(cache, caller="c")  # evicts b
    assert len(cache) == 2
    assert mint(cache, caller="a") == a
    before = cache.signatures
    mint(cache, caller="b")
    assert cache.signatures == before + 1


@pytest.mark.parametrize(("ttl", "size"), [(0, 1), (60, 0), (-1, 5)])
def test_nonsense_settings_are_refused(ttl: int, size: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        CallTokenCache(issuer="x", ttl_seconds=ttl, max_entries=size)
