"""TokenVerifier with local sources: every check, key files, revocation files, fail closed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jwt
import pytest

from sdk_support import AUD, ISS, NOW, KubeletMount, Signer, fixed_clock, jti_of
from vivified_sdk import (
    JwksFile,
    JwksSource,
    RevocationFile,
    RevocationListError,
    StaticJwks,
    StaticRevocations,
    TokenInvalid,
    TokenVerifier,
    VerifierUnavailable,
    contract,
    parse_revocations,
    verify_plugin_token,
)


def verifier(jwks: JwksSource, **kwargs: Any) -> TokenVerifier:
    return TokenVerifier(jwks, audience=AUD, issuer=ISS, clock=fixed_clock(), **kwargs)


def test_a_minted_token_is_verified(signer: Signer) -> None:
    v = verifier(StaticJwks(signer.jwks()))
    verified = v.verify(signer.mint(traits=["handles_pii"]))
    assert verified.plugin_id == "billing"
    assert verified.subject == "plugin:billing"
    assert verified.kid == signer.kid
    assert verified.traits == ("handles_pii",)
    assert verified.data_classification == ("internal",)
    assert verified.expires_at.timestamp() == NOW.timestamp() + 600
    assert v.verify_authorization(f"Bearer {signer.mint()}").plugin_id == "billing"
    assert v.verify_authorization(f"bearer   {signer.mint()}").plugin_id == "billing"
    assert "claims" not in repr(verified)


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer  ", "Basic abc", "Token x"])
def test_verify_authorization_needs_a_bearer_token(signer: Signer, header: str | None) -> None:
    with pytest.raises(TokenInvalid):
        verifier(StaticJwks(signer.jwks())).verify_authorization(header)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"aud": "x"}, "wrong audience"),
        ({"iss": "x"}, "wrong issuer"),
        ({"exp": int(NOW.timestamp()) - 60}, "token expired"),
        ({"nbf": int(NOW.timestamp()) + 600}, "token not yet valid"),
        ({"iat": int(NOW.timestamp()) + 600}, "token issued in the future"),
        ({"type": "user"}, "not a plugin token"),
        ({"sub": "plugin:other"}, "sub does not match plugin_id"),
        ({"jti": None}, "missing claim jti"),
        ({"traits": "handles_pii"}, "claim traits must be a list of strings"),
        ({"exp": 10**30}, "claim exp must be an integer timestamp"),
        ({"exp": True}, "claim exp must be an integer timestamp"),
    ],
)
def test_claims_are_checked(signer: Signer, overrides: dict[str, Any], reason: str) -> None:
    with pytest.raises(TokenInvalid) as info:
        verifier(StaticJwks(signer.jwks())).verify(signer.mint(**overrides))
    assert info.value.reason == reason


def test_header_and_shape_are_checked(signer: Signer) -> None:
    v = verifier(StaticJwks(signer.jwks()))
    hs256 = jwt.encode(signer.claims(), "k" * 32, algorithm="HS256")
    no_kid = jwt.encode(signer.claims(), signer.key, algorithm="ES256")
    for token, reason in [
        (Signer().mint(), "unknown key id"),
        (hs256, "algorithm not allowed (only ES256)"),
        ("", "malformed token"),
        ("a.b", "malformed token"),
        ("a.b.c d", "malformed token"),
        ("x" * 9000, "malformed token"),
        ("e30.e30.e30", "algorithm not allowed (only ES256)"),
        (no_kid, "token header has no kid"),
    ]:
        with pytest.raises(TokenInvalid) as info:
            v.verify(token)
        assert info.value.reason == reason


def test_a_wrong_signature_is_refused(signer: Signer) -> None:
    impostor = Signer(kid=signer.kid)  # same kid, another key
    with pytest.raises(TokenInvalid, match="bad signature"):
        verifier(StaticJwks(signer.jwks())).verify(impostor.mint())


def test_the_pure_function_is_the_same_check(signer: Signer) -> None:
    token = signer.mint()
    verified = verify_plugin_token(
        token, signer.jwks(), audience=AUD, issuer=ISS, revoked_jtis=(), now=NOW
    )
    assert verified.jti == jti_of(token)
    with pytest.raises(TokenInvalid, match="token revoked"):
        verify_plugin_token(
            token, signer.jwks(), audience=AUD, issuer=ISS, revoked_jtis={verified.jti}, now=NOW
        )


def test_jwks_file_is_reread_when_the_kubelet_swaps_it(tmp_path: Path) -> None:
    mount = KubeletMount(tmp_path)
    first, second = Signer(), Signer()
    mount.write({"jwks.json": json.dumps(first.jwks())})
    v = verifier(JwksFile(tmp_path / "jwks.json"))
    v.verify(first.mint())
    with pytest.raises(TokenInvalid, match="unknown key id"):
        v.verify(second.mint())
    mount.write({"jwks.json": json.dumps({"keys": [first.jwk, second.jwk]})})
    v.verify(second.mint())


def test_a_broken_jwks_file_keeps_the_last_good_keys(jwks_file: Path, signer: Signer) -> None:
    v = verifier(JwksFile(jwks_file))
    v.verify(signer.mint())
    jwks_file.write_text('{"keys": [], "keys": []}')  # duplicate keys: not strict JSON
    v.verify(signer.mint())


def test_static_revocations(signer: Signer) -> None:
    token = signer.mint()
    v = verifier(StaticJwks(signer.jwks()), revocations=StaticRevocations([jti_of(token)]))
    with pytest.raises(TokenInvalid, match="revoked"):
        v.verify(token)
    v.verify(signer.mint())


@pytest.mark.parametrize("shape", ["document", "list"])
def test_revocation_file(tmp_path: Path, signer: Signer, shape: str) -> None:
    path = tmp_path / contract.REVOCATIONS_FILE_NAME
    token = signer.mint()

    def write(*jtis: str) -> None:
        if shape == "document":
            expiry = "2099-01-01T00:00:00Z"
            document: object = {"revoked": dict.fromkeys(jtis, expiry), "version": 1}
        else:
            document = list(jtis)
        path.write_text(json.dumps(document))

    write()
    v = verifier(StaticJwks(signer.jwks()), revocations=RevocationFile(path))
    v.verify(token)
    write("other", jti_of(token))
    with pytest.raises(TokenInvalid, match="revoked"):
        v.verify(token)
    path.write_text("{broken")  # a bad update keeps the last good list
    with pytest.raises(TokenInvalid, match="revoked"):
        v.verify(token)


def test_revocation_file_fails_closed_until_read(tmp_path: Path, signer: Signer) -> None:
    v = verifier(StaticJwks(signer.jwks()), revocations=RevocationFile(tmp_path / "missing"))
    with pytest.raises(VerifierUnavailable, match="revocation list unavailable"):
        v.verify(signer.mint())
    (tmp_path / "missing").write_text("[1, 2]")  # not strings: still unusable
    with pytest.raises(VerifierUnavailable, match="revocation list unavailable"):
        v.verify(signer.mint())


def test_parse_revocations() -> None:
    parsed = parse_revocations({"revoked": {"a": "2030-01-01T00:00:00Z"}, "version": 1})
    assert list(parsed) == ["a"]
    assert parsed["a"].year == 2030
    for bad in (
        [],
        {"revoked": {}, "version": 2},
        {"revoked": [], "version": 1},
        {"revoked": {"a": 1}, "version": 1},
        {"revoked": {"": "2030-01-01T00:00:00Z"}, "version": 1},
        {"revoked": {"a": "yesterday"}, "version": 1},
    ):
        with pytest.raises(RevocationListError):
            parse_revocations(bad)


def test_from_env(tmp_path: Path, jwks_file: Path, signer: Signer) -> None:
    (tmp_path / "revoked.json").write_text("[]")
    env = {
        contract.ENV_JWKS_FILE: str(jwks_file),
        contract.ENV_REVOCATIONS_FILE: str(tmp_path / "revoked.json"),
        contract.ENV_AUDIENCE_ALIAS: "custom-audience",
    }
    v = TokenVerifier.from_env(env, clock=fixed_clock())
    assert (v.issuer, v.audience) == (ISS, "custom-audience")
    v.verify(signer.mint(aud="custom-audience"))
    assert not v.running  # nothing to fetch: no thread
    env[contract.ENV_AUDIENCE] = "operator-set"
    assert TokenVerifier.from_env(env).audience == "operator-set"
    defaults = TokenVerifier.from_env({})
    assert (defaults.issuer, defaults.audience) == (
        contract.DEFAULT_ISSUER,
        contract.DEFAULT_AUDIENCE,
    )
    assert defaults.revocations is None
    assert isinstance(defaults.jwks, JwksFile)
    assert str(defaults.jwks.path) == contract.DEFAULT_JWKS_FILE
