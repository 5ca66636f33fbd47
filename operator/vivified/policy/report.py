"""The result of a policy check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vivified.violations import Violation

if TYPE_CHECKING:
    from vivified.manifest import PluginManifest
    from vivified.resource import PluginSpec


@dataclass(frozen=True)
class ValidationReport:
    """Every problem found in one manifest (or VivifiedPlugin spec), sorted by field.

    ``manifest`` is the parsed model whenever the manifest is *structurally* valid, even if
    policy errors remain; ``spec`` likewise for :func:`validate_spec`. A report without errors
    always carries its ``manifest``.
    """

    errors: tuple[Violation, ...] = ()
    warnings: tuple[Violation, ...] = ()
    manifest: PluginManifest | None = None
    spec: PluginSpec | None = None

    @property
    def valid(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"valid", "errors": [{field, message}], "warnings": [...]}``."""
        return {
            "valid": self.valid,
            "errors": [v.to_dict() for v in self.errors],
            "warnings": [v.to_dict() for v in self.warnings],
        }
