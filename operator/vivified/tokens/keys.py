"""ES256 (ECDSA P-256 / SHA-256) signing keys, identified by their RFC 7638 thumbprint."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from vivified_sdk import contract

from .timeutil import require_aware

__all__ = [
    "ALGORITHM",
    "CURVE",
    "KeyMaterialError",
    "SigningKey",
    "b64url",
    "b64url_decode",
    "ec_public_jwk",
    "generate_signing_key",
    "jwk_thumbprint",
    "load_signing_key",
    "public_jwk_members",
]

ALGORITHM = contract.SIGNING_ALGORITHM
CURVE = "P-256"
_COORD_BYTES = 32


class KeyMaterialError(ValueError):
    """Key material is unusable. Messages never contain the material itself."""


def b64url(data: bytes) -> str:
    """base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _public_numbers_jwk(public_key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    numbers = public_key.public_numbers()
    return {
        "crv": CURVE,
        "kty": "EC",
        "x": b64url(numbers.x.to_bytes(_COORD_BYTES, "big")),
        "y": b64url(numbers.y.to_bytes(_COORD_BYTES, "big")),
    }


def jwk_thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638 thumbprint of an EC JWK: SHA-256 over the required members, base64url."""
    required = {k: jwk[k] for k in ("crv", "kty", "x", "y")}
    canonical = json.dumps(required, sort_keys=True, separators=(",", ":"))
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def ec_public_jwk(kid: str, crv: str, x: str, y: str) -> dict[str, str]:
    """The public JWK published in JWKS for one key."""
    return {"alg": ALGORITHM, "crv": crv, "kid": kid, "kty": "EC", "use": "sig", "x": x, "y": y}


def _load_private_key(pem: bytes | str) -> ec.EllipticCurvePrivateKey:
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnicodeError):
        # Never echo the input: it is (or was meant to be) private key material.
        raise KeyMaterialError("signing key is not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise KeyMaterialError("signing key must be an EC P-256 (secp256r1) key for ES256")
    return key


@dataclass(frozen=True)
class SigningKey:
    """The private half of a signing key. ``repr``/``str`` never show ``private_pem``."""

    kid: str
    private_pem: bytes = field(repr=False)
    created_at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "created_at", require_aware(self.created_at, "created_at"))
        if not self.kid:
            raise KeyMaterialError("kid must not be empty")

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r}, created_at={self.created_at.isoformat()!r})"

    __str__ = __repr__

    def private_key(self) -> ec.EllipticCurvePrivateKey:
        return _load_private_key(self.private_pem)

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self.private_key().public_key()

    def public_jwk(self) -> dict[str, str]:
        """Public JWK (kid, alg ES256, use sig, kty EC, crv, x, y)."""
        jwk = _public_numbers_jwk(self.public_key())
        return ec_public_jwk(self.kid, jwk["crv"], jwk["x"], jwk["y"])


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )


def generate_signing_key(now: datetime) -> SigningKey:
    """A fresh P-256 key; ``kid`` is its RFC 7638 thumbprint, ``created_at`` is ``now``."""
    key = ec.generate_private_key(ec.SECP256R1())
    return SigningKey(
        kid=jwk_thumbprint(_public_numbers_jwk(key.public_key())),
        private_pem=_pem(key),
        created_at=require_aware(now),
    )


def load_signing_key(
    pem: bytes | str, *, created_at: datetime, kid: str | None = None
) -> SigningKey:
    """Load an unencrypted PEM (PKCS#8 or SEC1) P-256 private key.

    ``kid`` defaults to the RFC 7638 thumbprint. The PEM is normalised to PKCS#8.
    Raises ``KeyMaterialError`` (a ``ValueError``) without echoing the input.
    """
    key = _load_private_key(pem)
    thumbprint = jwk_thumbprint(_public_numbers_jwk(key.public_key()))
    return SigningKey(kid=kid or thumbprint, private_pem=_pem(key), created_at=created_at)


def public_jwk_members(jwk: dict[str, Any]) -> tuple[str, str, str]:
    """Validate an EC P-256 public JWK and return ``(crv, x, y)``."""
    if jwk.get("kty") != "EC" or jwk.get("crv") != CURVE:
        raise KeyMaterialError("public key must be an EC P-256 JWK")
    x, y = jwk.get("x"), jwk.get("y")
    if not isinstance(x, str) or not isinstance(y, str):
        raise KeyMaterialError("public JWK needs string x and y")
    try:
        xb, yb = b64url_decode(x), b64url_decode(y)
        ec.EllipticCurvePublicNumbers(
            int.from_bytes(xb, "big"), int.from_bytes(yb, "big"), ec.SECP256R1()
        ).public_key()
    except (ValueError, TypeError):
        raise KeyMaterialError("public JWK x/y are not a point on P-256") from None
    if len(xb) != _COORD_BYTES or len(yb) != _COORD_BYTES:
        raise KeyMaterialError("public JWK x/y must be 32 bytes each")
    return CURVE, x, y
