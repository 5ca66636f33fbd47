"""What each audit_level keeps, and that no credential reaches a record."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import jwt
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from vivified.audit import AuditEntry, redact
from vivified.audit.chain import Head, _plain, canonical, seal
from vivified.audit.record import build_body, format_time, kept, must_persist
from vivified.audit.redact import scrub

NOW = datetime(2026, 12, 1, 21, 0, 0, 123456, tzinfo=UTC)
FULL_DETAILS: dict[str, object] = {
    "method": "POST",
    "status": 200,
    "request_bytes": 120,
    "response_bytes": 3400,
    "duration_ms": 12.3456,
    "headers": {
        "Content-Type": "application/json",
        "Authorization": "Bearer abc.def.ghi",
        "Cookie": "session=s3cr3t",
        "X-Api-Key": "k3y",
        "User-Agent": "vivified-sdk/1.0",
    },
    "request_sha256": "a" * 64,
    "response_sha256": "b" * 64,
    "path": "/patients/123",
    "body": "{...}",
}


def entry(level: str, **changes: object) -> AuditEntry:
    base: dict[str, object] = {
        "action": "invoke",
        "agent": "billing",
        "outcome": "allowed",
        "entity": {"target": "user-management", "operation": "user_info"},
        "details": FULL_DETAILS,
        "audit_level": level,
        "purpose_of_use": "TREAT",
    }
    base.update(changes)
    return AuditEntry(**base)  # type: ignore[arg-type]


def test_none_keeps_no_allowed_traffic() -> None:
    assert build_body(entry("none"), NOW) is None


@pytest.mark.parametrize("action", ["lifecycle.disabled", "ui.enable"])
def test_none_keeps_platform_actions_as_metadata(action: str) -> None:
    body = build_body(entry("none", action=action), NOW)
    assert body is not None
    assert "details" not in body
    assert body["audit_level"] == "none"


def test_none_keeps_refusals_as_metadata() -> None:
    body = build_body(entry("none", outcome="refused", reason="not_a_dependency"), NOW)
    assert body is not None
    assert body["reason"] == "not_a_dependency"
    assert "details" not in body


def test_basic_is_metadata_only() -> None:
    body = build_body(entry("basic"), NOW)
    assert body == {
        "v": 1,
        "time": "2026-12-01T21:00:00.123456Z",
        "action": "invoke",
        "lane": "operator",
        "agent": {"type": "plugin", "id": "billing", "requestor": True},
        "entity": {"operation": "user_info", "target": "user-management"},
        "outcome": "allowed",
        "audit_level": "basic",
        "purpose_of_use": "TREAT",
    }


def test_detailed_adds_request_details_and_allowlisted_headers_only() -> None:
    body = build_body(entry("detailed"), NOW)
    assert body is not None
    assert body["details"] == {
        "method": "POST",
        "status": 200,
        "request_bytes": 120,
        "response_bytes": 3400,
        "duration_ms": 12.346,
        "headers": {"content-type": "application/json", "user-agent": "vivified-sdk/1.0"},
    }


def test_complete_adds_body_digests_never_bodies() -> None:
    body = build_body(entry("complete"), NOW)
    assert body is not None
    details = body["details"]
    assert isinstance(details, dict)
    assert details["request_sha256"] == "a" * 64
    assert details["response_sha256"] == "b" * 64
    assert "body" not in details
    assert "path" not in details


def test_complete_drops_malformed_digests() -> None:
    body = build_body(entry("complete", details={"request_sha256": "not-a-digest"}), NOW)
    assert body is not None
    assert "details" not in body


def test_user_agent_and_unknown_level() -> None:
    body = build_body(entry("bogus", agent="user:alice@example.com", action="ui.disable"), NOW)
    assert body is not None
    assert body["agent"] == {"type": "user", "id": "alice@example.com", "requestor": True}
    assert body["audit_level"] == "complete"  # unknown: keep more, never less
    assert body["lane"] == "ui"


def test_must_persist() -> None:
    assert must_persist(entry("complete"))
    assert must_persist(entry("basic", audit_required=True))
    assert not must_persist(entry("detailed"))
    assert kept(entry("basic"))


def _token(claims: dict[str, object]) -> str:
    return jwt.encode(claims, "k" * 32, algorithm="HS256")


_texts = st.text(min_size=0, max_size=20)
_claims = st.dictionaries(st.sampled_from(["sub", "plugin_id", "jti", "x"]), _texts, min_size=1)
_places = st.sampled_from(
    [
        "reason",
        "purpose",
        "entity",
        "agent",
        "ua",
        "auth",
        "cookie",
        "proxy-auth",
        "detail-key",
        "method",
        "event_id",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    claims=_claims,
    place=_places,
    level=st.sampled_from(["none", "basic", "detailed", "complete"]),
    prefix=_texts,
    suffix=_texts,
    outcome=st.sampled_from(["allowed", "refused"]),
)
def test_no_token_reaches_a_record(  # noqa: PLR0917 - hypothesis fills them by name
    claims: dict[str, object], place: str, level: str, prefix: str, suffix: str, outcome: str
) -> None:
    token = _token(claims)
    carried = f"{prefix}{token}{suffix}"
    headers: dict[str, str] = {"Content-Type": "application/json"}
    details: dict[str, object] = {"method": "GET", "headers": headers}
    kwargs: dict[str, object] = {"outcome": outcome, "details": details}
    if place == "reason":
        kwargs["reason"] = carried
    elif place == "purpose":
        kwargs["purpose_of_use"] = carried
    elif place == "entity":
        kwargs["entity"] = {"target": carried, carried: "x"}
    elif place == "agent":
        kwargs["agent"] = carried
    elif place == "ua":
        headers["User-Agent"] = carried
    elif place == "auth":
        headers["Authorization"] = f"Bearer {token}"
    elif place == "cookie":
        headers["Cookie"] = carried
    elif place == "proxy-auth":
        headers["Proxy-Authorization"] = f"Basic {token}"
    elif place == "detail-key":
        details["token"] = carried
    else:
        details[place] = carried
    body = build_body(entry(level, **kwargs), NOW)
    if body is None:
        return
    text = canonical(body).decode()
    signature = token.rsplit(".", 1)[1]
    assert token not in text
    assert signature not in text
    json.loads(text)


@settings(max_examples=200, deadline=None)
@given(secret=st.text(min_size=12, max_size=40).filter(lambda s: s.strip() == s and s))
def test_no_secret_header_or_field_reaches_a_record(secret: str) -> None:
    details = {
        "headers": {
            "Authorization": secret,
            "Cookie": secret,
            "Set-Cookie": secret,
            "X-Api-Key": secret,
            "Proxy-Authorization": secret,
            "X-Vivified-Token": secret,
        },
        "password": secret,
        "client_secret": secret,
        "body": secret,
    }
    body = build_body(entry("complete", details=details), NOW)
    assert body is not None
    assert secret not in json.dumps(body.get("details", {}))


@pytest.mark.parametrize(
    "text",
    ["Bearer abcdefghijklmnop", "token=abcdefghij", "api_key: zzzzzzzzzz", "password=hunter22"],
)
def test_written_out_credentials_are_scrubbed(text: str) -> None:
    body = build_body(entry("basic", outcome="refused", reason=f"upstream said {text}"), NOW)
    assert body is not None
    secret = text.replace(":", "=").replace(" ", "=").rsplit("=", maxsplit=1)[-1]
    assert secret not in str(body["reason"])


@settings(max_examples=300, deadline=None)
@given(
    entity=st.dictionaries(st.text(max_size=8), st.text(max_size=12), max_size=4),
    duration=st.floats(allow_nan=True, allow_infinity=True) | st.integers(),
    size=st.integers(),
    text=st.text(max_size=16),
    level=st.sampled_from(["basic", "detailed", "complete", "x"]),
)
def test_records_stay_on_the_canonical_fast_path(
    entity: dict[str, str], duration: float, size: int, text: str, level: str
) -> None:
    details = {
        "duration_ms": duration,
        "request_bytes": size,
        "method": text,
        "headers": {"Accept": text},
    }
    body = build_body(entry(level, entity=entity, details=details, reason=text), NOW)
    assert body is not None
    record, _ = seal(body, Head("w"))
    assert _plain(record)
    assert canonical(record, trusted=True) == rfc8785.dumps(record)  # type: ignore[arg-type]


def test_lane_detail_keys_of_the_proxy_and_event_lanes() -> None:
    details = {
        "address": "93.184.216.34",
        "addresses": ["93.184.216.34", "2606:2800::1"],
        "dns_ms": 1.5,
        "bytes_in": 10,
        "bytes_out": 20,
        "would_deny": "domain_not_allowed",
        "mode": "report",
        "attempts": 3,
    }
    body = build_body(entry("detailed", action="egress.close", details=details), NOW)
    assert body is not None
    assert body["details"] == details
    assert build_body(entry("basic", details=details), NOW) is not None
    assert "details" not in (build_body(entry("basic", details=details), NOW) or {})


@given(st.datetimes(timezones=st.just(UTC), min_value=datetime(1000, 1, 1)))
def test_format_time_is_the_strftime_spelling(moment: datetime) -> None:
    # format_time is written out by hand for speed; strftime is the reference spelling.
    assert format_time(moment) == moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_the_clean_string_memo_never_holds_a_credential() -> None:
    token = jwt.encode({"sub": "plugin:x"}, "k" * 32, algorithm="HS256")
    dirty = [f"Bearer {token}", f"token={token}", token, "password: hunter2"]
    for text in dirty * 2:  # a second pass must still scrub: nothing was remembered
        assert token not in scrub(text)
        assert "hunter2" not in scrub(text)
    assert not any(text in redact._CLEAN for text in dirty)
    assert scrub("plugin-a") == "plugin-a"
    assert "plugin-a" in redact._CLEAN, "a clean short string is remembered"
    long_clean = "x" * (redact._CLEAN_MAX_LENGTH + 1)
    assert scrub(long_clean) == long_clean
    assert long_clean not in redact._CLEAN, "long strings are not remembered"


def test_the_clean_string_memo_is_bounded() -> None:
    for n in range(redact._CLEAN_MAX_ENTRIES + 10):
        scrub(f"id-{n}")
    assert len(redact._CLEAN) <= redact._CLEAN_MAX_ENTRIES
