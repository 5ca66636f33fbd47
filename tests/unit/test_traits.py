"""The trait registry: its data is consistent, and every requirement and conflict is enforced."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from vivified.policy import validate_manifest
from vivified.policy.traits import (
    LEGACY_ALIASES,
    RESERVED_TRAITS,
    TRAITS,
    TraitCategory,
    canonical_traits,
)

SEED: dict[str, Any] = {
    "id": "user-management",
    "name": "User Management Plugin",
    "version": "1.0.0",
    "contracts": ["IdentityPlugin"],
    "traits": ["audit_required"],
    "security": {"authentication_required": True, "data_classification": ["internal"]},
    "compliance": {"audit_level": "detailed"},
}

MINIMUM = {
    "handles_pii", "handles_phi", "handles_financial", "audit_required", "encryption_required",
    "external_service", "gdpr_compliant", "hipaa_compliant", "soc2_compliant", "pci_compliant",
    "read_only", "stateless", "requires_database", "requires_storage", "network_isolated",
    "emits_events", "consumes_events", "ui_component",
}  # fmt: skip


def manifest_with(traits: list[str]) -> dict[str, Any]:
    """A manifest with ``traits`` whose classification, domains and compliance fit them."""
    raw = copy.deepcopy(SEED)
    raw["traits"] = traits
    classes = ["internal"]
    if "handles_pii" in traits:
        classes.append("pii")
    if "handles_phi" in traits:
        classes.append("phi")
        raw["compliance"] = {
            "audit_level": "complete",
            "hipaa_controls": ["164.312(a)"],
            "data_retention_days": 2555,
        }
    if "external_service" in traits:
        raw["allowed_domains"] = ["api.example.org"]
    raw["security"]["data_classification"] = classes
    return raw


def messages(raw: dict[str, Any], field: str = "traits") -> list[str]:
    return [v.message for v in validate_manifest(raw).errors if v.field == field]


# --------------------------------------------------------------------------------------------
# Registry data
# --------------------------------------------------------------------------------------------


def test_registry_contains_the_required_traits() -> None:
    assert set(TRAITS) >= MINIMUM


def test_every_trait_is_well_formed() -> None:
    for name, trait in TRAITS.items():
        assert trait.name == name
        assert isinstance(trait.category, TraitCategory)
        assert trait.label
        assert trait.description
        assert trait.requires <= set(TRAITS), name
        assert trait.conflicts <= set(TRAITS), name
        assert name not in trait.requires
        assert name not in trait.conflicts
        assert not trait.requires & trait.conflicts


def test_conflicts_are_symmetric() -> None:
    for name, trait in TRAITS.items():
        for other in trait.conflicts:
            assert name in TRAITS[other].conflicts, (name, other)


def test_reserved_and_aliases_do_not_collide_with_the_registry() -> None:
    assert not set(RESERVED_TRAITS) & set(TRAITS)
    assert not set(LEGACY_ALIASES) & set(TRAITS)
    assert set(LEGACY_ALIASES.values()) <= set(TRAITS)
    assert {"admin", "system", "root"} <= set(RESERVED_TRAITS)


def test_canonical_traits_resolves_aliases_and_duplicates() -> None:
    assert canonical_traits(["pii", "handles_pii", "audit"]) == ("handles_pii", "audit_required")


# --------------------------------------------------------------------------------------------
# Requirements: each trait alone fails iff it requires something; with its closure it passes
# --------------------------------------------------------------------------------------------

REQUIREMENTS = {
    "handles_pii": {"audit_required"},
    "handles_phi": {"audit_required"},
    "handles_financial": {"audit_required"},
    "gdpr_compliant": {"handles_pii", "audit_required"},
    "hipaa_compliant": {"handles_phi", "audit_required", "encryption_required"},
    "soc2_compliant": {"audit_required", "encryption_required"},
    "pci_compliant": {"handles_financial", "audit_required", "encryption_required"},
}


@pytest.mark.parametrize(("trait", "required"), sorted(REQUIREMENTS.items()))
def test_requirements_are_as_specified(trait: str, required: set[str]) -> None:
    assert TRAITS[trait].requires == required


@pytest.mark.parametrize("trait", sorted(TRAITS))
def test_trait_alone_reports_each_missing_requirement(trait: str) -> None:
    found = messages(manifest_with([trait]))
    requirement_errors = [m for m in found if m.startswith(f"trait {trait!r} requires")]
    if TRAITS[trait].requires:
        assert len(requirement_errors) == 1
        for req in TRAITS[trait].requires:
            assert repr(req) in requirement_errors[0]
    else:
        assert requirement_errors == []


@pytest.mark.parametrize("trait", sorted(TRAITS))
def test_trait_with_its_requirements_is_valid(trait: str) -> None:
    closure = {trait}
    while True:
        more = set().union(*(TRAITS[t].requires for t in closure)) - closure
        if not more:
            break
        closure |= more
    report = validate_manifest(manifest_with(sorted(closure)))
    assert report.errors == (), report.errors


def test_missing_intermediate_requirement_reports_the_whole_chain() -> None:
    # hipaa_compliant -> handles_phi -> audit_required: all reported in one pass.
    found = messages(manifest_with(["hipaa_compliant"]))
    assert any("'audit_required'" in m and "'handles_phi'" in m for m in found)


# --------------------------------------------------------------------------------------------
# Conflicts
# --------------------------------------------------------------------------------------------

PAIRS = sorted({tuple(sorted((a, b))) for a, t in TRAITS.items() for b in t.conflicts})


@pytest.mark.parametrize(("first", "second"), PAIRS)
def test_conflicting_traits_are_reported_once(first: str, second: str) -> None:
    raw = manifest_with(["audit_required", first, second])
    conflicts = [m for m in messages(raw) if "conflict" in m]
    assert conflicts == [f"traits {first!r} and {second!r} conflict; remove one of them"]


def test_registry_has_conflicts() -> None:
    assert ("external_service", "network_isolated") in PAIRS
    assert ("requires_storage", "stateless") in PAIRS


# --------------------------------------------------------------------------------------------
# Aliases, reserved names, unknown names
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("alias", "target"), sorted(LEGACY_ALIASES.items()))
def test_legacy_alias_warns_and_counts_as_its_target(alias: str, target: str) -> None:
    companions = sorted(TRAITS[target].requires)
    raw = manifest_with([*companions, target])  # classification etc. fitting the target
    raw["traits"] = [*companions, alias]
    report = validate_manifest(raw)
    assert report.errors == (), report.errors
    alias_field = f"traits[{len(companions)}]"
    assert [w.field for w in report.warnings if "legacy alias" in w.message] == [alias_field]


@pytest.mark.parametrize("name", sorted(RESERVED_TRAITS))
def test_reserved_trait_message_says_why(name: str) -> None:
    found = [
        v.message
        for v in validate_manifest(manifest_with(["audit_required", name])).errors
        if v.field == "traits[1]"
    ]
    assert found == [
        f"trait {name!r} is reserved and not allowed for plugins: it {RESERVED_TRAITS[name]}; "
        "remove it"
    ]


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [("audit_requred", "audit_required"), ("external_services", "external_service"),
     ("handles-pii", "handles_pii"), ("HIPAA_compliant", "hipaa_compliant")],
)  # fmt: skip
def test_unknown_trait_suggests_the_closest(typo: str, suggestion: str) -> None:
    found = [
        v.message
        for v in validate_manifest(manifest_with(["audit_required", typo])).errors
        if v.field == "traits[1]"
    ]
    assert len(found) == 1
    assert found[0].endswith(f"did you mean {suggestion!r}?")
