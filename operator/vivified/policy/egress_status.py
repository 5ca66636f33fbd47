"""The ``EgressEnforced`` condition: True only when egress to the plugin's domains is really
enforced — never because the operator merely rendered something.

Two facts must hold (smokescreen's users found proxies that had silently stopped enforcing):

1. the plugin's live NetworkPolicy forces egress through the core: no ``ipBlock`` egress peer
   (DNS and the platform pods only), so a plugin that ignores ``HTTPS_PROXY`` reaches nothing;
2. the core reports the plugin's allowlist loaded: the core's published allowlist state
   (``GET /v1/proxy/allowlists``, :func:`vivified.dataplane.proxy.allowlist_report`) names
   the plugin at the CR's generation (or later) with the same domains, in ``enforce`` mode.

Report mode is shown as ``False``/``ReportOnly``: requests to unlisted domains pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "EgressReport",
    "egress_condition",
    "forces_egress_through_core",
    "reports_from_document",
]


@dataclass(frozen=True)
class EgressReport:
    """One plugin's entry in the core's published allowlist state."""

    generation: int
    domains: tuple[str, ...]
    mode: str = "enforce"

    @classmethod
    def from_document(cls, document: Mapping[str, Any], plugin_id: str) -> EgressReport | None:
        plugins = document.get("plugins")
        entry = plugins.get(plugin_id) if isinstance(plugins, Mapping) else None
        if not isinstance(entry, Mapping):
            return None
        return cls(
            generation=int(entry.get("generation", 0)),
            domains=tuple(sorted(str(d) for d in entry.get("domains", ()))),
            mode=str(document.get("mode", "enforce")),
        )


def reports_from_document(document: object) -> dict[tuple[str, str], EgressReport]:
    """Every plugin's entry in the core's published document, keyed ``(namespace, id)``;
    anything malformed is left out (an entry the operator cannot read is "not reported")."""
    if not isinstance(document, Mapping):
        return {}
    plugins = document.get("plugins")
    if not isinstance(plugins, Mapping):
        return {}
    out: dict[tuple[str, str], EgressReport] = {}
    for plugin_id, entry in plugins.items():
        if not isinstance(plugin_id, str) or not isinstance(entry, Mapping):
            continue
        namespace = entry.get("namespace")
        try:
            report = EgressReport.from_document(document, plugin_id)
        except (TypeError, ValueError):
            continue
        if isinstance(namespace, str) and report is not None:
            out[(namespace, plugin_id)] = report
    return out


def forces_egress_through_core(network_policy: Mapping[str, Any] | None) -> bool:
    """The live policy restricts egress and has no rule to arbitrary addresses (ipBlock)."""
    if not network_policy:
        return False
    spec = network_policy.get("spec") or {}
    if "Egress" not in (spec.get("policyTypes") or ()):
        return False
    for rule in spec.get("egress") or ():
        peers = rule.get("to")
        if not peers:  # a rule without peers allows every destination
            return False
        if any("ipBlock" in peer for peer in peers):
            return False
    return True


def egress_condition(
    *,
    domains: Sequence[str],
    generation: int,
    through_core: bool,
    report: EgressReport | None,
) -> tuple[bool, str, str]:
    """(status, reason, message) of ``EgressEnforced`` for an enabled, valid plugin."""
    listed = ", ".join(sorted(domains))
    if not through_core:
        if not domains:
            return False, "NotRestricted", "the NetworkPolicy does not restrict egress yet"
        return (
            False,
            "PortLevel",
            "the NetworkPolicy still allows TCP 443 to any public address, so the domain "
            f"allowlist is advisory; domains: {listed}",
        )
    if not domains:
        return True, "PlatformOnly", "egress limited to DNS and the core"
    if report is None:
        return False, "AllowlistNotLoaded", "the core has not reported this plugin's allowlist"
    if report.generation < generation:
        return (
            False,
            "AllowlistNotLoaded",
            f"the core enforces generation {report.generation}, the plugin is at {generation}",
        )
    if tuple(sorted(domains)) != report.domains:
        return False, "AllowlistMismatch", "the core's allowlist differs from the manifest"
    if report.mode == "report":
        return (
            False,
            "ReportOnly",
            f"report mode: requests to unlisted domains pass and are only recorded; domains: "
            f"{listed}",
        )
    return True, "Enforced", f"egress only through the core's proxy, to: {listed}"
