"""Configuration of the manifest policy (what an operator installation may tune)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import idna

from vivified.event_types import EventTypeRegistry, registry_from_env

#: At most this many errors are returned by default (hostile input can produce thousands).
DEFAULT_MAX_ERRORS = 200


def parse_blocked_domains(lines: Iterable[str]) -> frozenset[str]:
    """Parse blocked-list text: one name per line, ``#`` starts a comment, blanks ignored.

    Names are lower-cased and IDNA-normalised where possible (IP entries kept verbatim).
    """
    out: set[str] = set()
    for line in lines:
        entry = line.split("#", 1)[0].strip().lower().rstrip(".")
        if not entry:
            continue
        out.add(_normalize_blocked_entry(entry))
    return frozenset(out)


def _normalize_blocked_entry(entry: str) -> str:
    try:
        return idna.encode(entry, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        return entry


def load_default_blocked_domains() -> frozenset[str]:
    """The package's ``data/blocked_domains.txt``."""
    text = resources.files("vivified").joinpath("data/blocked_domains.txt").read_text("utf-8")
    return parse_blocked_domains(text.splitlines())


@dataclass(frozen=True)
class PolicyConfig:
    """Tunable policy settings.

    ``blocked_domains``: lower-case domain names (A-labels); each blocks itself and all of its
    subdomains. Defaults to the packaged ``vivified/data/blocked_domains.txt``. Pass
    ``PolicyConfig(blocked_domains=PolicyConfig.default().blocked_domains | {"evil.example"})``
    to extend it, or :meth:`from_blocked_list` to use your own list text.

    ``event_types``: the event-type registry that ``events.publishes``/``subscribes`` are
    checked against (:mod:`vivified.event_types`).

    ``max_errors``: cap on the number of errors (and, separately, warnings) in a report; when
    exceeded, the report ends with a violation saying how many more there were.
    """

    blocked_domains: frozenset[str] = field(default_factory=load_default_blocked_domains)
    max_errors: int = DEFAULT_MAX_ERRORS
    #: Event types manifests may declare (packaged + ``$VIVIFIED_EVENT_TYPES_FILE``).
    event_types: EventTypeRegistry = field(default_factory=registry_from_env)

    def __post_init__(self) -> None:
        # Accept any spelling (case, trailing dot, Unicode): store the canonical form.
        normalized = parse_blocked_domains(self.blocked_domains)
        object.__setattr__(self, "blocked_domains", normalized)

    @classmethod
    def default(cls) -> PolicyConfig:
        return default_config()

    @classmethod
    def from_blocked_list(cls, text: str, *, max_errors: int = DEFAULT_MAX_ERRORS) -> PolicyConfig:
        """A config whose blocked list is parsed from ``text`` (blocked_domains.txt format)."""
        return cls(blocked_domains=parse_blocked_domains(text.splitlines()), max_errors=max_errors)


@lru_cache(maxsize=1)
def default_config() -> PolicyConfig:
    """The shared default configuration (packaged blocked list), loaded once."""
    return PolicyConfig()
