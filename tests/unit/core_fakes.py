"""Fakes for the core's tests: an operator key ring, plugin records, a ready trust state."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vivified import tokens
from vivified.audit.hook import MemoryAuditor
from vivified.dataplane.context import CoreContext, NullHeartbeats
from vivified.dataplane.directory import PluginRecord, StaticDirectory
from vivified.dataplane.settings import CoreSettings
from vivified.dataplane.trust import CoreKey, TrustState
from vivified.manifest import PluginManifest
from vivified.resource import Health, Phase

NOW = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)
ISSUER = "vivified-operator"
AUDIENCE = "vivified-platform"


def manifest(
    plugin_id: str,
    *,
    dependencies: Iterable[str] = (),
    traits: Iterable[str] = (),
    data_classification: Iterable[str] = ("internal",),
    endpoints: dict[str, str] | None = None,
) -> PluginManifest:
    return PluginManifest.model_validate(
        {
            "id": plugin_id,
            "name": plugin_id,
            "version": "1.0.0",
            "contracts": ["StoragePlugin"],
            "traits": list(traits) or ["audit_required"],
            "dependencies": list(dependencies),
            "endpoints": endpoints if endpoints is not None else {"health": "/health"},
            "security": {
                "authentication_required": True,
                "data_classification": list(data_classification),
            },
            "compliance": {"audit_level": "basic"},
        },
    )


def record(
    m: PluginManifest,
    *,
    phase: Phase = "Active",
    health: Health = "healthy",
    enabled: bool = True,
    namespace: str = "team-a",
) -> PluginRecord:
    return PluginRecord(
        plugin_id=m.id,
        namespace=namespace,
        manifest=m,
        phase=phase,
        health=health,
        enabled=enabled,
        port=8000,
    )


@dataclass
class World:
    """An operator identity, a directory, and the core context that trusts them."""

    keyring: tokens.KeyRing = field(
        default_factory=lambda: tokens.KeyRing(active=tokens.generate_signing_key(NOW))
    )
    directory: StaticDirectory = field(default_factory=StaticDirectory)
    revoked: tokens.RevocationList = field(default_factory=tokens.RevocationList)
    auditor: MemoryAuditor = field(default_factory=MemoryAuditor)
    heartbeats: NullHeartbeats = field(default_factory=NullHeartbeats)
    settings: CoreSettings = field(default_factory=CoreSettings)
    now: datetime = NOW

    def __post_init__(self) -> None:
        self.core_key = CoreKey(tokens.generate_signing_key(NOW))
        self.trust = TrustState(self.core_key)
        self.trust.set_jwks(tokens.jwks_to_configmap_data(tokens.jwks(self.keyring)))
        self.trust.set_revocations(tokens.revocations_to_configmap_data(self.revoked))
        self.ctx = CoreContext(
            settings=self.settings,
            directory=self.directory,
            trust=self.trust,
            auditor=self.auditor,
            heartbeats=self.heartbeats,
            clock=lambda: self.now,
        )

    def add(self, m: PluginManifest, **kwargs: Any) -> PluginRecord:
        r = record(m, **kwargs)
        self.directory.put(r)
        return r

    def token(self, m: PluginManifest) -> tokens.MintedToken:
        return tokens.mint_plugin_token(
            self.keyring, m, issuer=ISSUER, audience=AUDIENCE, ttl_seconds=3600, now=self.now
        )

    def revoke(self, minted: tokens.MintedToken) -> None:
        self.revoked = tokens.revoke(self.revoked, minted.jti, minted.expires_at)
        self.trust.set_revocations(tokens.revocations_to_configmap_data(self.revoked))

    def bearer(self, m: PluginManifest) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(m).token}"}

    def operator_token(self, **kwargs: Any) -> tokens.MintedToken:
        """The operator's own token (for the core's operator-only routes)."""
        return tokens.mint_operator_token(self.keyring, issuer=ISSUER, now=self.now, **kwargs)

    def operator_bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.operator_token().token}"}
