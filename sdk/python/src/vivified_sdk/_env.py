"""Reading the contract's environment variables (blank counts as unset)."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["first", "optional"]


def first(environ: Mapping[str, str], names: tuple[str, ...], default: str) -> str:
    """The first of ``names`` set to a non-blank value, else ``default``."""
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return value
    return default


def optional(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None
