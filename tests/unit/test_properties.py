"""Property-based tests: the validator returns a well-formed report for *any* input, never raises.

Inputs are arbitrary JSON-like values and mutations of the seed's valid manifest (keys dropped,
types changed, junk keys and values inserted), at every nesting level.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.seed import user_management_manifest

from vivified.policy import ValidationReport, check_domain, validate_manifest, validate_spec
from vivified.violations import Violation

SEED: dict[str, Any] = user_management_manifest(
    health_check={"type": "http", "port": 8000, "path": "/health"},
    resources={"memory_limit": 512, "cpu_limit": 1},
)

INTERESTING_STRINGS = st.sampled_from(
    [
        "", " ", "admin", "handles_phi", "phi", "pii", "external_service", "localhost",
        "127.0.0.1", "::1", "[::1]", "*.x.com", "https://a.b", "a..b", "bücher.example",
        "\x00", "\ud800", "164.312(a)", "1.0.0", "IdentityPlugin", "none", "tcp", "/x", "//x",
        "x" * 300, "allowed_domain", "security", "traits", "0x7f.1", "2130706433",
    ]
)  # fmt: skip

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    # str() of such ints raises in Python >= 3.11 (int_max_str_digits)
    st.sampled_from([1, -1]).map(lambda sign: sign * 10**5000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    INTERESTING_STRINGS,
)

JSON = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(st.one_of(st.text(max_size=12), INTERESTING_STRINGS), children,
                        max_size=6),
    ),
    max_leaves=30,
)  # fmt: skip


def _paths(value: object, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a container member inside ``value``."""
    out: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        for key, sub in value.items():
            out.append((*prefix, key))
            out.extend(_paths(sub, (*prefix, key)))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            out.append((*prefix, i))
            out.extend(_paths(sub, (*prefix, i)))
    return out


@st.composite
def mutated_manifests(draw: st.DrawFn) -> object:
    raw: Any = copy.deepcopy(SEED)
    for _ in range(draw(st.integers(min_value=1, max_value=5))):
        paths = _paths(raw)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent: Any = raw
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        action = draw(st.sampled_from(["drop", "replace", "junk-key", "append"]))
        if action == "drop":
            del parent[last]
        elif action == "replace":
            parent[last] = draw(JSON)
        elif action == "junk-key" and isinstance(parent, dict):
            parent[draw(st.one_of(st.text(max_size=12), INTERESTING_STRINGS))] = draw(JSON)
        elif isinstance(parent, list):
            parent.append(draw(JSON))
    return raw


def assert_well_formed(report: object) -> None:
    assert isinstance(report, ValidationReport)
    for violation in (*report.errors, *report.warnings):
        assert isinstance(violation, Violation)
        assert isinstance(violation.field, str)
        assert isinstance(violation.message, str)
        assert violation.message
    if report.valid:
        assert report.manifest is not None
    # The catch-all in validate_* must never be what produced the report: that would mean a
    # rule crashed on this input.
    assert not any("could not process" in v.message for v in report.errors), report.errors
    assert list(report.errors) == sorted(set(report.errors), key=report.errors.index)


#: 1,000 arbitrary plus 1,000 mutated manifests per run: the 2,000 issue 2 asks for, at half the
#: CI time of 2,000 each (hypothesis draws new ones every run; its database replays failures).
EXAMPLES_PER_KIND = 1000


@settings(
    max_examples=EXAMPLES_PER_KIND, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(JSON)
def test_arbitrary_values_never_raise(raw: object) -> None:
    assert_well_formed(validate_manifest(raw))


@settings(
    max_examples=EXAMPLES_PER_KIND, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(mutated_manifests())
def test_mutated_manifests_never_raise(raw: object) -> None:
    assert_well_formed(validate_manifest(raw))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_manifests(), JSON, JSON)
def test_specs_never_raise(manifest: object, image: object, replicas: object) -> None:
    report = validate_spec({"manifest": manifest, "image": image, "replicas": replicas})
    assert_well_formed(report)
    assert all(v.field.startswith("spec") for v in report.errors)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=300), INTERESTING_STRINGS, SCALARS))
def test_check_domain_never_raises(name: object) -> None:
    reason = check_domain(name)
    assert reason is None or (isinstance(reason, str) and reason)


@settings(max_examples=300, deadline=None)
@given(
    st.from_regex(r"[a-z][a-z0-9]{0,20}(\.[a-z][a-z0-9]{0,20}){1,3}\.(com|org|io)", fullmatch=True)
)
def test_ordinary_host_names_are_accepted(name: str) -> None:
    if not any(
        part in {"malware", "phishing", "test", "wicar", "eicar"} for part in name.split(".")
    ):
        assert check_domain(name) is None
