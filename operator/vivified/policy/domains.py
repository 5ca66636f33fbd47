"""Vetting of ``allowed_domains`` entries: parse the host name properly, never by substring.

``check_domain(name, config)`` returns ``None`` for an acceptable name, or a sentence saying why
it is rejected. Rules, in order (the first that fails is reported):

1. A string, non-empty, at most 253 characters, no whitespace or control characters.
2. Only a host name: no URL scheme, path, query, fragment, user info, port or wildcard.
3. No IP address literal in any form (dotted, bracketed IPv6, IPv4-mapped IPv6, and the
   numeric/hex/octal shorthands ``2130706433``, ``0x7f.1``, ``127.1`` that resolvers accept).
   Egress is granted per DNS name, so an address literal is never useful; the message names
   the address class (loopback, private, link-local/cloud metadata, ...) to explain the risk.
4. A valid internationalised domain name under UTS #46 / IDNA 2008 (``bücher.example`` is
   accepted and normalised to ``xn--bcher-kva.example``): labels of 1-63 letters, digits and
   hyphens, not starting or ending with a hyphen, at least two labels, no trailing dot, and a
   top-level label that is not all digits.
5. Not a special-use or internal name: ``localhost``, ``*.localhost``, ``*.local``,
   ``*.internal`` (e.g. ``metadata.google.internal``), ``*.localdomain``, ``*.arpa``
   (including ``home.arpa``), ``*.onion``, ``*.bit``, ``*.invalid``, ``*.alt``, the common
   private suffixes ``*.lan``, ``*.intranet``, ``*.corp``, ``*.home``, ``*.private``, and
   Kubernetes cluster names (``*.svc``, ``*.cluster.local``, ``kubernetes.default``).
6. Not on the blocked list (``PolicyConfig.blocked_domains``; by default the package's
   ``data/blocked_domains.txt``). An entry blocks the name itself and every subdomain.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from vivified.names import (
    HOST_ONLY,
    MAX_LABEL_LENGTH,
    MAX_NAME_LENGTH,
    host_syntax_problem,
    normalize_domain,
    to_a_label,
)
from vivified.policy.config import PolicyConfig, default_config

__all__ = ["blocked_entry", "check_domain", "normalize_domain"]

#: Suffixes (without leading dot) whose names never denote a public external service.
SPECIAL_USE_SUFFIXES: dict[str, str] = {
    "localhost": "is a loopback name",
    "local": "is a link-local (mDNS) or cluster-internal name",
    "internal": "is a private/internal name (e.g. cloud metadata)",
    "localdomain": "is a local name",
    "arpa": "is infrastructure (reverse DNS / home.arpa), not a service",
    "onion": "is a Tor hidden-service name",
    "bit": "is a Namecoin name that public DNS cannot resolve",
    "invalid": "is reserved and never resolves",
    "alt": "is reserved for non-DNS name systems",
    "lan": "is a private network name",
    "intranet": "is a private network name",
    "corp": "is a private network name",
    "home": "is a private network name",
    "private": "is a private network name",
    "svc": "is a Kubernetes cluster-internal service name",
}

#: Exact names that reach the Kubernetes API server from inside a cluster.
CLUSTER_NAMES = frozenset({"kubernetes.default", "kubernetes.default.svc"})

_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_HEX_LABEL_RE = re.compile(r"^0x[0-9a-f]*$")


# --------------------------------------------------------------------------------------------
# IP literals
# --------------------------------------------------------------------------------------------


def _ip_class(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if isinstance(addr, ipaddress.IPv6Address):
        mapped = addr.ipv4_mapped or addr.sixtofour
        if mapped is not None:
            return f"an IPv4-mapped address of {mapped}, {_ip_class(mapped)}"
    if addr.is_loopback:
        return "a loopback address"
    if addr.is_link_local:
        return "a link-local address, the range of cloud metadata services"
    if addr.is_unspecified:
        return "the unspecified address"
    if addr.is_multicast:
        return "a multicast address"
    if addr.is_reserved:
        return "a reserved address"
    if addr.is_private:
        return "a private-network address"
    if not addr.is_global:
        return "a non-public address"
    return "a public address"


def _as_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    candidate = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    candidate = candidate.split("%", 1)[0]  # IPv6 zone id
    try:
        return ipaddress.ip_address(candidate)
    except ValueError:
        pass
    # Shorthand IPv4 forms that inet_aton (and thus many resolvers and HTTP clients) accept:
    # 2130706433, 0x7f000001, 127.1, 0x7f.1, 0177.0.0.1 ...
    if candidate.isascii() and candidate and all(c.isalnum() or c == "." for c in candidate):
        value = _inet_aton(candidate)
        return None if value is None else ipaddress.IPv4Address(value)
    return None


def _inet_aton(text: str) -> int | None:
    """The IPv4 address BSD ``inet_aton`` reads from ``text`` (1 to 4 parts), else None.

    Each part is decimal, octal (leading 0) or hex (0x); the last part fills the bytes left,
    so ``127.1`` is 127.0.0.1 and ``2130706433`` is too. Written out to keep sockets out of the
    pure policy.
    """
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values: list[int] = []
    for part in parts:
        lowered = part.lower()
        try:
            if lowered.startswith("0x"):
                values.append(int(lowered[2:], 16))
            elif len(lowered) > 1 and lowered.startswith("0"):
                values.append(int(lowered, 8))
            else:
                values.append(int(lowered, 10))
        except ValueError:
            return None
    *head, last = values
    room = 8 * (4 - len(head))
    if any(v > 255 for v in head) or last >= 1 << room:
        return None
    result = 0
    for v in head:
        result = (result << 8) | v
    return (result << room) | last


def ip_literal(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address ``text`` denotes when it is an IP literal in any form resolvers accept
    (bracketed IPv6, numeric shorthands), else ``None``. The proxy lane uses the same test."""
    return _as_ip(text)


