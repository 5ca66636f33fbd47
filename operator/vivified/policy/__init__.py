"""Security policy for plugin manifests: one entry point that returns every violation at once.

Public surface (used by the CLI, the admission webhook and the operator alike):

    report = validate_manifest(raw_mapping, config=PolicyConfig())
    report.valid            -> bool (no errors)
    report.errors           -> tuple[Violation, ...]   each has .field (dotted path) and .message
    report.warnings         -> tuple[Violation, ...]   e.g. legacy trait aliases
    report.manifest         -> PluginManifest | None   the parsed model when structurally valid

    report = validate_spec(raw_spec)   # a VivifiedPlugin's .spec; paths start with "spec."
    report.spec             -> PluginSpec | None

Field paths are dotted, list indices in brackets: ``security.data_classification[1]``.
Modules: ``traits`` (registry), ``domains`` (``check_domain``), ``rules`` (semantic rules),
``structure`` (pydantic errors with did-you-mean), ``config`` (``PolicyConfig``).
"""

from vivified.policy.config import PolicyConfig, default_config
from vivified.policy.domains import check_domain, normalize_domain
from vivified.policy.report import ValidationReport
from vivified.policy.traits import (
    LEGACY_ALIASES,
    RESERVED_TRAITS,
    TRAITS,
    Trait,
    TraitCategory,
    canonical_traits,
)
from vivified.policy.validate import validate_manifest, validate_spec
from vivified.violations import Violation

__all__ = [
    "LEGACY_ALIASES",
    "RESERVED_TRAITS",
    "TRAITS",
    "PolicyConfig",
    "Trait",
    "TraitCategory",
    "ValidationReport",
    "Violation",
    "canonical_traits",
    "check_domain",
    "default_config",
    "normalize_domain",
    "validate_manifest",
    "validate_spec",
]
