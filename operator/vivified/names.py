"""Name rules, a leaf module: DNS-1123 names, label keys and values, domain normalisation.

The manifest model, the policy, the settings and the renderer all need the same answers to
"is this a valid Kubernetes name / label / host name?"; keeping them here, importing nothing
from the package, is what lets each of those import it without an import cycle.
"""

from __future__ import annotations

import re

import idna

MAX_NAME_LENGTH = 253
MAX_LABEL_LENGTH = 63

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

#: The end of the reasons that a host name extracted from the input could improve.
HOST_ONLY = "list only the host name"


def is_dns1123_label(text: str) -> bool:
    """A namespace or Service name: lowercase alphanumerics and '-', at most 63."""
    return len(text) <= MAX_LABEL_LENGTH and bool(_DNS1123_LABEL.match(text))


def is_dns1123_subdomain(text: str) -> bool:
    """Most object names: dot-separated DNS-1123 labels, at most 253."""
    return len(text) <= MAX_NAME_LENGTH and bool(_DNS1123_SUBDOMAIN.match(text))


def is_label_key(key: str) -> bool:
    """``[prefix/]name``: a DNS subdomain prefix, and a name of at most 63 characters."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or not is_dns1123_subdomain(prefix)):
        return False
    return 0 < len(name) <= MAX_LABEL_LENGTH and bool(_LABEL_NAME.match(name))


def is_label_value(value: str) -> bool:
    """Empty, or at most 63 alphanumerics, '-', '_' and '.', alphanumeric at both ends."""
    return len(value) <= MAX_LABEL_LENGTH and bool(_LABEL_VALUE.match(value))


def host_syntax_problem(name: str) -> str | None:
    """Why ``name`` is not shaped like a bare host name (before IDNA), or None."""
    if any(c.isspace() for c in name):
        return "contains whitespace"
    if not name.isprintable():
        return "contains control or non-printable characters"
    if "*" in name:
        return "contains a wildcard; wildcards are not allowed, list each host name explicitly"
    if _SCHEME_RE.match(name) or name.lower().startswith(("http:", "https:")):
        return f"is a URL; {HOST_ONLY}"
    if "@" in name:
        return f"contains user info ('@'); {HOST_ONLY}"
    for char, what in (
        ("/", "a path"),
        ("?", "a query"),
        ("#", "a fragment"),
        ("\\", "a backslash"),
    ):
        if char in name:
            return f"contains {what}; {HOST_ONLY}"
    return None


def to_a_label(name: str) -> tuple[str | None, str | None]:
    """(lowercase A-label form, None) under UTS #46 / IDNA 2008, or (None, reason)."""
    try:
        encoded = idna.encode(name, uts46=True, transitional=False).decode("ascii")
    except idna.IDNAError as exc:
        return None, f"is not a valid domain name ({_idna_message(exc)})"
    except (UnicodeError, ValueError) as exc:
        return None, f"is not a valid domain name ({type(exc).__name__})"
    return encoded.lower(), None


def _idna_message(exc: Exception) -> str:
    text = str(exc)
    if "Empty Label" in text:
        return "empty label: leading, trailing or consecutive dots"
    if "too long" in text.lower():
        return f"a label is longer than {MAX_LABEL_LENGTH} characters or the name is too long"
    if len(text) > 120:
        text = text[:117] + "..."
    return text


def normalize_domain(name: object) -> str | None:
    """The canonical (lowercase A-label) form of an acceptable host name, else ``None``.

    Only the syntax is checked here (no blocked list); ``policy.check_domain`` is the policy.
    """
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_LENGTH * 4:
        return None
    if host_syntax_problem(name) is not None:
        return None
    ascii_name, _ = to_a_label(name)
    return ascii_name
