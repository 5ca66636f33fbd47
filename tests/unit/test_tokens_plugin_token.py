"""Plugin tokens: what is minted, and every way verification must say no."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from vivified.manifest import PluginManifest
from vivified.tokens import (
    REQUIRED_CLAIMS,
    KeyRing,
    MintedToken,
    TokenInvalid,
    generate_signing_key,
    jwks,
    mint_plugin_token,
    needs_remint,
    rotate,
    verify_plugin_token,
)

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
TTL = 3600
ISS = "vivified-operator"
AUD = "vivified-platform"

MANIFEST = PluginManifest.model_validate(
    {
        "id": "user-management",
        "name": "User Management Plugin",
        "version": "1.0.0",
        "contracts": ["IdentityPlugin"],
        "traits": ["handles_pii", "audit_required"],
        "security": {"authentication_required": True, "data_classification": ["pii", "internal"]},
        "compliance": {"audit_level": "detailed"},
    }
)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(value: Any) -> str:
    return b64url(json.dumps(value).encode())


@pytest.fixture(scope="module")
def ring() -> KeyRing:
    return KeyRing(active=generate_signing_key(NOW))


def mint(ring: KeyRing, **overrides: Any) -> MintedToken:
    kwargs: dict[str, Any] = {
        "issuer": ISS,
        "audience": AUD,
        "ttl_seconds": TTL,
        "now": NOW,
    }
    kwargs.update(overrides)
    return mint_plugin_token(ring, MANIFEST, **kwargs)


def verify(token: str, ring_or_jwks: KeyRing | dict[str, Any], **overrides: Any) -> Any:
    keys = jwks(ring_or_jwks) if isinstance(ring_or_jwks, KeyRing) else ring_or_jwks
    kwargs: dict[str, Any] = {
        "audience": AUD,
        "issuer": ISS,
        "revoked_jtis": frozenset(),
        "now": NOW + timedelta(minutes=1),
    }
    kwargs.update(overrides)
    return verify_plugin_token(token, keys, **kwargs)


def sign_es256(ring: KeyRing, header: dict[str, Any], claims: dict[str, Any]) -> str:
    return jwt.encode(claims, ring.active.private_key(), algorithm="ES256", headers=header)


def valid_claims(**overrides: Any) -> dict[str, Any]:
    iat = int(NOW.timestamp())
    claims: dict[str, Any] = {
        "iss": ISS,
        "sub": "plugin:user-management",
        "aud": AUD,
        "iat": iat,
        "nbf": iat,
        "exp": iat + TTL,
        "jti": "abc",
        "plugin_id": "user-management",
        "type": "plugin",
        "traits": ["handles_pii"],
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


# --------------------------------------------------------------------------------------------
# Minting
# --------------------------------------------------------------------------------------------


def test_header_is_es256_jwt_with_the_active_kid(ring: KeyRing) -> None:
    minted = mint(ring)
    header = jwt.get_unverified_header(minted.token)
    assert header == {"alg": "ES256", "typ": "JWT", "kid": ring.active.kid}
    assert minted.kid == ring.active.kid


def test_every_claim_is_present_with_its_value(ring: KeyRing) -> None:
    minted = mint(ring, jti="fixed-id")
    claims = jwt.decode(minted.token, options={"verify_signature": False})
    iat = int(NOW.timestamp())
    assert claims == {
        "iss": ISS,
        "sub": "plugin:user-management",
        "aud": AUD,
        "iat": iat,
        "nbf": iat,
        "exp": iat + TTL,
        "jti": "fixed-id",
        "plugin_id": "user-management",
        "type": "plugin",
        "traits": ["handles_pii", "audit_required"],
        "data_classification": ["pii", "internal"],
        "version": "1.0.0",
    }
    assert set(REQUIRED_CLAIMS) <= set(claims)


def test_minted_times_are_whole_seconds(ring: KeyRing) -> None:
    minted = mint(ring, now=NOW + timedelta(microseconds=999_999))
    assert minted.issued_at == NOW
    assert minted.expires_at == NOW + timedelta(seconds=TTL)


def test_jti_defaults_to_a_fresh_uuid4_hex(ring: KeyRing) -> None:
    a, b = mint(ring), mint(ring)
    assert a.jti != b.jti
    assert len(a.jti) == 32
    assert int(a.jti, 16) >= 0


def test_repr_of_minted_token_hides_the_token(ring: KeyRing) -> None:
    minted = mint(ring)
    for text in (repr(minted), str(minted), f"{minted}", repr([minted])):
        assert minted.token not in text
        assert minted.token.split(".")[2] not in text
        assert "token=" not in text
        assert minted.jti in text


def test_mint_rejects_a_non_positive_ttl(ring: KeyRing) -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        mint(ring, ttl_seconds=0)


def test_mint_rejects_naive_now(ring: KeyRing) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        mint(ring, now=datetime(2025, 1, 1))


# --------------------------------------------------------------------------------------------
# Verifying: the happy path
# --------------------------------------------------------------------------------------------


def test_round_trip(ring: KeyRing) -> None:
    minted = mint(ring)
    verified = verify(minted.token, ring)
    assert verified.plugin_id == "user-management"
    assert verified.subject == "plugin:user-management"
    assert verified.jti == minted.jti
    assert verified.kid == ring.active.kid
    assert verified.issuer == ISS
    assert verified.audience == (AUD,)
    assert verified.issued_at == minted.issued_at
    assert verified.not_before == minted.issued_at
    assert verified.expires_at == minted.expires_at
    assert verified.traits == ("handles_pii", "audit_required")
    assert verified.data_classification == ("pii", "internal")
    assert verified.version == "1.0.0"
    assert verified.claims["type"] == "plugin"


def test_valid_right_up_to_expiry_plus_leeway(ring: KeyRing) -> None:
    minted = mint(ring)
    verify(minted.token, ring, now=minted.expires_at + timedelta(seconds=29), leeway=30)
    with pytest.raises(TokenInvalid, match="expired"):
        verify(minted.token, ring, now=minted.expires_at + timedelta(seconds=30), leeway=30)


def test_token_signed_by_a_retired_key_verifies_while_the_key_is_published(
    ring: KeyRing,
) -> None:
    minted = mint(ring)
    rotated = rotate(ring, generate_signing_key(NOW), NOW + timedelta(minutes=1), TTL)
    assert verify(minted.token, rotated).kid == ring.active.kid


def test_verification_uses_the_injected_clock_not_the_wall_clock(ring: KeyRing) -> None:
    # Minted "in 2001": expired long ago by the wall clock, valid at the injected now.
    long_ago = datetime(2001, 1, 1, tzinfo=UTC)
    minted = mint(ring, now=long_ago)
    assert verify(minted.token, ring, now=long_ago + timedelta(minutes=5)).jti == minted.jti


# --------------------------------------------------------------------------------------------
# Verifying: rejections
# --------------------------------------------------------------------------------------------


def test_expired(ring: KeyRing) -> None:
    minted = mint(ring)
    with pytest.raises(TokenInvalid, match="expired"):
        verify(minted.token, ring, now=minted.expires_at + timedelta(hours=1))


def test_not_yet_valid(ring: KeyRing) -> None:
    minted = mint(ring)
    with pytest.raises(TokenInvalid, match="not yet valid"):
        verify(minted.token, ring, now=NOW - timedelta(minutes=5))


def test_not_before_within_leeway_is_accepted(ring: KeyRing) -> None:
    minted = mint(ring)
    verify(minted.token, ring, now=NOW - timedelta(seconds=30), leeway=30)
    with pytest.raises(TokenInvalid, match="not yet valid"):
        verify(minted.token, ring, now=NOW - timedelta(seconds=31), leeway=30)


def test_issued_in_the_future(ring: KeyRing) -> None:
    token = sign_es256(
        ring,
        {"kid": ring.active.kid},
        valid_claims(iat=int(NOW.timestamp()) + 3600, nbf=int(NOW.timestamp())),
    )
    with pytest.raises(TokenInvalid, match="issued in the future"):
        verify(token, ring, now=NOW)


def test_wrong_audience(ring: KeyRing) -> None:
    with pytest.raises(TokenInvalid, match="wrong audience"):
        verify(mint(ring).token, ring, audience="someone-else")


def test_wrong_issuer(ring: KeyRing) -> None:
    with pytest.raises(TokenInvalid, match="wrong issuer"):
        verify(mint(ring).token, ring, issuer="evil-operator")


def test_revoked(ring: KeyRing) -> None:
    minted = mint(ring)
    with pytest.raises(TokenInvalid, match="revoked"):
        verify(minted.token, ring, revoked_jtis={minted.jti})


def test_unknown_kid(ring: KeyRing) -> None:
    other = KeyRing(active=generate_signing_key(NOW))
    with pytest.raises(TokenInvalid, match="unknown key id"):
        verify(mint(ring).token, other)


def test_key_pruned_from_jwks_no_longer_verifies(ring: KeyRing) -> None:
    minted = mint(ring)
    rotated = rotate(ring, generate_signing_key(NOW), NOW, TTL, grace_seconds=0)
    after = rotated.retired[0].retire_until
    with pytest.raises(TokenInvalid, match="unknown key id"):
        verify(minted.token, jwks(rotated, after), now=NOW)


def test_missing_kid(ring: KeyRing) -> None:
    token = jwt.encode(valid_claims(), ring.active.private_key(), algorithm="ES256")
    with pytest.raises(TokenInvalid, match="no kid"):
        verify(token, ring)


def test_kid_pointing_at_a_different_key_fails_the_signature(ring: KeyRing) -> None:
    other = generate_signing_key(NOW)
    token = jwt.encode(
        valid_claims(), other.private_key(), algorithm="ES256", headers={"kid": ring.active.kid}
    )
    with pytest.raises(TokenInvalid, match="bad signature"):
        verify(token, ring)


def test_tampered_payload(ring: KeyRing) -> None:
    header, payload, signature = mint(ring).token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["traits"] = ["handles_phi"]
    forged = f"{header}.{b64url_json(claims)}.{signature}"
    with pytest.raises(TokenInvalid, match="bad signature"):
        verify(forged, ring)


def test_tampered_signature(ring: KeyRing) -> None:
    header, payload, signature = mint(ring).token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[0] ^= 0xFF
    with pytest.raises(TokenInvalid, match="bad signature"):
        verify(f"{header}.{payload}.{b64url(bytes(raw))}", ring)


def test_alg_none_is_rejected(ring: KeyRing) -> None:
    header = b64url_json({"alg": "none", "typ": "JWT", "kid": ring.active.kid})
    token = f"{header}.{b64url_json(valid_claims())}."
    # The empty signature already fails the shape check, before any header is parsed.
    with pytest.raises(TokenInvalid, match=r"algorithm not allowed|malformed token"):
        verify(token, ring)


def test_hs256_signed_with_the_public_key_as_hmac_secret_is_rejected(ring: KeyRing) -> None:
    # The classic key-confusion attack: the public key is known, so an attacker HMACs with it.
    public_pem = ring.active.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64url_json({"alg": "HS256", "typ": "JWT", "kid": ring.active.kid})
    payload = b64url_json(valid_claims())
    signing_input = f"{header}.{payload}".encode()
    for secret in (public_pem, json.dumps(ring.active.public_jwk()).encode()):
        signature = b64url(hmac.new(secret, signing_input, hashlib.sha256).digest())
        with pytest.raises(TokenInvalid, match="algorithm not allowed"):
            verify(f"{header}.{payload}.{signature}", ring)


@pytest.mark.parametrize("alg", ["ES384", "RS256", "PS256", "EdDSA", "ES256K"])
def test_other_algorithms_are_rejected_before_any_key_is_used(ring: KeyRing, alg: str) -> None:
    header = b64url_json({"alg": alg, "kid": ring.active.kid})
    token = f"{header}.{b64url_json(valid_claims())}.AAAA"
    with pytest.raises(TokenInvalid, match="algorithm not allowed"):
        verify(token, ring)


def test_jwks_entry_that_is_not_an_es256_key_is_refused(ring: KeyRing) -> None:
    token = mint(ring).token
    fake = {"keys": [{"kid": ring.active.kid, "kty": "oct", "k": b64url(b"secret")}]}
    with pytest.raises(TokenInvalid, match="not an ES256 key"):
        verify(token, fake)


@pytest.mark.parametrize("claim", sorted(REQUIRED_CLAIMS))
def test_each_required_claim_is_required(ring: KeyRing, claim: str) -> None:
    claims = valid_claims()
    del claims[claim]
    token = sign_es256(ring, {"kid": ring.active.kid}, claims)
    with pytest.raises(TokenInvalid, match=f"missing claim {claim}"):
        verify(token, ring)


def test_type_must_be_plugin(ring: KeyRing) -> None:
    token = sign_es256(ring, {"kid": ring.active.kid}, valid_claims(type="user"))
    with pytest.raises(TokenInvalid, match="not a plugin token"):
        verify(token, ring)


def test_sub_must_match_plugin_id(ring: KeyRing) -> None:
    token = sign_es256(ring, {"kid": ring.active.kid}, valid_claims(sub="plugin:other"))
    with pytest.raises(TokenInvalid, match="sub does not match"):
        verify(token, ring)


@pytest.mark.parametrize("claim", ["iat", "nbf", "exp"])
def test_time_claims_must_be_integers(ring: KeyRing, claim: str) -> None:
    token = sign_es256(ring, {"kid": ring.active.kid}, valid_claims(**{claim: "soon"}))
    with pytest.raises(TokenInvalid):
        verify(token, ring)


def test_traits_must_be_a_list_of_strings(ring: KeyRing) -> None:
    token = sign_es256(ring, {"kid": ring.active.kid}, valid_claims(traits="handles_pii"))
    with pytest.raises(TokenInvalid, match="traits"):
        verify(token, ring)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "...", "eyJhbGciOiJFUzI1NiJ9"])
def test_malformed_tokens(ring: KeyRing, garbage: str) -> None:
    with pytest.raises(TokenInvalid):
        verify(garbage, ring)


@pytest.mark.parametrize("bad_jwks", [{}, {"keys": "nope"}, {"keys": [42]}])
def test_unusable_jwks(ring: KeyRing, bad_jwks: dict[str, Any]) -> None:
    with pytest.raises(TokenInvalid):
        verify(mint(ring).token, bad_jwks)


def test_rejection_reasons_never_contain_the_token(ring: KeyRing) -> None:
    minted = mint(ring)
    with pytest.raises(TokenInvalid) as info:
        verify(minted.token, ring, audience="x")
    assert minted.token not in str(info.value)
    assert info.value.reason == "wrong audience"


# --------------------------------------------------------------------------------------------
# Re-minting
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("elapsed_fraction", "expected"),
    [(0.0, False), (0.5, False), (0.79, False), (0.8, True), (0.81, True), (1.0, True), (2, True)],
)
def test_needs_remint_at_fraction_of_ttl(elapsed_fraction: float, expected: bool) -> None:
    issued, expires = NOW, NOW + timedelta(seconds=86400)
    now = NOW + timedelta(seconds=86400 * elapsed_fraction)
    assert needs_remint(issued, expires, now, 0.8) is expected


def test_needs_remint_default_fraction_is_80_percent() -> None:
    issued, expires = NOW, NOW + timedelta(seconds=100)
    assert not needs_remint(issued, expires, NOW + timedelta(seconds=79))
    assert needs_remint(issued, expires, NOW + timedelta(seconds=80))


def test_needs_remint_for_a_token_with_no_lifetime() -> None:
    assert needs_remint(NOW, NOW, NOW - timedelta(days=1))


@pytest.mark.parametrize("fraction", [0, -0.1, 1.5])
def test_needs_remint_rejects_bad_fraction(fraction: float) -> None:
    with pytest.raises(ValueError, match="refresh_fraction"):
        needs_remint(NOW, NOW + timedelta(hours=1), NOW, fraction)
