"""Whatever ``verify`` / ``verify_authorization`` are given, the answer is a verified token or
``TokenInvalid``: never another exception (``'Bearer \\udcff'`` once raised UnicodeEncodeError)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdk_support import AUD, ISS, Signer, fixed_clock
from vivified_sdk import StaticJwks, TokenInvalid, TokenVerifier

SIGNER = Signer()
VERIFIER = TokenVerifier(StaticJwks(SIGNER.jwks()), audience=AUD, issuer=ISS, clock=fixed_clock())
VALID = SIGNER.mint()

# Any text, including lone surrogates and control characters.
_text = st.text(st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF))
_b64 = st.binary(max_size=300).map(lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode())
# Tokens that pass the shape check, so PyJWT and the claim checks see odd content too.
_shaped = st.tuples(_b64, _b64, _b64).map(".".join)
# Mutations of a real token: one character changed, or segments swapped.
_mutated = st.tuples(st.integers(0, len(VALID) - 1), st.characters()).map(
    lambda m: VALID[: m[0]] + m[1] + VALID[m[0] + 1 :]
)
_anything = st.one_of(
    _text, _shaped, _mutated, st.binary(), st.none(), st.integers(), st.lists(st.text())
)


def _only_token_invalid(call: object) -> None:
    try:
        result = call()  # type: ignore[operator]
    except TokenInvalid:
        return
    assert result.plugin_id == "billing"


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(_anything)
def test_verify_raises_only_token_invalid(value: object) -> None:
    _only_token_invalid(lambda: VERIFIER.verify(value))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_anything, st.builds("Bearer {}".format, _anything)))
def test_verify_authorization_raises_only_token_invalid(value: object) -> None:
    _only_token_invalid(lambda: VERIFIER.verify_authorization(value))


@pytest.mark.parametrize(
    "value",
    [
        "Bearer \udcff",
        "Bearer \x00\x01\x02",
        "Bearer " + "é" * 10,
        "Bearer " + "a" * 5_000_000,
        "Bearer " + ".".join(["a" * 3000] * 3),
        "Bearer " + VALID.replace(".", "\udcff", 1),
        "Bearer " + VALID + "\x00",
        b"Bearer abc",
        "Bearer e30.e30.e30",
        "Bearer eyJhbGciOiJFUzI1NiIsImtpZCI6W119.e30.e30",  # kid is a list
    ],
)
def test_known_nasty_inputs(value: object) -> None:
    with pytest.raises(TokenInvalid):
        VERIFIER.verify_authorization(value)
