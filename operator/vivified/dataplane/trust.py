"""What the core trusts and publishes: the operator's JWKS, the revocation list, its own key.

The operator's ConfigMaps are watched (never the signing-key Secret: the core cannot read
Secrets). Until both have been seen the core is not ready and refuses every token (fail
closed, like the SDK). The core's own ES256 key signs call tokens; its public half is added to
the JWKS the core serves, so targets verify call tokens with the same document they use for
plugin tokens.

Key provisioning: the chart creates a Secret holding one P-256 key (Helm ``genPrivateKey``,
kept across upgrades with ``lookup``) and mounts it into every core pod, so every replica signs
with, and publishes, the same ``kid``. Without a key file (tests, a laptop) a key is generated
in memory, which is only right for a single replica.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from vivified import tokens

__all__ = ["CoreKey", "TrustState"]

logger = logging.getLogger(__name__)


class CoreKey:
    """The core's call-token key, parsed once (PEM parsing costs more than a signature)."""

    def __init__(self, key: tokens.SigningKey) -> None:
        self.kid = key.kid
        self.private_key = key.private_key()
        self.public_jwk = key.public_jwk()

    @classmethod
    def load(cls, path: str, now: datetime) -> CoreKey:
        if not path:
            logger.warning(
                "no VIVIFIED_CORE_SIGNING_KEY_FILE: call tokens are signed with a key made in "
                "memory (fine for one replica; several replicas need the chart's shared key)"
            )
            return cls(tokens.generate_signing_key(now))
        return cls(tokens.load_signing_key(Path(path).read_bytes(), created_at=now))

    def __repr__(self) -> str:
        return f"CoreKey(kid={self.kid!r})"


class TrustState:
    """The latest JWKS and revocation list from the operator's ConfigMaps, plus the core key."""

    def __init__(self, core_key: CoreKey) -> None:
        self.core_key = core_key
        self._operator_jwks: dict[str, Any] | None = None
        self._revocations: tokens.RevocationList | None = None
        self._published: bytes = b""
        #: Bumped on every change: caches of verified tokens key on it.
        self.version = 0

    # -- fed by the watch ----------------------------------------------------------------------
    def set_jwks(self, data: Mapping[str, str] | None) -> None:
        raw = (data or {}).get(tokens.JWKS_CONFIGMAP_KEY)
        try:
            document = json.loads(raw) if raw else None
        except ValueError:
            document = None
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            logger.warning("JWKS ConfigMap unusable; keeping the last good key set")
            return
        self._operator_jwks = document
        self._published = b""
        self.version += 1

    def set_revocations(self, data: Mapping[str, str] | None) -> None:
        try:
            self._revocations = tokens.revocations_from_configmap_data(data)
        except tokens.RevocationListError:
            logger.warning("revocation ConfigMap unusable; keeping the last good list")
            return
        self.version += 1

    # -- read by requests ----------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self._operator_jwks is not None and self._revocations is not None

    @property
    def ready_revocations(self) -> bool:
        return self._revocations is not None

    @property
    def plugin_jwks(self) -> Mapping[str, Any]:
        """Keys that may sign *plugin* tokens (the operator's only, never the core's)."""
        if self._operator_jwks is None:
            raise tokens.TokenInvalid("key set not loaded")
        return self._operator_jwks

    @property
    def revoked(self) -> tokens.RevocationList:
        if self._revocations is None:
            raise tokens.TokenInvalid("revocation list not loaded")
        return self._revocations

    def published_jwks(self) -> bytes:
        """``GET /v1/jwks``: the operator's keys and the core's call-token key."""
        if not self._published:
            keys = list((self._operator_jwks or {"keys": []})["keys"])
            keys.append(self.core_key.public_jwk)
            self._published = json.dumps({"keys": keys}, separators=(",", ":")).encode()
        return self._published

    def revocations_document(self) -> str:
        data = tokens.revocations_to_configmap_data(self.revoked)
        return data[tokens.REVOCATIONS_CONFIGMAP_KEY]
