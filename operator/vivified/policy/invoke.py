"""The operator lane's decision: may plugin A call operation O of plugin B, and if not, why.

Pure: it sees only what the core's directory knows about both plugins. Default deny; the
first rule a call fails decides the refusal. Policy refusals (403/404) come before
availability (503), so a caller learns a call can never work before it learns it cannot
work *now*; and a non-dependent learns nothing about the target (not even whether it exists).

======================  ======  =============================================================
reason                  status  rule
======================  ======  =============================================================
caller_inactive         403     the caller is Active and enabled
not_a_dependency        403     the target is in the caller's ``dependencies``
unknown_target          404     the target is a plugin the core serves
dangerous_operation     403     the operation is not on the dangerous list (configurable)
undeclared_operation    404     the operation is a key of the target's ``endpoints``
missing_handles_phi     403     target data classification has ``phi`` → caller ``handles_phi``
missing_handles_pii     403     target data classification has ``pii`` → caller ``handles_pii``
target_inactive         503     the target is Active and enabled
target_unhealthy        503     the target's health is not ``unhealthy``
allowed                 200     every rule above holds
======================  ======  =============================================================

:func:`fill_path` turns the target's path template and the caller's ``{rest}`` into the
path the target receives, validating every segment (no ``..``, no encoded slash, no absolute
URL, no control character); its refusals are 400s with their own reasons.
:func:`effective_permissions` runs the static rules over every pair, for plugin status.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote, unquote_to_bytes

from vivified.manifest import PluginManifest
from vivified.policy.party import Party as _Party
from vivified.policy.traits import canonical_traits

__all__ = [
    "DEFAULT_DANGEROUS_OPERATIONS",
    "InvokeDecision",
    "Party",
    "PathRefused",
    "decide_invoke",
    "effective_permissions",
    "fill_path",
    "static_refusal",
]

DEFAULT_DANGEROUS_OPERATIONS: frozenset[str] = frozenset(
    {"delete_all", "drop_database", "purge", "shutdown", "system_exec", "wipe"}
)

#: Which trait a data classification demands of a caller.
CLASSIFICATION_TRAITS: Mapping[str, str] = {"phi": "handles_phi", "pii": "handles_pii"}


class Party(_Party, Protocol):
    """A plugin as the operator-lane decision sees it: a lane party and its health."""

    @property
    def health(self) -> str: ...


@dataclass(frozen=True)
class InvokeDecision:
    allowed: bool
    reason: str
    message: str
    status: int

    @classmethod
    def refuse(cls, status: int, reason: str, message: str) -> InvokeDecision:
        return cls(False, reason, message, status)


ALLOWED = InvokeDecision(True, "allowed", "allowed by policy", 200)


def static_refusal(
    caller: PluginManifest,
    target: PluginManifest,
    operation: str | None = None,
    dangerous: Collection[str] = DEFAULT_DANGEROUS_OPERATIONS,
) -> InvokeDecision | None:
    """The rules that hold whatever the plugins' state: dependency, operation, traits."""
    if target.id not in caller.dependencies:
        return InvokeDecision.refuse(
            403,
            "not_a_dependency",
            f"{target.id!r} is not in the dependencies of {caller.id!r}",
        )
    if operation is not None:
        if operation in dangerous:
            return InvokeDecision.refuse(
                403, "dangerous_operation", f"operation {operation!r} is never routed"
            )
        if operation not in target.endpoints:
            return InvokeDecision.refuse(
                404,
                "undeclared_operation",
                f"{target.id!r} declares no operation {operation!r}",
            )
    traits = set(canonical_traits(caller.traits))
    for classification, trait in CLASSIFICATION_TRAITS.items():
        if classification in target.security.data_classification and trait not in traits:
            return InvokeDecision.refuse(
                403,
                f"missing_{trait}",
                f"{target.id!r} holds {classification} data; {caller.id!r} lacks {trait}",
            )
    return None


