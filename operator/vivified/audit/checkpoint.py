"""Signed checkpoints: (writer, sequence, head hash, time), kept outside the trail.

A chain proves nothing about records cut off its end; a checkpoint signed with a key the
platform owns, published somewhere the trail's writer cannot rewrite, does: a trail whose chain
ends before a checkpoint, or holds a different hash at the checkpoint's sequence, was cut or
rewritten. Ed25519 (via ``cryptography``): small keys, deterministic signatures, one algorithm.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vivified.audit.chain import Head, canonical
from vivified.audit.record import format_time

CHECKPOINT_VERSION: Final = 1


def key_id(public: Ed25519PublicKey) -> str:
    """A short stable name for a public key: the first 16 hex digits of its SHA-256."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class Signer:
    """The platform's checkpoint key."""

    key: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> Signer:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, data: bytes) -> Signer:
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the audit checkpoint key must be an Ed25519 private key")
        return cls(key)

    def private_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def kid(self) -> str:
        return key_id(self.key.public_key())

    def checkpoint(self, head: Head, now: datetime) -> dict[str, object]:
        """A signed checkpoint of ``head``."""
        unsigned: dict[str, object] = {
            "v": CHECKPOINT_VERSION,
            "writer": head.writer,
            "seq": head.seq,
            "head": head.hash,
            "time": format_time(now),
            "kid": self.kid,
        }
        signature = self.key.sign(canonical(unsigned))
        return {**unsigned, "sig": base64.urlsafe_b64encode(signature).decode().rstrip("=")}


def load_public_key(data: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM (a private key PEM is accepted and reduced to its half)."""
    if b"PRIVATE KEY" in data:
        return Signer.from_pem(data).key.public_key()
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the audit checkpoint key must be an Ed25519 public key")
    return key


def signature_valid(checkpoint: Mapping[str, object], public: Ed25519PublicKey) -> bool:
    """Whether ``checkpoint`` was signed by ``public``'s private half, unaltered."""
    sig = checkpoint.get("sig")
    if not isinstance(sig, str) or checkpoint.get("kid") != key_id(public):
        return False
    unsigned = {k: v for k, v in checkpoint.items() if k != "sig"}
    try:
        raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
        public.verify(raw, canonical(unsigned))
    except (InvalidSignature, ValueError):
        return False
    return True
