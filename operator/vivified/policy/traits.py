"""The trait registry: every trait a plugin may declare, what it requires and conflicts with.

This is data, not logic. The rules that use it live in :mod:`vivified.policy.rules`.

* ``TRAITS`` — the registry proper, keyed by trait name.
* ``RESERVED_TRAITS`` — names no plugin may claim (privileged roles), with the reason.
* ``LEGACY_ALIASES`` — old spellings still accepted, with a warning, mapped to the current name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


class TraitCategory(StrEnum):
    """What kind of statement a trait makes about a plugin."""

    DATA = "data"  # which sensitive data it processes
    SECURITY = "security"  # controls the platform must apply
    COMPLIANCE = "compliance"  # regulatory regimes it claims to satisfy
    CAPABILITY = "capability"  # what it does / talks to
    RUNTIME = "runtime"  # what it needs to run
    UI = "ui"  # what it contributes to the admin UI


@dataclass(frozen=True)
class Trait:
    """One entry of the registry."""

    name: str
    category: TraitCategory
    label: str
    description: str
    requires: frozenset[str] = frozenset()
    conflicts: frozenset[str] = frozenset()
    sensitive: bool = False


def _t(
    name: str,
    category: TraitCategory,
    label: str,
    description: str,
    *,
    requires: Iterable[str] = (),
    conflicts: Iterable[str] = (),
    sensitive: bool = False,
) -> Trait:
    return Trait(
        name, category, label, description, frozenset(requires), frozenset(conflicts), sensitive
    )


_C = TraitCategory
_REGISTRY: tuple[Trait, ...] = (
    # --- data -------------------------------------------------------------------------------
    _t("handles_pii", _C.DATA, "PII Handler",
       "Processes personally identifiable information.",
       requires=["audit_required"], sensitive=True),
    _t("handles_phi", _C.DATA, "PHI Handler",
       "Processes protected health information (HIPAA).",
       requires=["audit_required"], sensitive=True),
    _t("handles_financial", _C.DATA, "Financial Data Handler",
       "Processes payment or other financial data.",
       requires=["audit_required"], sensitive=True),
    _t("handles_confidential", _C.DATA, "Confidential Data Handler",
       "Processes confidential business data.", sensitive=True),
    # --- security ---------------------------------------------------------------------------
    _t("audit_required", _C.SECURITY, "Audit Required",
       "Every action involving the plugin is written to the audit log."),
    _t("encryption_required", _C.SECURITY, "Encryption Required",
       "Data handled by the plugin must be encrypted in transit and at rest."),
    _t("network_isolated", _C.SECURITY, "Network Isolated",
       "The plugin talks only to the platform; no external network access.",
       conflicts=["external_service"]),
    # --- compliance -------------------------------------------------------------------------
    _t("gdpr_compliant", _C.COMPLIANCE, "GDPR Compliant",
       "Handles personal data under GDPR rules.",
       requires=["handles_pii", "audit_required"]),
    _t("hipaa_compliant", _C.COMPLIANCE, "HIPAA Compliant",
       "Handles health data under HIPAA rules.",
       requires=["handles_phi", "audit_required", "encryption_required"]),
    _t("soc2_compliant", _C.COMPLIANCE, "SOC 2 Compliant",
       "Operates under SOC 2 controls.",
       requires=["audit_required", "encryption_required"]),
    _t("pci_compliant", _C.COMPLIANCE, "PCI DSS Compliant",
       "Handles cardholder data under PCI DSS.",
       requires=["handles_financial", "audit_required", "encryption_required"]),
    # --- capability -------------------------------------------------------------------------
    _t("external_service", _C.CAPABILITY, "External Service",
       "Calls external APIs through the proxy lane; needs allowed domains.",
       conflicts=["network_isolated"]),
    _t("read_only", _C.CAPABILITY, "Read Only",
       "Never modifies platform or user data."),
    _t("emits_events", _C.CAPABILITY, "Event Producer",
       "Publishes canonical events on the event bus."),
    _t("consumes_events", _C.CAPABILITY, "Event Consumer",
       "Subscribes to canonical events on the event bus."),
    _t("sends_notifications", _C.CAPABILITY, "Notification Sender",
       "Sends messages to people (email, SMS, chat)."),
    _t("webhook_receiver", _C.CAPABILITY, "Webhook Receiver",
       "Receives callbacks from external systems via the platform."),
    # --- runtime ----------------------------------------------------------------------------
    _t("stateless", _C.RUNTIME, "Stateless",
       "Keeps no state between requests; safe to scale horizontally.",
       conflicts=["requires_storage"]),
    _t("requires_database", _C.RUNTIME, "Needs Database",
       "Needs a database provided by the platform."),
    _t("requires_storage", _C.RUNTIME, "Needs Storage",
       "Needs persistent storage provided by the platform.",
       conflicts=["stateless"]),
    # --- ui ---------------------------------------------------------------------------------
    _t("ui_component", _C.UI, "UI Component",
       "Contributes pages or widgets to the admin UI."),
)  # fmt: skip

TRAITS: Mapping[str, Trait] = MappingProxyType({t.name: t for t in _REGISTRY})

#: Names a plugin may never claim: they denote platform roles, not plugin properties.
RESERVED_TRAITS: Mapping[str, str] = MappingProxyType(
    {
        "admin": "grants platform administration",
        "system": "is reserved for platform components",
        "root": "implies unrestricted privileges",
        "superuser": "implies unrestricted privileges",
        "privileged": "implies elevated privileges",
    }
)

#: Old spellings accepted with a warning, mapped to the registry name.
LEGACY_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "pii": "handles_pii",
        "phi": "handles_phi",
        "external": "external_service",
        "audit": "audit_required",
        "encrypted": "encryption_required",
    }
)


def canonical_trait(name: str) -> str:
    """The registry name for ``name``: resolves legacy aliases, otherwise returns it as is."""
    return LEGACY_ALIASES.get(name, name)


def canonical_traits(names: Iterable[str]) -> tuple[str, ...]:
    """Registry names for ``names`` (aliases resolved, duplicates dropped, order kept)."""
    seen: dict[str, None] = {}
    for name in names:
        seen.setdefault(canonical_trait(name), None)
    return tuple(seen)
