"""The manifest policy, rule by rule: a passing and a failing case on each side of each bound.

Every test starts from the seed's valid User Management manifest and mutates one thing.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import pytest
from tests.seed import user_management_manifest

from vivified.policy import PolicyConfig, ValidationReport, validate_manifest
from vivified.violations import Violation

SEED: dict[str, Any] = user_management_manifest()

Mutation = Callable[[dict[str, Any]], None]


def manifest(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(SEED)
    raw.update(changes)
    return raw


def phi_manifest(**compliance: Any) -> dict[str, Any]:
    raw = manifest(traits=["handles_phi", "audit_required"])
    raw["security"]["data_classification"] = ["phi"]
    raw["compliance"] = {
        "hipaa_controls": ["164.312(a)"],
        "audit_level": "complete",
        "data_retention_days": 2555,
        **compliance,
    }
    return raw


def at(report: ValidationReport, field: str) -> list[str]:
    """Error messages reported for exactly ``field``."""
    return [v.message for v in report.errors if v.field == field]


def warnings_at(report: ValidationReport, field: str) -> list[str]:
    return [v.message for v in report.warnings if v.field == field]


def assert_valid(raw: object) -> ValidationReport:
    report = validate_manifest(raw)
    assert report.errors == (), report.errors
    assert report.valid
    assert report.manifest is not None
    return report


def assert_error(raw: object, field: str, *fragments: str) -> ValidationReport:
    report = validate_manifest(raw)
    assert not report.valid
    messages = at(report, field)
    assert messages, f"expected an error at {field!r}, got {report.errors}"
    for fragment in fragments:
        assert any(fragment in msg for msg in messages), (fragment, messages)
    return report


def check(raw: dict[str, Any], field: str, ok: bool, *fragments: str) -> None:
    if ok:
        assert_valid(raw)
    else:
        assert_error(raw, field, *fragments)


# --------------------------------------------------------------------------------------------
# The seed examples
# --------------------------------------------------------------------------------------------


def test_seed_manifest_is_valid_without_warnings() -> None:
    report = assert_valid(manifest())
    assert report.warnings == ()


def test_report_is_immutable_and_serialisable() -> None:
    report = validate_manifest(manifest(id="Bad"))
    assert report.to_dict()["valid"] is False
    assert report.to_dict()["errors"][0]["field"] == "id"
    with pytest.raises(AttributeError):
        report.errors = ()  # type: ignore[misc]


@pytest.mark.parametrize(
    "raw",
    [None, [], "manifest", 42, 1.5, True, b"{}", {1, 2}],
    ids=["null", "list", "string", "int", "float", "bool", "bytes", "set"],
)
def test_non_object_input_is_one_violation_not_an_exception(raw: object) -> None:
    report = validate_manifest(raw)
    assert report.errors == (report.errors[0],)
    assert report.errors[0].field == ""
    assert "must be a JSON object" in report.errors[0].message
    assert report.manifest is None


# --------------------------------------------------------------------------------------------
# All errors at once, sorted, de-duplicated
# --------------------------------------------------------------------------------------------


def test_structural_and_semantic_errors_are_reported_together() -> None:
    raw = manifest(traits=["handles_phi", "audit_required"], resources={"memory_limit": "512"})
    report = validate_manifest(raw)
    assert at(report, "resources.memory_limit")
    assert any("'phi'" in m for m in at(report, "security.data_classification"))
    assert at(report, "compliance.hipaa_controls") == []  # the seed lists controls
    assert at(report, "compliance.data_retention_days")
    assert report.manifest is None


def test_errors_are_sorted_by_field_with_numeric_indices() -> None:
    raw = manifest(traits=[f"bogus{i}" for i in range(12)], id="BAD", version="x")
    fields = [v.field for v in validate_manifest(raw).errors]
    indexed = [f for f in fields if f.startswith("traits[")]
    assert indexed == [f"traits[{i}]" for i in range(12)]
    assert fields.index("id") < fields.index("traits") < fields.index("version")


def test_each_field_has_one_message_per_problem() -> None:
    report = validate_manifest(manifest(resources={"memory_limit": True}))
    assert len(at(report, "resources.memory_limit")) == 1
    assert len(set(report.errors)) == len(report.errors)


def test_errors_are_capped_with_a_summary() -> None:
    raw = manifest(**{f"junk{i}": i for i in range(30)})
    report = validate_manifest(raw, PolicyConfig(max_errors=10))
    assert len(report.errors) == 11
    assert report.errors[-1] == Violation("", "... and 20 more errors not shown")


def test_a_manifest_with_only_policy_errors_is_still_parsed() -> None:
    report = validate_manifest(manifest(traits=["handles_pii"]))
    assert not report.valid
    assert report.manifest is not None


# --------------------------------------------------------------------------------------------
# Unknown fields, at every level, with "did you mean"
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "field", "hint"),
    [
        pytest.param(lambda r: r.update(allowed_domain=[]), "allowed_domain",
                     "did you mean 'allowed_domains'?", id="top-level"),
        pytest.param(lambda r: r["security"].update(allowed_domain=[]), "security.allowed_domain",
                     "did you mean 'allowed_domains'?", id="security"),
        pytest.param(lambda r: r["security"].update(authentication=True),
                     "security.authentication", "did you mean 'authentication_required'?",
                     id="security-auth"),
        pytest.param(lambda r: r["compliance"].update(audit_levl="basic"),
                     "compliance.audit_levl", "did you mean 'audit_level'?", id="compliance"),
        pytest.param(lambda r: r.update(health_check={"interval": 10}), "health_check.interval",
                     "did you mean 'interval_seconds'?", id="health_check"),
        pytest.param(lambda r: r.update(resources={"memory": 128}), "resources.memory",
                     "did you mean 'memory_limit'?", id="resources"),
        pytest.param(lambda r: r.update(audit_level="basic"), "audit_level",
                     "did you mean 'compliance.audit_level'?", id="wrong-section"),
        pytest.param(lambda r: r.update(zzz=1), "zzz", "allowed fields: id, name", id="no-match"),
    ],
)  # fmt: skip
def test_unknown_fields_are_errors_with_a_hint(mutate: Mutation, field: str, hint: str) -> None:
    raw = manifest()
    mutate(raw)
    assert_error(raw, field, "unknown field", hint)


# --------------------------------------------------------------------------------------------
# id, name, version, description
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "ok", "fragment"),
    [
        ("a", True, ""),
        ("a1", True, ""),
        ("user-management", True, ""),
        ("a" * 50, True, ""),
        ("a" * 51, False, "the maximum is 50"),
        ("", False, "must not be empty"),
        ("User-Management", False, "must be lowercase"),
        ("user_management", False, "contains underscores; use only lowercase letters"),
        ("user_mgmt", False, "(e.g. 'user-mgmt')"),
        ("1plugin", False, "must start with a lowercase letter"),
        ("-plugin", False, "must start with a lowercase letter"),
        ("plugin-", False, "must not end with a hyphen"),
        ("my--plugin", False, "consecutive hyphens"),
        ("my plugin", False, "whitespace"),
        ("my.plugin", False, "other than lowercase letters"),
        ("plügin", False, "other than lowercase letters"),
    ],
    ids=lambda v: v if isinstance(v, str) and 0 < len(v) < 20 else None,
)
def test_plugin_id_format(value: str, ok: bool, fragment: str) -> None:
    check(manifest(id=value), "id", ok, fragment)


def test_id_is_required() -> None:
    raw = manifest()
    del raw["id"]
    assert_error(raw, "id", "required field 'id' is missing")


@pytest.mark.parametrize(
    ("value", "ok"),
    [("U", True), ("x" * 128, True), ("x" * 129, False), ("", False), ("   ", False),
     ("two\nlines", False)],
    ids=["one-char", "max", "too-long", "empty", "blank", "newline"],
)  # fmt: skip
def test_name(value: str, ok: bool) -> None:
    check(manifest(name=value), "name", ok)


@pytest.mark.parametrize(
    ("value", "ok", "fragment"),
    [
        ("1.0.0", True, ""),
        ("0.0.1", True, ""),
        ("10.20.30", True, ""),
        ("1.0.0-rc.1", True, ""),
        ("1.0.0-alpha+build.5", True, ""),
        ("1.0", False, "add the patch number: '1.0.0'"),
        ("v1.0.0", False, "drop the leading 'v'"),
        ("01.0.0", False, "MAJOR.MINOR.PATCH"),
        ("1.0.0.0", False, "MAJOR.MINOR.PATCH"),
        ("latest", False, "MAJOR.MINOR.PATCH"),
        ("", False, "MAJOR.MINOR.PATCH"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_version_is_semver(value: str, ok: bool, fragment: str) -> None:
    check(manifest(version=value), "version", ok, fragment)


@pytest.mark.parametrize(("length", "ok"), [(2048, True), (2049, False)], ids=["max", "over"])
def test_description_length(length: int, ok: bool) -> None:
    check(manifest(description="d" * length), "description", ok)


# --------------------------------------------------------------------------------------------
# contracts
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "field", "ok", "fragment"),
    [
        (["IdentityPlugin"], "contracts", True, ""),
        (["StoragePlugin"], "contracts", True, ""),
        (["CommunicationPlugin", "IdentityPlugin"], "contracts", True, ""),
        ([], "contracts", False, "declare at least one contract"),
        (["identityplugin"], "contracts[0]", False, "did you mean 'IdentityPlugin'?"),
        (["AnalyticsPlugin"], "contracts[0]", False, "valid contracts are"),
        (["IdentityPlugin", "IdentityPlugin"], "contracts[1]", False, "more than once"),
        ("IdentityPlugin", "contracts", False, "must be a list"),
    ],
    ids=["identity", "storage", "two", "empty", "case", "unknown", "duplicate", "not-a-list"],
)
def test_contracts(value: object, field: str, ok: bool, fragment: str) -> None:
    check(manifest(contracts=value), field, ok, fragment)


# --------------------------------------------------------------------------------------------
# traits (the registry itself is tested in test_traits.py)
# --------------------------------------------------------------------------------------------


def test_at_least_one_trait_is_required() -> None:
    assert_error(manifest(traits=[]), "traits", "at least one trait")
    raw = manifest()
    del raw["traits"]
    assert_error(raw, "traits", "at least one trait")


@pytest.mark.parametrize("trait", ["admin", "system", "root", "superuser", "privileged", "Admin"])
def test_reserved_traits_are_rejected(trait: str) -> None:
    assert_error(manifest(traits=["audit_required", trait]), "traits[1]", "reserved")


def test_unknown_trait_has_did_you_mean() -> None:
    assert_error(
        manifest(traits=["handles_pi", "audit_required"]),
        "traits[0]",
        "unknown trait 'handles_pi'",
        "did you mean 'handles_pii'?",
    )


def test_duplicate_traits_are_reported() -> None:
    raw = manifest(traits=["handles_pii", "audit_required", "handles_pii"])
    assert_error(raw, "traits[2]", "more than once (first at traits[0])")


def test_legacy_alias_is_accepted_with_a_warning() -> None:
    report = assert_valid(manifest(traits=["pii", "audit_required"]))
    assert warnings_at(report, "traits[0]") == [
        "trait 'pii' is a legacy alias; write 'handles_pii' instead"
    ]


def test_alias_and_its_target_together_are_a_duplicate() -> None:
    assert_error(
        manifest(traits=["handles_pii", "pii", "audit_required"]), "traits[1]", "more than once"
    )


# --------------------------------------------------------------------------------------------
# Data classification and trait consistency (both ways)
# --------------------------------------------------------------------------------------------


def _classified(traits: list[str], classes: object) -> dict[str, Any]:
    raw = manifest(traits=traits)
    raw["security"]["data_classification"] = classes
    return raw


@pytest.mark.parametrize(
    ("traits", "classes", "field", "ok", "fragment"),
    [
        (["handles_pii", "audit_required"], ["pii"], "", True, ""),
        (["handles_pii", "audit_required"], ["internal"], "security.data_classification", False,
         "must declare 'pii'"),
        (["audit_required"], ["pii"], "traits", False, "add 'handles_pii'"),
        (["handles_phi", "audit_required"], ["internal"], "security.data_classification", False,
         "must declare 'phi'"),
        (["audit_required"], ["phi"], "traits", False, "add 'handles_phi'"),
        (["audit_required"], ["public"], "", True, ""),
        (["audit_required"], ["confidential", "internal"], "", True, ""),
        (["audit_required"], [], "security.data_classification", False, "at least one of"),
        (["audit_required"], ["secret"], "security.data_classification[0]", False,
         "unknown data classification 'secret'"),
        (["audit_required"], ["Public"], "security.data_classification[0]", False,
         "did you mean 'public'?"),
        (["audit_required"], ["public", "public"], "security.data_classification[1]", False,
         "more than once"),
    ],
    ids=["pii-both", "pii-trait-only", "pii-class-only", "phi-trait-only", "phi-class-only",
         "public", "confidential", "empty", "unknown", "case", "duplicate"],
)  # fmt: skip
def test_data_classification(
    traits: list[str], classes: object, field: str, ok: bool, fragment: str
) -> None:
    check(_classified(traits, classes), field, ok, fragment)


def test_data_classification_is_required() -> None:
    raw = manifest()
    del raw["security"]["data_classification"]
    assert_error(raw, "security.data_classification", "at least one of")


# --------------------------------------------------------------------------------------------
# Authentication and network isolation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "ok", "fragment"),
    [(True, True, ""), (False, False, "must be true"), ("true", False, "true or false"),
     (1, False, "true or false")],
    ids=["true", "false", "string", "int"],
)  # fmt: skip
def test_authentication_required_must_be_true(value: object, ok: bool, fragment: str) -> None:
    raw = manifest()
    raw["security"]["authentication_required"] = value
    check(raw, "security.authentication_required", ok, fragment)


def test_authentication_required_is_required() -> None:
    raw = manifest()
    del raw["security"]["authentication_required"]
    assert_error(raw, "security.authentication_required", "missing")


def test_security_section_is_required() -> None:
    raw = manifest()
    del raw["security"]
    assert_error(raw, "security", "required section 'security' is missing")


def test_network_isolation_false_is_a_warning() -> None:
    raw = manifest()
    raw["security"]["network_isolation"] = False
    report = assert_valid(raw)
    assert warnings_at(report, "security.network_isolation")


def test_network_isolation_false_contradicts_network_isolated_trait() -> None:
    raw = manifest(traits=["handles_pii", "audit_required", "network_isolated"])
    raw["security"]["network_isolation"] = False
    assert_error(raw, "security.network_isolation", "network_isolated")


# --------------------------------------------------------------------------------------------
# allowed_domains (domain syntax itself: test_domains.py)
# --------------------------------------------------------------------------------------------


def _external(top: list[Any] | None = None, sec: list[Any] | None = None) -> dict[str, Any]:
    raw = manifest(traits=["handles_pii", "audit_required", "external_service"])
    if top is not None:
        raw["allowed_domains"] = top
    if sec is not None:
        raw["security"]["allowed_domains"] = sec
    return raw


def test_external_service_needs_domains() -> None:
    assert_error(_external(), "security.allowed_domains", "'external_service'")


@pytest.mark.parametrize(
    ("top", "sec"),
    [(["api.stripe.com"], None), (None, ["api.stripe.com"]), (["a.example"], ["b.example"])],
    ids=["top-level", "security", "both"],
)
def test_external_service_domains_may_be_in_either_list(
    top: list[Any] | None, sec: list[Any] | None
) -> None:
    assert_valid(_external(top, sec))


def test_domain_errors_point_at_the_entry() -> None:
    report = validate_manifest(_external(["api.stripe.com", "localhost"], ["10.0.0.1"]))
    assert at(report, "allowed_domains[1]") == ["'localhost' is a loopback name"]
    assert "private-network" in at(report, "security.allowed_domains[0]")[0]


def test_duplicate_domains_compare_normalised_names() -> None:
    raw = _external(["api.stripe.com", "API.Stripe.com"])
    assert_error(raw, "allowed_domains[1]", "more than once (first at allowed_domains[0])")


def test_same_domain_in_both_lists_is_only_a_warning() -> None:
    report = assert_valid(_external(["api.stripe.com"], ["api.stripe.com"]))
    assert warnings_at(report, "security.allowed_domains[0]")


def test_domains_without_external_service_trait_warn() -> None:
    report = assert_valid(manifest(allowed_domains=["api.stripe.com"]))
    assert warnings_at(report, "allowed_domains")


def test_non_string_domain_is_a_type_error() -> None:
    assert_error(_external([42]), "allowed_domains[0]", "must be a string")


def test_too_many_domains() -> None:
    names = [f"h{i}.example.org" for i in range(101)]
    assert_error(_external(names), "allowed_domains", "too many items (101; the maximum is 100)")
    assert_valid(_external(names[:100]))


# --------------------------------------------------------------------------------------------
# compliance: audit level, HIPAA controls, PHI retention
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "ok", "fragment"),
    [("basic", True, ""), ("detailed", True, ""), ("complete", True, ""),
     ("none", False, "'audit_required'"), ("detaild", False, "did you mean 'detailed'?"),
     ("verbose", False, "use one of none, basic, detailed, complete"),
     (3, False, "must be one of")],
    ids=["basic", "detailed", "complete", "none-with-audit-trait", "typo", "unknown", "number"],
)  # fmt: skip
def test_audit_level(level: object, ok: bool, fragment: str) -> None:
    raw = manifest()
    raw["compliance"]["audit_level"] = level
    check(raw, "compliance.audit_level", ok, fragment)


def test_audit_level_none_is_fine_without_audit_trait() -> None:
    raw = manifest(traits=["stateless"])
    raw["security"]["data_classification"] = ["public"]
    raw["compliance"] = {"audit_level": "none"}
    assert_valid(raw)


def test_low_audit_level_for_sensitive_data_warns() -> None:
    raw = manifest()
    raw["compliance"]["audit_level"] = "basic"
    report = assert_valid(raw)
    assert warnings_at(report, "compliance.audit_level")


def test_compliance_section_and_audit_level_are_required() -> None:
    raw = manifest()
    del raw["compliance"]
    assert_error(raw, "compliance", "required section 'compliance'")
    raw = manifest()
    del raw["compliance"]["audit_level"]
    assert_error(raw, "compliance.audit_level", "missing")


@pytest.mark.parametrize(
    ("control", "ok"),
    [
        ("164.312(a)", True),
        ("164.312(d)", True),
        ("164.312(a)(1)", True),
        ("164.312(a)(2)(iv)", True),
        ("164.308(a)(1)(ii)(A)", True),
        ("164.312", False),
        ("164.312a", False),
        ("164(a)", False),
        ("(a)", False),
        ("164.312()", False),
        ("164.312(a", False),
        ("HIPAA access control", False),
        ("", False),
    ],
    ids=lambda v: v if isinstance(v, str) and v else None,
)
def test_hipaa_control_format_is_checked_for_every_plugin(control: str, ok: bool) -> None:
    raw = manifest()  # a PII plugin, not PHI: formats are still validated
    raw["compliance"]["hipaa_controls"] = ["164.312(e)(1)", control]
    check(raw, "compliance.hipaa_controls[1]", ok, "invalid format")


def test_duplicate_hipaa_controls() -> None:
    raw = manifest()
    raw["compliance"]["hipaa_controls"] = ["164.312(a)", "164.312(a)"]
    assert_error(raw, "compliance.hipaa_controls[1]", "more than once")


def test_phi_manifest_is_valid() -> None:
    assert_valid(phi_manifest())


def test_phi_needs_hipaa_controls() -> None:
    assert_error(phi_manifest(hipaa_controls=[]), "compliance.hipaa_controls", "at least one")


@pytest.mark.parametrize(
    ("days", "ok", "fragment"),
    [(2555, True, ""), (2556, True, ""), (36500, True, ""), (2554, False, "at least 2555"),
     (1, False, "at least 2555"), (None, False, "at least 2555"), (0, False, "at least 1"),
     (36501, False, "at most 36500"), ("2555", False, "whole number")],
    ids=["2555", "2556", "max", "2554", "1", "missing", "zero", "over-max", "string"],
)  # fmt: skip
def test_phi_retention(days: object, ok: bool, fragment: str) -> None:
    raw = phi_manifest(data_retention_days=days)
    if days is None:
        del raw["compliance"]["data_retention_days"]
    check(raw, "compliance.data_retention_days", ok, fragment)


def test_retention_below_phi_minimum_is_fine_without_phi() -> None:
    raw = manifest()
    raw["compliance"]["data_retention_days"] = 30
    assert_valid(raw)


# --------------------------------------------------------------------------------------------
# dependencies
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("deps", "field", "ok", "fragment"),
    [
        (["identity-service", "email-sender"], "", True, ""),
        (["Identity-Service"], "dependencies[0]", False, "lowercase"),
        (["email_sender"], "dependencies[0]", False, "underscores"),
        (["user-management"], "dependencies[0]", False, "cannot depend on itself"),
        (["a", "b", "a"], "dependencies[2]", False, "more than once"),
        (["x" * 51], "dependencies[0]", False, "the maximum is 50"),
        ([7], "dependencies[0]", False, "must be a string"),
    ],
    ids=["ok", "uppercase", "underscore", "self", "duplicate", "too-long", "not-a-string"],
)
def test_dependencies(deps: list[object], field: str, ok: bool, fragment: str) -> None:
    check(manifest(dependencies=deps), field, ok, fragment)


# --------------------------------------------------------------------------------------------
# endpoints
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoints", "field", "ok", "fragment"),
    [
        ({"health": "/health", "user": "/api/users/{id}"}, "", True, ""),
        ({"health": "health"}, "endpoints.health", False, "starting with '/'"),
        ({"health": "https://x.example/health"}, "endpoints.health", False, "starting with '/'"),
        ({"evil": "//evil.example/x"}, "endpoints.evil", False, "'//'"),
        ({"health": "/he alth"}, "endpoints.health", False, "whitespace"),
        ({"bad name": "/x"}, "endpoints.'bad name'", False, "endpoint name"),
        ({"health": 1}, "endpoints.health", False, "must be a string"),
        ({"p": "/" + "x" * 512}, "endpoints.p", False, "longer than 512"),
    ],
    ids=["ok", "relative", "url", "double-slash", "space", "bad-name", "not-string", "too-long"],
)
def test_endpoints(endpoints: object, field: str, ok: bool, fragment: str) -> None:
    check(manifest(endpoints=endpoints), field, ok, fragment)


# --------------------------------------------------------------------------------------------
# health_check
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("health", "field", "ok", "fragment"),
    [
        ({"type": "http", "port": 8000, "path": "/health"}, "", True, ""),
        ({"type": "tcp", "port": 8000}, "", True, ""),
        ({"type": "custom"}, "", True, ""),
        ({"type": "grpc"}, "health_check.type", False, "use http, tcp or custom"),
        ({"type": "HTTP"}, "health_check.type", False, "did you mean 'http'?"),
        ({"port": 0}, "health_check.port", False, "1-65535"),
        ({"port": 1}, "", True, ""),
        ({"port": 65535}, "", True, ""),
        ({"port": 65536}, "health_check.port", False, "1-65535"),
        ({"port": "8080"}, "health_check.port", False, "remove the quotes"),
        ({"path": "health"}, "health_check.path", False, "starting with '/'"),
        ({"interval_seconds": 30, "timeout_seconds": 29}, "", True, ""),
        ({"interval_seconds": 30, "timeout_seconds": 30}, "health_check.timeout_seconds", False,
         "must be less than interval_seconds"),
        ({"timeout_seconds": 31}, "health_check.timeout_seconds", False, "30, the default"),
        ({"interval_seconds": 0}, "health_check.interval_seconds", False, "positive"),
        ({"timeout_seconds": 0}, "health_check.timeout_seconds", False, "positive"),
        ({"failure_threshold": 0}, "health_check.failure_threshold", False, "positive"),
        ({"failure_threshold": 1}, "", True, ""),
        ({"interval_seconds": 3601}, "health_check.interval_seconds", False, "at most 3600"),
        ("yes", "health_check", False, "must be an object"),
    ],
    ids=["http", "tcp", "custom", "unknown-type", "type-case", "port-0", "port-1", "port-65535",
         "port-65536", "port-string", "relative-path", "timeout-below-interval",
         "timeout-equals-interval", "timeout-above-default-interval", "interval-0", "timeout-0",
         "threshold-0", "threshold-1", "interval-too-long", "not-an-object"],
)  # fmt: skip
def test_health_check(health: object, field: str, ok: bool, fragment: str) -> None:
    check(manifest(health_check=health), field, ok, fragment)


def test_path_on_tcp_check_is_ignored_with_a_warning() -> None:
    report = assert_valid(manifest(health_check={"type": "tcp", "path": "/health"}))
    assert warnings_at(report, "health_check.path")


# --------------------------------------------------------------------------------------------
# resources
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("memory", "ok", "fragment"),
    [(63, False, "too low"), (64, True, ""), (512, True, ""), (8192, True, ""),
     (8193, False, "too high"), (0, False, "too low"), (-1, False, "too low"),
     ("512", False, "not the string '512'"), (True, False, "not a boolean"),
     (512.5, False, "whole number"), (512.0, False, "write 512"), (None, True, "")],
    ids=["63", "64", "512", "8192", "8193", "0", "negative", "string", "bool", "fraction",
         "float", "null-means-default"],
)  # fmt: skip
def test_memory_limit_bounds(memory: object, ok: bool, fragment: str) -> None:
    check(manifest(resources={"memory_limit": memory}), "resources.memory_limit", ok, fragment)


@pytest.mark.parametrize(
    ("cpu", "ok", "fragment"),
    [(0.09, False, "too low"), (0.1, True, ""), (1, True, ""), (2.5, True, ""), (8, True, ""),
     (8.0, True, ""), (8.01, False, "too high"), (0, False, "too low"),
     ("1", False, "not the string '1'"), (False, False, "not a boolean"),
     (math.nan, False, "finite"), (math.inf, False, "finite")],
    ids=["0.09", "0.1", "1", "2.5", "8", "8.0", "8.01", "0", "string", "bool", "nan", "inf"],
)  # fmt: skip
def test_cpu_limit_bounds(cpu: object, ok: bool, fragment: str) -> None:
    check(manifest(resources={"cpu_limit": cpu}), "resources.cpu_limit", ok, fragment)


def test_resources_are_optional_and_may_be_partial() -> None:
    assert_valid(manifest(resources={"memory_limit": 512, "cpu_limit": 1}))
    assert_valid(manifest(resources={"cpu_limit": 0.5}))
    assert_valid(manifest(resources={}))


# --------------------------------------------------------------------------------------------
# Hostile input: caps on lists and strings
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "maximum"),
    [
        ("traits", ["audit_required"] * 33, 32),
        ("dependencies", [f"p{i}" for i in range(65)], 64),
        ("endpoints", {f"e{i}": "/x" for i in range(65)}, 64),
    ],
    ids=["traits", "dependencies", "endpoints"],
)
def test_list_caps(field: str, value: object, maximum: int) -> None:
    assert_error(manifest(**{field: value}), field, f"the maximum is {maximum}")


def test_huge_input_is_fast_and_bounded() -> None:
    raw = manifest(traits=["x"] * 200_000, **{f"junk{i}": i for i in range(5000)})
    report = validate_manifest(raw)
    assert len(report.errors) <= PolicyConfig().max_errors + 1


def test_self_referencing_input_does_not_raise() -> None:
    raw: dict[str, Any] = manifest()
    raw["security"] = raw
    report = validate_manifest(raw)
    assert not report.valid


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param({"0\u00b20": None}, id="superscript-digit-key"),
        pytest.param(manifest(resources={"memory_limit": 10**5000}), id="huge-int"),
        pytest.param(manifest(health_check={"port": -(10**5000)}), id="huge-negative-int"),
        pytest.param({10**5000: 1}, id="huge-int-key"),
        pytest.param(manifest(resources={"cpu_limit": 10**5000}), id="huge-int-cpu"),
    ],
)
def test_found_by_property_tests(raw: object) -> None:
    report = validate_manifest(raw)
    assert not report.valid
    assert not any("could not process" in v.message for v in report.errors)
