"""Signing keys and the key ring: thumbprint kids, rotation, pruning, JWKS, persistence."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from vivified.tokens import (
    KeyMaterialError,
    KeyRing,
    KeyRingError,
    RetiredKey,
    SigningKey,
    generate_signing_key,
    jwk_thumbprint,
    jwks,
    jwks_to_configmap_data,
    keyring_from_secret_data,
    keyring_to_secret_data,
    load_signing_key,
    needs_rotation,
    prune_keyring,
    rotate,
    rotation_due,
    stage,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TTL = 3600


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --------------------------------------------------------------------------------------------
# Signing keys
# --------------------------------------------------------------------------------------------


def test_generated_key_is_p256_with_rfc7638_thumbprint_kid() -> None:
    key = generate_signing_key(NOW)
    private = serialization.load_pem_private_key(key.private_pem, password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert isinstance(private.curve, ec.SECP256R1)
    numbers = private.public_key().public_numbers()
    members = {
        "crv": "P-256",
        "kty": "EC",
        "x": b64url(numbers.x.to_bytes(32, "big")),
        "y": b64url(numbers.y.to_bytes(32, "big")),
    }
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
    assert key.kid == b64url(hashlib.sha256(canonical).digest())
    assert key.created_at == NOW


def test_thumbprint_hashes_the_rfc7638_canonical_form() -> None:
    # RFC 7517 A.1's EC key; RFC 7638: required members only, sorted, no whitespace, SHA-256.
    jwk = {
        "kty": "EC",
        "crv": "P-256",
        "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
        "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM",
    }
    expected = b64url(
        hashlib.sha256(
            b'{"crv":"P-256","kty":"EC","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",'
            b'"y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}'
        ).digest()
    )
    assert jwk_thumbprint(jwk) == expected


def test_two_generated_keys_differ() -> None:
    assert generate_signing_key(NOW).kid != generate_signing_key(NOW).kid


def test_public_jwk_has_every_member_and_no_private_part() -> None:
    key = generate_signing_key(NOW)
    jwk = key.public_jwk()
    assert set(jwk) == {"kid", "alg", "use", "kty", "crv", "x", "y"}
    assert (jwk["kid"], jwk["alg"], jwk["use"], jwk["kty"], jwk["crv"]) == (
        key.kid,
        "ES256",
        "sig",
        "EC",
        "P-256",
    )
    assert "d" not in jwk


def test_repr_and_str_of_signing_key_hide_the_private_key() -> None:
    key = generate_signing_key(NOW)
    pem_body = key.private_pem.decode().splitlines()[1]
    for text in (repr(key), str(key), f"{key}", repr([key])):
        assert key.kid in text
        assert "PRIVATE" not in text
        assert pem_body not in text
        assert "private_pem" not in text


def test_load_signing_key_round_trips_and_derives_kid() -> None:
    key = generate_signing_key(NOW)
    loaded = load_signing_key(key.private_pem, created_at=NOW)
    assert loaded == key
    assert load_signing_key(key.private_pem.decode(), created_at=NOW).kid == key.kid


def test_load_signing_key_keeps_an_explicit_kid() -> None:
    key = generate_signing_key(NOW)
    assert load_signing_key(key.private_pem, created_at=NOW, kid="custom").kid == "custom"


def test_load_signing_key_accepts_sec1_pem_and_normalises_to_pkcs8() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    sec1 = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    key = load_signing_key(sec1, created_at=NOW)
    assert key.private_pem.startswith(b"-----BEGIN PRIVATE KEY-----")


@pytest.mark.parametrize(
    "pem",
    [
        b"not a pem",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ec.generate_private_key(ec.SECP384R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    ],
    ids=["garbage", "truncated", "p384", "rsa"],
)
def test_unusable_key_material_is_rejected_without_echoing_it(pem: bytes) -> None:
    with pytest.raises(KeyMaterialError) as info:
        load_signing_key(pem, created_at=NOW)
    assert str(info.value) in {
        "signing key is not an unencrypted PEM private key",
        "signing key must be an EC P-256 (secp256r1) key for ES256",
    }


def test_encrypted_pem_is_rejected() -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    with pytest.raises(KeyMaterialError, match="unencrypted"):
        load_signing_key(pem, created_at=NOW)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        generate_signing_key(datetime(2025, 1, 1))


def test_non_utc_datetimes_are_normalised_to_utc() -> None:
    key = generate_signing_key(datetime(2025, 1, 1, 14, tzinfo=timezone(timedelta(hours=2))))
    assert key.created_at == datetime(2025, 1, 1, 12, tzinfo=UTC)
    assert key.created_at.tzinfo == UTC


# --------------------------------------------------------------------------------------------
# Key ring: rotation and pruning
# --------------------------------------------------------------------------------------------


def test_new_ring_publishes_only_the_active_key() -> None:
    ring = KeyRing(active=generate_signing_key(NOW))
    assert [k["kid"] for k in jwks(ring)["keys"]] == [ring.active.kid]
    assert ring.kids == (ring.active.kid,)


def test_rotation_retires_the_old_key_until_its_last_token_expires_plus_grace() -> None:
    old = generate_signing_key(NOW)
    new = generate_signing_key(NOW)
    later = NOW + timedelta(days=30)
    ring = rotate(KeyRing(active=old), new, later, TTL, grace_seconds=60)
    assert ring.active == new
    (retired,) = ring.retired
    assert retired.kid == old.kid
    assert retired.retired_at == later
    assert retired.retire_until == later + timedelta(seconds=TTL + 60)
    assert retired.public_jwk() == old.public_jwk()


def test_default_grace_covers_verifier_leeway() -> None:
    ring = rotate(KeyRing(active=generate_signing_key(NOW)), generate_signing_key(NOW), NOW, TTL)
    assert ring.retired[0].retire_until - NOW >= timedelta(seconds=TTL + 30)


def test_old_key_stays_in_jwks_until_retire_until_and_is_pruned_after() -> None:
    old, new = generate_signing_key(NOW), generate_signing_key(NOW)
    ring = rotate(KeyRing(active=old), new, NOW, TTL, grace_seconds=0)
    until = ring.retired[0].retire_until
    just_before = until - timedelta(seconds=1)

    assert [k["kid"] for k in jwks(prune_keyring(ring, just_before))["keys"]] == [
        new.kid,
        old.kid,
    ]
    assert [k["kid"] for k in jwks(ring, just_before)["keys"]] == [new.kid, old.kid]

    assert prune_keyring(ring, until).retired == ()
    assert [k["kid"] for k in jwks(prune_keyring(ring, until))["keys"]] == [new.kid]
    assert [k["kid"] for k in jwks(ring, until)["keys"]] == [new.kid]


def test_prune_without_changes_returns_the_same_ring() -> None:
    ring = KeyRing(active=generate_signing_key(NOW))
    assert prune_keyring(ring, NOW) is ring


def test_retired_keys_are_listed_newest_first() -> None:
    k1, k2, k3 = (generate_signing_key(NOW) for _ in range(3))
    ring = rotate(KeyRing(active=k1), k2, NOW, TTL)
    ring = rotate(ring, k3, NOW + timedelta(minutes=5), TTL)
    assert [r.kid for r in ring.retired] == [k2.kid, k1.kid]
    assert [k["kid"] for k in jwks(ring)["keys"]] == [k3.kid, k2.kid, k1.kid]


def test_rotating_to_the_active_key_is_an_error() -> None:
    key = generate_signing_key(NOW)
    with pytest.raises(ValueError, match="already the active key"):
        rotate(KeyRing(active=key), key, NOW, TTL)


def test_rotating_back_to_a_retired_key_removes_it_from_the_retired_list() -> None:
    k1, k2 = generate_signing_key(NOW), generate_signing_key(NOW)
    ring = rotate(KeyRing(active=k1), k2, NOW, TTL)
    back = rotate(ring, k1, NOW + timedelta(minutes=1), TTL)
    assert back.active == k1
    assert [r.kid for r in back.retired] == [k2.kid]


def test_rotate_rejects_nonsense_ttl() -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        rotate(KeyRing(active=generate_signing_key(NOW)), generate_signing_key(NOW), NOW, 0)


def test_duplicate_kids_are_rejected() -> None:
    key = generate_signing_key(NOW)
    retired = RetiredKey(
        retired_at=NOW, kid=key.kid, x="x", y="y", retire_until=NOW + timedelta(hours=1)
    )
    with pytest.raises(KeyRingError, match="unique"):
        KeyRing(active=key, retired=(retired,))


# --------------------------------------------------------------------------------------------
# Two-phase rotation: stage, then rotate
# --------------------------------------------------------------------------------------------


def test_staged_key_is_published_but_does_not_sign() -> None:
    active, upcoming = generate_signing_key(NOW), generate_signing_key(NOW)
    ring = stage(KeyRing(active=active), upcoming)
    assert ring.active == active
    assert ring.next == upcoming
    assert [k["kid"] for k in jwks(ring)["keys"]] == [active.kid, upcoming.kid]


def test_rotating_to_the_staged_key_promotes_it() -> None:
    active, upcoming = generate_signing_key(NOW), generate_signing_key(NOW)
    ring = rotate(stage(KeyRing(active=active), upcoming), upcoming, NOW, TTL)
    assert ring.active == upcoming
    assert ring.next is None
    assert [r.kid for r in ring.retired] == [active.kid]


def test_staging_the_active_key_is_an_error() -> None:
    key = generate_signing_key(NOW)
    with pytest.raises(ValueError, match="already the active key"):
        stage(KeyRing(active=key), key)


@pytest.mark.parametrize(
    ("age_days", "staged", "expected"),
    [
        (0, False, None),
        (28, False, None),
        (29, False, "stage"),  # within publish_ahead (1 day) of max age (30 days)
        (29, True, None),  # already staged
        (30, False, "rotate"),
        (30, True, "rotate"),
        (45, False, "rotate"),
    ],
)
def test_rotation_due(age_days: int, staged: bool, expected: str | None) -> None:
    ring = KeyRing(active=generate_signing_key(NOW))
    if staged:
        ring = stage(ring, generate_signing_key(NOW))
    moment = NOW + timedelta(days=age_days)
    step = rotation_due(ring, moment, max_age_seconds=30 * 86400, publish_ahead_seconds=86400)
    assert step == expected


def test_needs_rotation_at_max_age() -> None:
    ring = KeyRing(active=generate_signing_key(NOW))
    assert not needs_rotation(ring, NOW + timedelta(seconds=99), 100)
    assert needs_rotation(ring, NOW + timedelta(seconds=100), 100)


# --------------------------------------------------------------------------------------------
# Persistence
# --------------------------------------------------------------------------------------------


def full_ring() -> KeyRing:
    k1, k2, k3, k4 = (generate_signing_key(NOW) for _ in range(4))
    ring = rotate(KeyRing(active=k1), k2, NOW, TTL)
    ring = rotate(ring, k3, NOW + timedelta(minutes=1), TTL)
    return stage(ring, k4)


def test_secret_data_round_trips() -> None:
    ring = full_ring()
    data = keyring_to_secret_data(ring)
    assert list(data) == ["keyring.json"]
    assert keyring_from_secret_data(data) == ring


def test_secret_data_is_deterministic() -> None:
    ring = full_ring()
    assert keyring_to_secret_data(ring) == keyring_to_secret_data(ring)
    assert keyring_to_secret_data(keyring_from_secret_data(keyring_to_secret_data(ring))) == (
        keyring_to_secret_data(ring)
    )


def test_secret_data_holds_private_keys_only_for_active_and_next() -> None:
    ring = full_ring()
    document = json.loads(keyring_to_secret_data(ring)["keyring.json"])
    assert document["active"]["private_pem"].startswith("-----BEGIN PRIVATE KEY-----")
    assert document["next"]["private_pem"].startswith("-----BEGIN PRIVATE KEY-----")
    for retired in document["retired"]:
        assert set(retired) == {"kid", "crv", "x", "y", "retired_at", "retire_until"}


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({}, "no 'keyring.json'"),
        ({"keyring.json": "{"}, "not valid JSON"),
        ({"keyring.json": "[]"}, "JSON object"),
        ({"keyring.json": '{"version": 2}'}, "version"),
        ({"keyring.json": '{"version": 1}'}, "active must be an object"),
        (
            {
                "keyring.json": json.dumps(
                    {
                        "version": 1,
                        "active": {
                            "kid": "k",
                            "created_at": "2025-01-01T00:00:00Z",
                            "private_pem": "-----BEGIN PRIVATE KEY-----\nsecret\n",
                        },
                    }
                )
            },
            "active key",
        ),
        (
            {
                "keyring.json": json.dumps(
                    {
                        "version": 1,
                        "active": {"kid": "k", "created_at": "yesterday", "private_pem": "x"},
                    }
                )
            },
            "RFC 3339",
        ),
    ],
)
def test_unreadable_secret_data_raises_keyring_error(data: dict[str, str], fragment: str) -> None:
    with pytest.raises(KeyRingError, match=fragment) as info:
        keyring_from_secret_data(data)
    assert "secret\n" not in str(info.value)


def test_retired_key_with_bad_point_is_rejected() -> None:
    document = json.loads(keyring_to_secret_data(full_ring())["keyring.json"])
    document["retired"][0]["x"] = b64url(b"\x01" * 32)
    with pytest.raises(KeyRingError, match=r"retired\[0\]"):
        keyring_from_secret_data({"keyring.json": json.dumps(document)})


def test_jwks_configmap_data_is_canonical_json() -> None:
    ring = full_ring()
    data = jwks_to_configmap_data(jwks(ring))
    assert list(data) == ["jwks.json"]
    text = data["jwks.json"]
    assert json.loads(text) == jwks(ring)
    assert " " not in text
    assert "private" not in text.lower()
    assert '"d"' not in text


def test_signing_key_equality_is_by_value() -> None:
    key = generate_signing_key(NOW)
    assert key == SigningKey(kid=key.kid, private_pem=key.private_pem, created_at=NOW)
