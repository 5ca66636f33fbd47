"""The entry points: ``validate_manifest`` and ``validate_spec``. They never raise."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from vivified import resource as r
from vivified.manifest import PluginManifest
from vivified.policy.config import PolicyConfig, default_config
from vivified.policy.report import ValidationReport
from vivified.policy.rules import Findings, manifest_rules
from vivified.policy.structure import did_you_mean, join_path, show, structural_violations
from vivified.resource import PluginSpec
from vivified.violations import Violation
from vivified_sdk import contract

_NUMBER = re.compile(r"([0-9]+)")
_ENV_NAME_RE = re.compile(r.ENV_NAME_PATTERN)
_IMAGE_RE = re.compile(r.IMAGE_PATTERN)


def _sort_key(v: Violation) -> tuple[tuple[tuple[int, str | int], ...], str]:
    parts = tuple(
        (1, int(p)) if p.isascii() and p.isdigit() else (0, p)
        for p in _NUMBER.split(v.field)
        if p != ""
    )
    return parts, v.message


def _finish(
    structural: Iterable[Violation],
    rules: Findings,
    config: PolicyConfig,
    manifest: PluginManifest | None,
    spec: PluginSpec | None = None,
) -> ValidationReport:
    """Merge: a rule's message for a field replaces pydantic's generic one for that field."""
    rule_fields = rules.judged
    errors = set(rules.errors)
    errors.update(v for v in structural if v.field not in rule_fields)
    warnings = set(rules.warnings)
    return ValidationReport(
        errors=_cap(sorted(errors, key=_sort_key), config.max_errors, "errors"),
        warnings=_cap(sorted(warnings, key=_sort_key), config.max_errors, "warnings"),
        manifest=manifest,
        spec=spec,
    )


def _cap(items: list[Violation], limit: int, what: str) -> tuple[Violation, ...]:
    limit = max(limit, 1)
    if len(items) <= limit:
        return tuple(items)
    rest = len(items) - limit
    return (*items[:limit], Violation("", f"... and {rest} more {what} not shown"))


def _not_object(what: str, raw: object, path: str = "") -> ValidationReport:
    kind = "null" if raw is None else type(raw).__name__
    return ValidationReport(
        errors=(Violation(path, f"{what} must be a JSON object (a mapping of fields), not {kind}"),)
    )


def _crash(path: str, exc: BaseException) -> ValidationReport:
    # Defensive: no input should get here, but the validator must never raise.
    return ValidationReport(
        errors=(
            Violation(path, f"the validator could not process this input ({type(exc).__name__})"),
        )
    )


def _prefixed(items: Iterable[Violation], prefix: str) -> list[Violation]:
    return [Violation(join_path(prefix, v.field) if v.field else prefix, v.message) for v in items]


def validate_manifest(raw: object, config: PolicyConfig | None = None) -> ValidationReport:
    """Check a plugin manifest (a mapping, e.g. parsed JSON/YAML) against the whole policy.

    Returns every error and warning at once, sorted by field path; never raises.
    """
    cfg = config or default_config()
    try:
        if not isinstance(raw, Mapping):
            return _not_object("manifest", raw)
        model, structural = structural_violations(PluginManifest, raw)
        manifest = model if isinstance(model, PluginManifest) else None
        return _finish(structural, manifest_rules(raw, cfg), cfg, manifest)
    except Exception as exc:  # the contract is "never raises"
        return _crash("", exc)


def validate_spec(raw_spec: object, config: PolicyConfig | None = None) -> ValidationReport:
    """Check the ``spec`` of a VivifiedPlugin: image, replicas, port, env and the manifest.

    Field paths are prefixed ``spec.`` (manifest fields: ``spec.manifest.``). Never raises.
    """
    cfg = config or default_config()
    try:
        if not isinstance(raw_spec, Mapping):
            return _not_object("spec", raw_spec, "spec")
        model, structural = structural_violations(PluginSpec, raw_spec)
        spec = model if isinstance(model, PluginSpec) else None
        manifest: PluginManifest | None = spec.manifest if spec is not None else None
        findings = Findings()
        raw_manifest = raw_spec.get("manifest")
        if isinstance(raw_manifest, Mapping):
            inner = manifest_rules(raw_manifest, cfg)
            findings.errors.extend(_prefixed(inner.errors, "manifest"))
            findings.warnings.extend(_prefixed(inner.warnings, "manifest"))
            findings.judged.update(join_path("manifest", f) for f in inner.judged)
            if manifest is None:
                m_model, _ = structural_violations(PluginManifest, raw_manifest)
                manifest = m_model if isinstance(m_model, PluginManifest) else None
        elif "manifest" not in raw_spec:
            findings.error(
                "manifest", "required field 'manifest' is missing: embed the plugin manifest"
            )
        _spec_rules(raw_spec, findings)
        return _finish(
            _prefixed(structural, "spec"),
            Findings(
                _prefixed(findings.errors, "spec"),
                _prefixed(findings.warnings, "spec"),
                {join_path("spec", f) for f in findings.judged},
            ),
            cfg,
            manifest,
            spec,
        )
    except Exception as exc:  # the contract is "never raises"
        return _crash("spec", exc)


def _spec_rules(raw: Mapping[str, object], out: Findings) -> None:
    image = raw.get("image")
    if "image" not in raw:
        out.error("image", "required field 'image' is missing, e.g. 'ghcr.io/acme/my-plugin:1.0.0'")
    elif isinstance(image, str):
        if not image.strip():
            out.error("image", "image must not be empty")
        elif any(c.isspace() for c in image):
            out.error("image", f"image {show(image)} must not contain whitespace")
        elif len(image) > r.IMAGE_MAX_LENGTH or not _IMAGE_RE.match(image):
            out.error(
                "image",
                f"image {show(image)} is not a valid image reference; use "
                "[registry/]repository[:tag][@digest] in lowercase, e.g. "
                "'ghcr.io/acme/user-management:1.0.0'",
            )
        else:
            last = image.rsplit("/", 1)[-1]
            if "@" not in image and ":" not in last:
                out.warn("image", f"image {show(image)} has no tag or digest; pin a version")
            elif "@" not in image and last.endswith(":latest"):
                out.warn("image", f"image {show(image)} uses ':latest'; pin a version")

    env = raw.get("env")
    if isinstance(env, list):
        first: dict[str, int] = {}
        for i, item in enumerate(env[: r.MAX_ENV_VARS]):
            if not isinstance(item, Mapping):
                continue
            name = item.get("name")
            path = join_path("env", i, "name")
            if "valueFrom" in item or "value_from" in item:
                out.error(
                    join_path("env", i, "valueFrom"),
                    "valueFrom is not supported; give a literal 'value'",
                )
            if not isinstance(name, str):
                continue
            if not _ENV_NAME_RE.match(name):
                out.error(
                    path,
                    f"environment variable name {show(name)} is invalid; use letters, digits "
                    "and '_', not starting with a digit",
                )
            elif name in r.RESERVED_ENV_NAMES or name.upper().startswith(r.RESERVED_ENV_PREFIX):
                out.error(
                    path,
                    f"environment variable {show(name)} is set by the operator and cannot be "
                    f"overridden (reserved: {contract.ENV_PLUGIN_ID}, {contract.ENV_TOKEN_FILE}, "
                    f"{r.RESERVED_ENV_PREFIX}*)",
                )
            if name in first:
                out.error(
                    path,
                    f"environment variable {show(name)} is defined more than once (first at "
                    f"{join_path('env', first[name])})",
                )
            else:
                first.setdefault(name, i)

    replicas = raw.get("replicas")
    if isinstance(replicas, int) and not isinstance(replicas, bool):
        if replicas < 0:
            out.error("replicas", f"replicas must be 0 or more, not {show(replicas)}")
        elif replicas > r.MAX_REPLICAS:
            out.error(
                "replicas", f"replicas must be at most {r.MAX_REPLICAS}, not {show(replicas)}"
            )

    for key in raw:
        if isinstance(key, str) and key not in PluginSpec.model_fields:
            hint = did_you_mean(key, PluginSpec.model_fields)
            if not hint and key in PluginManifest.model_fields:
                hint = f"; manifest fields go under 'manifest': did you mean 'manifest.{key}'?"
            if hint:
                out.error(key, f"unknown field {show(key)} in 'spec'{hint}")
