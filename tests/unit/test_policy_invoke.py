"""The operator lane's pure decision, rule by rule, and path-template filling."""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.core_fakes import manifest, record

from vivified.policy.invoke import (
    PathRefused,
    decide_invoke,
    effective_permissions,
    fill_path,
)

B_ENDPOINTS = {"health": "/health", "user_info": "/api/users/{id}", "delete_all": "/api/all"}
B = manifest("b", endpoints=B_ENDPOINTS)
A = manifest("a", dependencies=["b", "ghost"])
PHI_B = manifest("b", endpoints=B_ENDPOINTS, data_classification=["phi"], traits=["handles_phi"])
PII_B = manifest("b", endpoints=B_ENDPOINTS, data_classification=["pii"])
A_PII = manifest("a", dependencies=["b"], traits=["handles_pii"])


@pytest.mark.parametrize(
    ("caller", "target_id", "target", "operation", "reason", "status"),
    [
        pytest.param(record(A), "b", record(B), "user_info", "allowed", 200, id="allowed"),
        pytest.param(
            record(A, phase="Disabled"),
            "b",
            record(B),
            "user_info",
            "caller_inactive",
            403,
            id="caller not Active",
        ),
        pytest.param(
            record(A, enabled=False),
            "b",
            record(B),
            "user_info",
            "caller_inactive",
            403,
            id="caller disabled",
        ),
        pytest.param(
            record(manifest("c")),
            "b",
            record(B),
            "user_info",
            "not_a_dependency",
            403,
            id="no dependency",
        ),
        pytest.param(
            record(manifest("c")),
            "ghost",
            None,
            "x",
            "not_a_dependency",
            403,
            id="no dependency hides whether the target exists",
        ),
        pytest.param(record(A), "ghost", None, "x", "unknown_target", 404, id="unknown target"),
        pytest.param(
            record(A),
            "b",
            record(B),
            "delete_all",
            "dangerous_operation",
            403,
            id="dangerous even when declared",
        ),
        pytest.param(
            record(A),
            "b",
            record(B),
            "nope",
            "undeclared_operation",
            404,
            id="undeclared",
        ),
        pytest.param(
            record(A),
            "b",
            record(PHI_B),
            "user_info",
            "missing_handles_phi",
            403,
            id="phi",
        ),
        pytest.param(
            record(A),
            "b",
            record(PII_B),
            "user_info",
            "missing_handles_pii",
            403,
            id="pii",
        ),
        pytest.param(
            record(A_PII),
            "b",
            record(PII_B),
            "user_info",
            "allowed",
            200,
            id="pii with trait",
        ),
        pytest.param(
            record(A),
            "b",
            record(B, phase="Pending"),
            "user_info",
            "target_inactive",
            503,
            id="target Pending",
        ),
        pytest.param(
            record(A),
            "b",
            record(B, enabled=False),
            "user_info",
            "target_inactive",
            503,
            id="target disabled",
        ),
        pytest.param(
            record(A),
            "b",
            record(B, health="unhealthy"),
            "user_info",
            "target_unhealthy",
            503,
            id="target unhealthy",
        ),
        pytest.param(
            record(A),
            "b",
            record(B, health="degraded"),
            "user_info",
            "allowed",
            200,
            id="degraded still serves",
        ),
        pytest.param(
            record(A),
            "b",
            record(B, health="unknown"),
            "user_info",
            "allowed",
            200,
            id="unknown health still serves",
        ),
        pytest.param(
            record(A),
            "b",
            record(PHI_B, health="unhealthy"),
            "user_info",
            "missing_handles_phi",
            403,
            id="policy before availability",
        ),
    ],
)
def test_decision_rule_by_rule(  # noqa: PLR0917 - parametrised
    caller: Any, target_id: str, target: Any, operation: str, reason: str, status: int
) -> None:
    decision = decide_invoke(caller, target_id, target, operation)
    assert (decision.reason, decision.status) == (reason, status)
    assert decision.allowed is (reason == "allowed")
    assert decision.message


def test_dangerous_list_is_configurable() -> None:
    allowed = decide_invoke(record(A), "b", record(B), "delete_all", dangerous=())
    assert allowed.allowed
    refused = decide_invoke(record(A), "b", record(B), "user_info", dangerous={"user_info"})
    assert refused.reason == "dangerous_operation"


@pytest.mark.parametrize(
    ("template", "rest", "query", "expected"),
    [
        ("/api/users/{id}", "/42", "", "/api/users/42"),
        ("/api/users/{id}", "/j%C3%B6rg", "", "/api/users/j%C3%B6rg"),
        ("/api/users/{id}", "/a%20b", "", "/api/users/a%20b"),
        ("/health", "", "", "/health"),
        ("/api/{org}/users/{id}", "/acme/7", "", "/api/acme/users/7"),
        ("/api/users/{id}", "/42", "fields=name&x=1", "/api/users/42?fields=name&x=1"),
    ],
)
def test_fill_path(template: str, rest: str, query: str, expected: str) -> None:
    assert fill_path(template, rest, query) == expected


@pytest.mark.parametrize(
    ("rest", "query", "reason"),
    [
        ("/..", "", "path_traversal"),
        ("/.", "", "path_traversal"),
        ("/%2e%2e", "", "path_traversal"),
        ("/%2E%2E", "", "path_traversal"),
        ("/a%2Fb", "", "invalid_path_segment"),
        ("/a%2fb", "", "invalid_path_segment"),
        ("/a%5Cb", "", "invalid_path_segment"),
        ("/a\\b", "", "invalid_path_segment"),
        ("/a%00", "", "invalid_path_segment"),
        ("/a%0d%0aX-Injected:%201", "", "invalid_path_segment"),
        ("/a\r\nX: 1", "", "invalid_path_segment"),
        ("/%252e%252e", "", "invalid_path_segment"),
        ("/%zz", "", "invalid_path_segment"),
        ("/%ff", "", "invalid_path_segment"),
        ("/http:", "", "invalid_path_segment"),
        ("//evil.example", "", "invalid_path_segment"),
        ("/", "", "invalid_path_segment"),
        ("/42/extra", "", "path_mismatch"),
        ("", "", "path_mismatch"),
        ("42", "", "invalid_path"),
        ("/42", "a=%0d%0a\x7f", "invalid_query"),
        ("/42", "a=b c", "invalid_query"),
    ],
)
def test_fill_path_refuses(rest: str, query: str, reason: str) -> None:
    with pytest.raises(PathRefused) as refused:
        fill_path("/api/users/{id}", rest, query)
    assert refused.value.reason == reason


def test_effective_permissions_use_the_same_rules() -> None:
    b = manifest("b", endpoints=B_ENDPOINTS, data_classification=["pii"])
    a = manifest("a", dependencies=["b"], traits=["handles_pii"])
    c = manifest("c", dependencies=["b"])  # lacks handles_pii
    d = manifest("d", dependencies=["ghost"])
    everyone = [a, b, c, d]
    assert effective_permissions("a", everyone) == {"mayCall": ["b"], "callableBy": []}
    assert effective_permissions("b", everyone) == {"mayCall": [], "callableBy": ["a"]}
    assert effective_permissions("c", everyone) == {"mayCall": [], "callableBy": []}
    assert effective_permissions("d", everyone) == {"mayCall": [], "callableBy": []}
    assert effective_permissions("zzz", everyone) == {"mayCall": [], "callableBy": []}
