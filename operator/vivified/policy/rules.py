"""Semantic rules of the manifest policy, applied defensively to the *raw* mapping.

Every rule tolerates any shape of input: where a value has the wrong type the rule skips it
(the structural layer reports the type), so one pass reports structural and semantic problems
together. Paths are relative to the manifest; the caller adds a prefix (``spec.manifest.``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from vivified import manifest as m
from vivified.policy.config import PolicyConfig
from vivified.policy.domains import check_domain, normalize_domain
from vivified.policy.manifest_events import event_rules
from vivified.policy.structure import did_you_mean, join_path, key_text, show, type_name
from vivified.policy.traits import LEGACY_ALIASES, RESERVED_TRAITS, TRAITS
from vivified.violations import Violation

_ID_RE = re.compile(m.PLUGIN_ID_PATTERN)
_SEMVER_RE = re.compile(m.SEMVER_PATTERN)
_HIPAA_RE = re.compile(m.HIPAA_CONTROL_PATTERN)
_TRAIT_FORMAT_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_ENDPOINT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

#: Audit levels at or above which sensitive-data plugins are expected to run.
_SENSITIVE_AUDIT_LEVELS = ("detailed", "complete")


@dataclass
class Findings:
    """Errors and warnings collected by the rules (paths relative to the manifest)."""

    errors: list[Violation] = field(default_factory=list)
    warnings: list[Violation] = field(default_factory=list)
    #: Paths whose value a rule judged itself; pydantic's generic message there is dropped.
    judged: set[str] = field(default_factory=set)

    def error(self, path: str, message: str, *, cross_field: bool = False) -> None:
        """Record an error. ``cross_field`` errors (e.g. a missing required trait) do not
        replace the structural message for the same path; value errors do."""
        self.errors.append(Violation(path, message))
        if not cross_field:
            self.judged.add(path)

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(Violation(path, message))


# --------------------------------------------------------------------------------------------
# Reusable value checks
# --------------------------------------------------------------------------------------------


def describe_id_problem(value: str, what: str = "plugin id") -> str | None:
    """Why ``value`` is not a valid plugin id, or None. Used for ``id`` and ``dependencies``."""
    shown = show(value)
    if not value:
        return f"{what} must not be empty"
    if len(value) > m.PLUGIN_ID_MAX_LENGTH:
        return (
            f"{what} {show(value, 30)} is {len(value)} characters long; the maximum is "
            f"{m.PLUGIN_ID_MAX_LENGTH} (it must fit in Kubernetes object names with a suffix)"
        )
    if _ID_RE.match(value):
        return None
    rule = "use only lowercase letters, digits and single hyphens, starting with a letter"
    if any(c.isspace() for c in value):
        detail = "contains whitespace"
    elif value != value.lower() and _ID_RE.match(value.lower()):
        return f"{what} {shown} must be lowercase; use {value.lower()!r}"
    elif "_" in value:
        suggestion = value.replace("_", "-").lower()
        hint = f" (e.g. {suggestion!r})" if _ID_RE.match(suggestion) else ""
        return f"{what} {shown} contains underscores; {rule}{hint}"
    elif not value[0].isalpha() or not value[0].isascii():
        detail = "must start with a lowercase letter"
    elif value.endswith("-"):
        detail = "must not end with a hyphen"
    elif "--" in value:
        detail = "must not contain consecutive hyphens"
    else:
        detail = "contains characters other than lowercase letters, digits and hyphens"
    return f"{what} {shown} {detail}; {rule} (e.g. 'user-management')"


def _as_list(value: object) -> list[object] | None:
    return list(value) if isinstance(value, list | tuple) else None


def _capped(items: list[object], cap: int) -> list[tuple[int, object]]:
    """(index, item) for at most ``cap`` items (longer lists are reported by the structure)."""
    return list(enumerate(items[:cap]))


def _section(raw: Mapping[str, object], key: str) -> Mapping[str, object] | None:
    value = raw.get(key)
    return value if isinstance(value, Mapping) else None


def _strings(items: list[object] | None, cap: int) -> list[tuple[int, str]]:
    if items is None:
        return []
    return [(i, v) for i, v in _capped(items, cap) if isinstance(v, str)]


def _report_duplicates(
    out: Findings,
    path: str,
    items: Sequence[tuple[int, str]],
    key: Callable[[str], str | None] | None = None,
) -> None:
    """Error for each item equal (after ``key``) to an earlier one."""
    first: dict[str, int] = {}
    for i, value in items:
        norm = key(value) if key is not None else value
        if norm is None:
            continue
        if norm in first:
            out.error(
                join_path(path, i),
                f"{show(value)} is listed more than once (first at {join_path(path, first[norm])})",
            )
        else:
            first[norm] = i


# --------------------------------------------------------------------------------------------
# Identity: id, name, version, description
# --------------------------------------------------------------------------------------------


def _check_identity(raw: Mapping[str, object], out: Findings) -> None:
    plugin_id = raw.get("id")
    if "id" not in raw:
        out.error(
            "id",
            "required field 'id' is missing: give the plugin a unique id such as 'user-management'",
        )
    elif isinstance(plugin_id, str):
        problem = describe_id_problem(plugin_id)
        if problem:
            out.error("id", problem)

    name = raw.get("name")
    if isinstance(name, str):
        if not name.strip():
            out.error("name", "name must not be blank; give a human-readable name")
        elif not name.isprintable():
            out.error("name", "name must not contain control characters or line breaks")

    version = raw.get("version")
    if isinstance(version, str) and (
        len(version) > m.VERSION_MAX_LENGTH or not _SEMVER_RE.match(version)
    ):
        hint = ""
        if re.fullmatch(r"[vV][0-9].*", version) and _SEMVER_RE.match(version[1:]):
            hint = f"; drop the leading 'v': {version[1:]!r}"
        elif re.fullmatch(r"[0-9]+\.[0-9]+", version):
            hint = f"; add the patch number: {version + '.0'!r}"
        out.error(
            "version",
            f"version {show(version)} is not a semantic version MAJOR.MINOR.PATCH "
            f"(e.g. '1.0.0' or '1.2.0-rc.1'){hint}",
        )

    description = raw.get("description")
    if isinstance(description, str) and "\x00" in description:
        out.error("description", "description must not contain NUL characters")


# --------------------------------------------------------------------------------------------
# Contracts
# --------------------------------------------------------------------------------------------


def _check_contracts(raw: Mapping[str, object], out: Findings) -> None:
    contracts = _as_list(raw.get("contracts"))
    valid = ", ".join(m.CONTRACTS)
    if "contracts" not in raw or contracts == []:
        out.error("contracts", f"declare at least one contract: {valid}")
        return
    for i, value in _strings(contracts, m.MAX_CONTRACTS):
        if value not in m.CONTRACTS:
            out.error(
                join_path("contracts", i),
                f"unknown contract {show(value)}; valid contracts are {valid}"
                f"{did_you_mean(value, m.CONTRACTS)}",
            )
    _report_duplicates(out, "contracts", _strings(contracts, m.MAX_CONTRACTS))


# --------------------------------------------------------------------------------------------
# Traits
# --------------------------------------------------------------------------------------------


def _trait_set(raw: Mapping[str, object], out: Findings) -> set[str]:
    """Check each trait; return the set of known (canonical) traits present."""
    traits = _as_list(raw.get("traits"))
    present: set[str] = set()
    if "traits" not in raw or traits == []:
        out.error(
            "traits",
            "declare at least one trait (e.g. 'audit_required'); every plugin needs one",
        )
        return present
    known = sorted(set(TRAITS) | set(LEGACY_ALIASES))
    first: dict[str, int] = {}
    for i, value in _strings(traits, m.MAX_TRAITS):
        path = join_path("traits", i)
        lowered = value.strip().lower()
        if lowered in RESERVED_TRAITS:
            out.error(
                path,
                f"trait {show(value)} is reserved and not allowed for plugins: it "
                f"{RESERVED_TRAITS[lowered]}; remove it",
            )
            continue
        canonical = value
        if value in LEGACY_ALIASES:
            canonical = LEGACY_ALIASES[value]
            out.warn(path, f"trait {show(value)} is a legacy alias; write {canonical!r} instead")
        elif value not in TRAITS:
            if not _TRAIT_FORMAT_RE.match(value):
                detail = "traits are lowercase words joined by underscores"
            else:
                detail = "it is not in the trait registry (see docs/manifest.md)"
            out.error(path, f"unknown trait {show(value)}: {detail}{did_you_mean(value, known)}")
            continue
        if canonical in first:
            out.error(
                path,
                f"trait {canonical!r} is listed more than once (first at "
                f"{join_path('traits', first[canonical])})",
            )
            continue
        first[canonical] = i
        present.add(canonical)

    for name in sorted(present):
        missing = sorted(_closure(name) - present)
        if missing:
            listed = ", ".join(repr(x) for x in missing)
            out.error(
                "traits", f"trait {name!r} requires {listed}; add it to traits", cross_field=True
            )
    reported: set[frozenset[str]] = set()
    for name in sorted(present):
        for other in sorted(TRAITS[name].conflicts & present):
            pair = frozenset({name, other})
            if pair not in reported:
                reported.add(pair)
                out.error(
                    "traits",
                    f"traits {name!r} and {other!r} conflict; remove one of them",
                    cross_field=True,
                )
    return present


def _closure(name: str) -> set[str]:
    out: set[str] = set()
    stack = list(TRAITS[name].requires)
    while stack:
        req = stack.pop()
        if req not in out:
            out.add(req)
            if req in TRAITS:
                stack.extend(TRAITS[req].requires)
    return out


# --------------------------------------------------------------------------------------------
# Security: authentication, classification, domains
# --------------------------------------------------------------------------------------------


def _check_security(
    raw: Mapping[str, object], traits: set[str], out: Findings, config: PolicyConfig
) -> None:
    security = _section(raw, "security")
    if security is None:
        if "security" not in raw:
            out.error(
                "security",
                "required section 'security' is missing: set authentication_required: true "
                "and data_classification",
            )
        security = {}

    auth = security.get("authentication_required")
    if "authentication_required" not in security:
        out.error(
            "security.authentication_required",
            "required field 'authentication_required' is missing; it must be true",
        )
    elif auth is False:
        out.error(
            "security.authentication_required",
            "authentication_required must be true: Vivified does not run plugins whose "
            "endpoints accept unauthenticated requests",
        )

    dc_raw = security.get("data_classification")
    dc = _as_list(dc_raw)
    allowed = ", ".join(m.DATA_CLASSIFICATIONS)
    dc_path = "security.data_classification"
    if "data_classification" not in security or dc == []:
        out.error(dc_path, f"data_classification must list at least one of {allowed}")
    classes: set[str] = set()
    for i, value in _strings(dc, m.MAX_DATA_CLASSIFICATIONS):
        if value in m.DATA_CLASSIFICATIONS:
            classes.add(value)
        else:
            out.error(
                join_path(dc_path, i),
                f"unknown data classification {show(value)}; use one of {allowed}"
                f"{did_you_mean(value, m.DATA_CLASSIFICATIONS)}",
            )
    _report_duplicates(out, dc_path, _strings(dc, m.MAX_DATA_CLASSIFICATIONS))

    if dc is not None or "data_classification" not in security:
        for trait, cls, what in (
            ("handles_phi", "phi", "protected health information"),
            ("handles_pii", "pii", "personally identifiable information"),
        ):
            if trait in traits and cls not in classes:
                out.error(
                    dc_path,
                    f"plugin with trait {trait!r} must declare {cls!r} in data_classification",
                    cross_field=True,
                )
            if cls in classes and trait not in traits:
                out.error(
                    "traits",
                    f"data_classification includes {cls!r} ({what}) but traits lack "
                    f"{trait!r}; add {trait!r} to traits",
                    cross_field=True,
                )

    isolation = security.get("network_isolation")
    if isolation is False:
        if "network_isolated" in traits:
            out.error(
                "security.network_isolation",
                "network_isolation is false but the plugin declares trait 'network_isolated'; "
                "set network_isolation to true or remove the trait",
                cross_field=True,
            )
        else:
            out.warn(
                "security.network_isolation",
                "network_isolation is false: the plugin will not be confined to the platform "
                "and its allowed domains; make sure this is intended",
            )

    _check_domains(raw, security, traits, out, config)


def _check_domains(
    raw: Mapping[str, object],
    security: Mapping[str, object],
    traits: set[str],
    out: Findings,
    config: PolicyConfig,
) -> None:
    lists = (
        ("allowed_domains", _as_list(raw.get("allowed_domains"))),
        ("security.allowed_domains", _as_list(security.get("allowed_domains"))),
    )
    union: dict[str, str] = {}
    for path, items in lists:
        if items is None:
            continue
        valid: list[tuple[int, str]] = []
        for i, value in _capped(items, m.MAX_ALLOWED_DOMAINS):
            if not isinstance(value, str):
                continue
            reason = check_domain(value, config)
            if reason is not None:
                if not reason.startswith(show(value)):
                    reason = f"{show(value)} {reason}" if value else f"domain {reason}"
                out.error(join_path(path, i), f"{reason}")
            else:
                valid.append((i, value))
        _report_duplicates(out, path, valid, key=normalize_domain)
        for i, value in valid:
            norm = normalize_domain(value) or value
            if norm in union and not union[norm].startswith(path + "["):
                out.warn(
                    join_path(path, i),
                    f"{show(value)} is also listed in {union[norm]}; the two lists are merged, "
                    "list it once",
                )
            union.setdefault(norm, join_path(path, i))

    if "external_service" in traits and not union:
        out.error(
            "security.allowed_domains",
            "plugin with trait 'external_service' must list the domains it calls in "
            "allowed_domains (or security.allowed_domains)",
            cross_field=True,
        )
    if union and "external_service" not in traits:
        out.warn(
            "allowed_domains",
            "allowed domains are listed but the plugin lacks trait 'external_service'; only "
            "external-service plugins may reach external hosts, add the trait if it calls them",
        )


# --------------------------------------------------------------------------------------------
# Compliance
# --------------------------------------------------------------------------------------------


def _check_compliance(raw: Mapping[str, object], traits: set[str], out: Findings) -> None:
    compliance = _section(raw, "compliance")
    if compliance is None:
        if "compliance" not in raw:
            out.error(
                "compliance",
                "required section 'compliance' is missing: set at least audit_level "
                "(none, basic, detailed or complete)",
            )
        compliance = {}

    level = compliance.get("audit_level")
    levels = ", ".join(m.AUDIT_LEVELS)
    if "audit_level" not in compliance:
        out.error(
            "compliance.audit_level",
            f"required field 'audit_level' is missing; use one of {levels}",
        )
    elif isinstance(level, str):
        if level not in m.AUDIT_LEVELS:
            out.error(
                "compliance.audit_level",
                f"unknown audit level {show(level)}; use one of {levels}"
                f"{did_you_mean(level, m.AUDIT_LEVELS)}",
            )
        elif level == "none" and "audit_required" in traits:
            out.error(
                "compliance.audit_level",
                "audit_level is 'none' but the plugin declares trait 'audit_required'; use "
                "basic, detailed or complete",
                cross_field=True,
            )
        elif level not in _SENSITIVE_AUDIT_LEVELS:
            sensitive = sorted(t for t in traits if TRAITS[t].sensitive)
            if sensitive:
                out.warn(
                    "compliance.audit_level",
                    f"audit_level {level!r} is low for a plugin with trait(s) "
                    f"{', '.join(sensitive)}; 'detailed' or 'complete' is recommended",
                )

    controls = _as_list(compliance.get("hipaa_controls"))
    control_strings = _strings(controls, m.MAX_HIPAA_CONTROLS)
    for i, value in control_strings:
        if len(value) > m.HIPAA_CONTROL_MAX_LENGTH or not _HIPAA_RE.match(value):
            out.error(
                join_path("compliance.hipaa_controls", i),
                f"HIPAA control {show(value)} has an invalid format; write section and "
                "subsections like '164.312(a)' or '164.312(a)(1)'",
            )
    _report_duplicates(out, "compliance.hipaa_controls", control_strings)

    retention = compliance.get("data_retention_days")
    if "handles_phi" in traits:
        if not controls and (controls is not None or "hipaa_controls" not in compliance):
            out.error(
                "compliance.hipaa_controls",
                "plugin with trait 'handles_phi' must list at least one HIPAA control, "
                "e.g. ['164.312(a)']",
                cross_field=True,
            )
        if "data_retention_days" not in compliance or retention is None:
            out.error(
                "compliance.data_retention_days",
                "plugin with trait 'handles_phi' must set data_retention_days to at least "
                f"{m.PHI_MIN_RETENTION_DAYS} (7 years, as HIPAA requires)",
            )
        elif (days := _int(retention)) is not None and days < m.PHI_MIN_RETENTION_DAYS:
            out.error(
                "compliance.data_retention_days",
                f"data_retention_days is {show(days)}; plugins with trait 'handles_phi' must "
                f"retain data for at least {m.PHI_MIN_RETENTION_DAYS} days (7 years)",
                cross_field=True,
            )


# --------------------------------------------------------------------------------------------
# Dependencies and endpoints
# --------------------------------------------------------------------------------------------


def _check_dependencies(raw: Mapping[str, object], out: Findings) -> None:
    deps = _strings(_as_list(raw.get("dependencies")), m.MAX_DEPENDENCIES)
    own = raw.get("id")
    for i, value in deps:
        path = join_path("dependencies", i)
        problem = describe_id_problem(value, "dependency id")
        if problem:
            out.error(path, problem)
        elif isinstance(own, str) and value == own:
            out.error(path, f"a plugin cannot depend on itself ({show(value)}); remove it")
    _report_duplicates(out, "dependencies", deps)


def _check_endpoints(raw: Mapping[str, object], out: Findings) -> None:
    endpoints = raw.get("endpoints")
    if not isinstance(endpoints, Mapping):
        return
    for n, (key, value) in enumerate(endpoints.items()):
        if n >= m.MAX_ENDPOINTS:
            break
        path = join_path("endpoints", key_text(key))
        if isinstance(key, str) and (
            not key or len(key) > m.ENDPOINT_NAME_MAX_LENGTH or not _ENDPOINT_NAME_RE.match(key)
        ):
            out.error(
                path,
                f"endpoint name {show(key)} is invalid; use up to "
                f"{m.ENDPOINT_NAME_MAX_LENGTH} letters, digits, '_', '.' or '-' "
                "(e.g. 'user_info')",
            )
        if isinstance(value, str):
            problem = describe_path_problem(value)
            if problem:
                out.error(path, f"endpoint {problem}")


def describe_path_problem(value: str) -> str | None:
    """Why ``value`` is not an absolute URL path, or None."""
    if not value.startswith("/"):
        hint = f" (e.g. {'/' + value!r})" if value and "://" not in value else ""
        return f"path {show(value)} must be an absolute path starting with '/'{hint}"
    if value.startswith("//"):
        return f"path {show(value)} must not start with '//' (that names another host)"
    if len(value) > m.ENDPOINT_PATH_MAX_LENGTH:
        return f"path is longer than {m.ENDPOINT_PATH_MAX_LENGTH} characters"
    if any(c.isspace() for c in value) or not value.isprintable():
        return f"path {show(value)} must not contain whitespace or control characters"
    if "#" in value:
        return f"path {show(value)} must not contain a fragment ('#')"
    return None


# --------------------------------------------------------------------------------------------
# Health check and resources
# --------------------------------------------------------------------------------------------


def _check_health(raw: Mapping[str, object], out: Findings) -> None:
    hc = _section(raw, "health_check")
    if hc is None:
        return
    kind = hc.get("type", "http")
    if isinstance(kind, str) and kind not in m.HEALTH_CHECK_TYPES:
        out.error(
            "health_check.type",
            f"unknown health check type {show(kind)}; use http, tcp or custom"
            f"{did_you_mean(kind, m.HEALTH_CHECK_TYPES)}",
        )
    path = hc.get("path")
    if isinstance(path, str):
        problem = describe_path_problem(path)
        if problem:
            out.error("health_check.path", f"health check {problem}")
        elif kind in ("tcp", "custom"):
            out.warn("health_check.path", f"path is ignored for {kind!r} health checks")
    port = _int(hc.get("port"))
    if port is not None and not m.PORT_MIN <= port <= m.PORT_MAX:
        out.error("health_check.port", f"port {show(port)} is out of range; use 1-65535")

    interval = _int(hc.get("interval_seconds", m.DEFAULT_INTERVAL_SECONDS))
    timeout = _int(hc.get("timeout_seconds", m.DEFAULT_TIMEOUT_SECONDS))
    threshold = _int(hc.get("failure_threshold", m.DEFAULT_FAILURE_THRESHOLD))
    for key, value in (
        ("interval_seconds", interval),
        ("timeout_seconds", timeout),
        ("failure_threshold", threshold),
    ):
        if value is not None and value < 1:
            out.error(
                f"health_check.{key}", f"{key} must be a positive whole number, not {show(value)}"
            )
    if interval is not None and timeout is not None and timeout >= max(interval, 1):
        default_note = "" if "interval_seconds" in hc else ", the default"
        out.error(
            "health_check.timeout_seconds",
            f"timeout_seconds ({show(timeout)}) must be less than interval_seconds "
            f"({show(interval)}{default_note})",
        )


def _int(value: object) -> int | None:
    """``value`` if it is a real integer (not a bool), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _check_resources(raw: Mapping[str, object], out: Findings) -> None:
    res = _section(raw, "resources")
    if res is None:
        return
    if "memory_limit" in res:
        mem = res["memory_limit"]
        path = "resources.memory_limit"
        lo, hi = m.MEMORY_LIMIT_MIN_MB, m.MEMORY_LIMIT_MAX_MB
        if isinstance(mem, bool) or not isinstance(mem, int | float):
            if mem is not None:
                out.error(path, _not_a_number(mem, "a whole number of megabytes", "512"))
        elif isinstance(mem, float) and not mem.is_integer():
            out.error(path, f"memory_limit must be a whole number of megabytes, not {show(mem)}")
        elif mem < lo:
            out.error(path, f"memory limit too low: {show(mem)} MB; the minimum is {lo} MB")
        elif mem > hi:
            out.error(path, f"memory limit too high: {show(mem)} MB; the maximum is {hi} MB (8 GB)")
        elif isinstance(mem, float):
            out.error(
                path, f"memory_limit must be a whole number, not {show(mem)}; write {int(mem)}"
            )
    if "cpu_limit" in res:
        cpu = res["cpu_limit"]
        path = "resources.cpu_limit"
        if isinstance(cpu, bool) or not isinstance(cpu, int | float):
            if cpu is not None:
                out.error(path, _not_a_number(cpu, "a number of cores", "0.5"))
        elif isinstance(cpu, float) and not math.isfinite(cpu):
            out.error(path, "cpu_limit must be a finite number of cores")
        elif cpu < m.CPU_LIMIT_MIN:
            out.error(path, f"CPU limit too low: {show(cpu)} cores; the minimum is 0.1")
        elif cpu > m.CPU_LIMIT_MAX:
            out.error(path, f"CPU limit too high: {show(cpu)} cores; the maximum is 8")


def _not_a_number(value: object, what: str, example: str) -> str:
    if isinstance(value, str):
        return (
            f"must be {what}, not the string {show(value)}; write it without quotes "
            f"(e.g. {example})"
        )
    return f"must be {what}, not a {type_name(value)}"


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def manifest_rules(raw: Mapping[str, object], config: PolicyConfig) -> Findings:
    """Apply every semantic rule to a manifest mapping (any shape of values tolerated)."""
    out = Findings()
    _check_identity(raw, out)
    _check_contracts(raw, out)
    traits = _trait_set(raw, out)
    _check_security(raw, traits, out, config)
    _check_compliance(raw, traits, out)
    _check_dependencies(raw, out)
    _check_endpoints(raw, out)
    _check_health(raw, out)
    _check_resources(raw, out)
    for path, message in event_rules(raw, traits, config.event_types):
        out.error(path, message, cross_field=path.startswith("endpoints"))
    return out