def decide_invoke(
    caller: Party,
    target_id: str,
    target: Party | None,
    operation: str,
    dangerous: Collection[str] = DEFAULT_DANGEROUS_OPERATIONS,
) -> InvokeDecision:
    """Every rule of the module docstring, in order."""
    if not caller.active:
        return InvokeDecision.refuse(403, "caller_inactive", f"{caller.plugin_id!r} is not Active")
    if target_id not in caller.manifest.dependencies:
        return InvokeDecision.refuse(
            403,
            "not_a_dependency",
            f"{target_id!r} is not in the dependencies of {caller.plugin_id!r}",
        )
    if target is None:
        return InvokeDecision.refuse(404, "unknown_target", f"no plugin {target_id!r}")
    refused = static_refusal(caller.manifest, target.manifest, operation, dangerous)
    if refused is not None:
        return refused
    if not target.active:
        return InvokeDecision.refuse(503, "target_inactive", f"{target_id!r} is not Active")
    if target.health == "unhealthy":
        return InvokeDecision.refuse(503, "target_unhealthy", f"{target_id!r} is unhealthy")
    return ALLOWED


# -- path templates ----------------------------------------------------------------------------
_PLACEHOLDER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")
#: Characters a raw ``{rest}`` segment may contain: unreserved, a few sub-delims, and ``%``
#: escapes (checked after decoding). No ``:`` (scheme), no ``\\``, no ``?``/``#`` here.
_RAW_SEGMENT = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=@%-]{1,256}")
_RAW_QUERY = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,2048}")
MAX_SEGMENTS = 16


class PathRefused(Exception):  # noqa: N818 - reads as what happened
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _segment(raw: str) -> str:
    if not _RAW_SEGMENT.fullmatch(raw):
        raise PathRefused("invalid_path_segment", "a path segment holds a forbidden character")
    try:
        decoded = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise PathRefused("invalid_path_segment", "a path segment is not UTF-8") from None
    if "%" in raw and re.search(r"%(?![0-9A-Fa-f]{2})", raw):
        raise PathRefused("invalid_path_segment", "a path segment has a broken %-escape")
    if decoded in (".", ".."):
        raise PathRefused("path_traversal", "'.' and '..' segments are refused")
    if any(c in decoded for c in "/\\") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in decoded):
        raise PathRefused(
            "invalid_path_segment", "encoded slashes and control characters are refused"
        )
    if "%" in decoded:
        raise PathRefused("invalid_path_segment", "double %-encoding is refused")
    return quote(decoded, safe="!$&'()*+,;=@-._~")


def fill_path(template: str, rest: str, query: str = "") -> str:
    """The target path for ``template`` with its placeholders filled from ``rest``, in order.

    ``rest`` is the raw (still %-encoded) remainder after ``/{operation}``: empty, or
    ``/seg/seg``. It must supply exactly one segment per placeholder. Raises
    :class:`PathRefused`.
    """
    placeholders = _PLACEHOLDER.findall(template)
    segments: list[str] = []
    if rest:
        if not rest.startswith("/"):
            raise PathRefused("invalid_path", "the path after the operation must start with /")
        parts = rest[1:].split("/")
        if len(parts) > MAX_SEGMENTS:
            raise PathRefused("invalid_path", f"more than {MAX_SEGMENTS} path segments")
        segments = [_segment(p) for p in parts]
    if len(segments) != len(placeholders):
        raise PathRefused(
            "path_mismatch",
            f"the operation's path takes {len(placeholders)} segment(s), got {len(segments)}",
        )
    values = iter(segments)
    path = _PLACEHOLDER.sub(lambda _: next(values), template)
    if query:
        if not _RAW_QUERY.fullmatch(query):
            raise PathRefused("invalid_query", "the query string holds a forbidden character")
        path = f"{path}?{query}"
    return path


# -- effective permissions ---------------------------------------------------------------------
def effective_permissions(
    plugin_id: str, manifests: Iterable[PluginManifest]
) -> dict[str, list[str]]:
    """``mayCall``: plugins ``plugin_id`` may call (some operation, state permitting);
    ``callableBy``: plugins that may call it. Static rules only (no health, no phase)."""
    known = {m.id: m for m in manifests}
    me = known.get(plugin_id)
    if me is None:
        return {"mayCall": [], "callableBy": []}
    may_call = sorted(
        t for t in me.dependencies if t in known and static_refusal(me, known[t]) is None
    )
    callable_by = sorted(
        m.id for m in known.values() if m.id != plugin_id and static_refusal(m, me) is None
    )
    return {"mayCall": may_call, "callableBy": callable_by}