def _ip_reason(addr: ipaddress.IPv4Address | ipaddress.IPv6Address, shown: str) -> str:
    return (
        f"{shown!s} is an IP address ({_ip_class(addr)}); list DNS host names only — egress is "
        "allowed per domain name, and address literals can bypass the policy"
    )


# --------------------------------------------------------------------------------------------
# Normalisation and the check
# --------------------------------------------------------------------------------------------


def _host_hint(name: str) -> str:
    """`` (write 'host')`` when a host name can be extracted from a URL-like string."""
    text = name if "://" in name else "//" + name
    try:
        host = urlsplit(text).hostname
    except ValueError:
        return ""
    if host and host != name and "." in host and _as_ip(host) is None and _syntax_ok(host):
        return f" (write {_show(host)})"
    return ""


def _syntax_ok(host: str) -> bool:
    return host_syntax_problem(host) is None and ":" not in host and to_a_label(host)[0] is not None


def _syntax_reason(name: str) -> str | None:
    """Checks before IDNA: shape of a bare host name, with a hint at the host when there is one."""
    reason = host_syntax_problem(name)
    if reason is not None and reason.endswith(HOST_ONLY):
        return reason + _host_hint(name)
    return reason


def check_domain(name: object, config: PolicyConfig | None = None) -> str | None:
    """Why ``name`` is not an acceptable allowed domain, or ``None`` when it is.

    The reason is a sentence fragment meant to follow the quoted name, e.g.
    ``"'localhost' is a loopback name"``; it starts with the quoted name itself.
    """
    if not isinstance(name, str):
        return f"must be a string, not {type(name).__name__}"
    shown = _show(name)
    if not name:
        return "must not be empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"{shown} is longer than {MAX_NAME_LENGTH} characters"

    # IP literals first: '::1', '[::1]', '::ffff:127.0.0.1' all contain ':' and would otherwise
    # be misreported as ports.
    addr = _as_ip(name)
    if addr is not None:
        return _ip_reason(addr, shown)

    reason = _syntax_reason(name)
    if reason is not None:
        return f"{shown} {reason}"
    if ":" in name:
        return f"{shown} contains a port or ':'; list only the host name{_host_hint(name)}"
    if name.endswith(".") or name.endswith("\u3002"):
        return f"{shown} ends with a dot; write the name without the trailing dot"

    if any(len(label) > MAX_LABEL_LENGTH for label in name.split(".")):
        return f"{shown} has a label longer than {MAX_LABEL_LENGTH} characters"
    ascii_name, reason = to_a_label(name)
    if ascii_name is None:
        return f"{shown} {reason}"

    # The UTS #46 mapping folds full-width digits and dots, so check for IPs again.
    addr = _as_ip(ascii_name)
    if addr is not None:
        return _ip_reason(addr, shown)

    if len(ascii_name) > MAX_NAME_LENGTH:
        return f"{shown} is longer than {MAX_NAME_LENGTH} characters once encoded (IDNA)"
    labels = ascii_name.split(".")
    for label in labels:
        if not label:
            return f"{shown} has an empty label (leading, trailing or consecutive dots)"
        if len(label) > MAX_LABEL_LENGTH:
            return f"{shown} has a label longer than {MAX_LABEL_LENGTH} characters"
        if not _LABEL_RE.match(label):
            return (
                f"{shown} has an invalid label {_show(label)}: use letters, digits and hyphens, "
                "not starting or ending with a hyphen"
            )
    tld = labels[-1]
    if tld.isdigit() or _HEX_LABEL_RE.match(tld):
        return f"{shown} looks like an IP address (numeric top-level label); use a DNS name"
    if len(labels) < 2:
        if ascii_name == "localhost":
            return f"{shown} is a loopback name"
        return (
            f"{shown} is a single-label name (intranet or search-domain name); use a fully "
            "qualified domain name such as 'api.example.org'"
        )

    if ascii_name in CLUSTER_NAMES or ascii_name.startswith("kubernetes.default."):
        return f"{shown} is the Kubernetes API server's in-cluster name"
    if ascii_name.endswith(".cluster.local"):
        return f"{shown} is a Kubernetes cluster-internal name"
    for suffix, why in SPECIAL_USE_SUFFIXES.items():
        if tld == suffix or ascii_name.endswith("." + suffix):
            return f"{shown} {why}"

    blocked = blocked_entry(ascii_name, _blocked(config))
    if blocked is not None:
        if blocked == ascii_name:
            return f"{shown} is on the platform's blocked-domain list"
        return f"{shown} is a subdomain of blocked domain {_show(blocked)}"
    return None


def blocked_entry(ascii_name: str, blocked: frozenset[str]) -> str | None:
    """The blocked-list entry matching ``ascii_name`` (itself or a parent domain), if any."""
    labels = ascii_name.split(".")
    for i in range(len(labels)):
        candidate = ".".join(labels[i:])
        if candidate in blocked:
            return candidate
    return None


def _blocked(config: PolicyConfig | None) -> frozenset[str]:
    return (config or default_config()).blocked_domains


def _show(value: str, limit: int = 80) -> str:
    text = value if len(value) <= limit else value[: limit - 3] + "..."
    return repr(text)
