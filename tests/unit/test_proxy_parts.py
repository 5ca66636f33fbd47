"""The proxy lane's small parts: settings from the environment, credentials, limits, answers."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from tests.unit.egress_fixtures import egress_manifest

from vivified import tokens
from vivified.dataplane.proxy import ProxySettings, ProxySettingsError, StaticResolver
from vivified.dataplane.proxy.auth import Authenticator, AuthFailure, parse_proxy_authorization
from vivified.dataplane.proxy.limits import PluginLimits
from vivified.dataplane.proxy.resolver import ResolveError
from vivified.dataplane.proxy.responses import refusal
from vivified.dataplane.proxy.verifier import CoreAuthFailure
from vivified.tokens import TokenInvalid, VerifiedToken
from vivified_sdk import contract


def test_settings_defaults_are_enforcing_and_without_test_seams() -> None:
    settings = ProxySettings.from_env({})
    assert settings.port == contract.CORE_PROXY_PORT == 3128
    assert settings.host == ""  # the core's own listen address
    assert settings.mode == "enforce"
    assert settings.allowed_ports == frozenset({443})
    assert not settings.has_test_seams


def test_settings_from_env() -> None:
    settings = ProxySettings.from_env(
        {
            "VIVIFIED_PROXY_PORT": "3129",
            "VIVIFIED_PROXY_ALLOWED_PORTS": "443, 8443",
            "VIVIFIED_PROXY_MODE": "report",
            "VIVIFIED_PROXY_IDLE_TIMEOUT": "30",
            "VIVIFIED_PROXY_TEST_STATIC_HOSTS": json.dumps({"api.partner.test": ["127.0.0.1"]}),
            "VIVIFIED_PROXY_TEST_ALLOW_NETWORKS": "127.0.0.0/8",
        }
    )
    assert settings.port == 3129
    assert settings.allowed_ports == frozenset({443, 8443})
    assert settings.mode == "report"
    assert settings.idle_timeout == 30.0
    assert settings.has_test_seams
    assert settings.egress_config().test_allow_networks[0].version == 4


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MODE", "audit"),
        ("PORT", "x"),
        ("ALLOWED_PORTS", "0"),
        ("TEST_ALLOW_NETWORKS", "nope"),
        ("TEST_STATIC_HOSTS", '{"a.test": ["not-an-ip"]}'),
        ("TEST_STATIC_HOSTS", "[1]"),
    ],
)
def test_bad_settings_name_themselves(name: str, value: str) -> None:
    with pytest.raises(ProxySettingsError):
        ProxySettings.from_env({f"VIVIFIED_PROXY_{name}": value})


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer abc", (None, "abc")),
        ("bearer   abc ", (None, "abc")),
        ("Basic " + base64.b64encode(b"billing:tok").decode(), ("billing", "tok")),
        (None, "credentials_missing"),
        ("", "credentials_missing"),
        ("Basic !!!", "credentials_malformed"),
        ("Basic " + base64.b64encode(b"billing").decode(), "credentials_malformed"),
        ("Basic " + base64.b64encode(b"billing:").decode(), "credentials_malformed"),
        ("Digest x", "credentials_malformed"),
        ("Bearer", "credentials_malformed"),
    ],
)
def test_parse_proxy_authorization(header: str | None, expected: object) -> None:
    parsed = parse_proxy_authorization(header)
    if isinstance(parsed, AuthFailure):
        assert parsed.reason == expected
    else:
        assert parsed == expected


class CountingVerifier:
    def __init__(self, verified: VerifiedToken) -> None:
        self.verified = verified
        self.calls = 0

    def verify(self, token: str) -> VerifiedToken:
        self.calls += 1
        if token != "good":
            raise TokenInvalid("bad signature")
        return self.verified


def verified_token() -> VerifiedToken:
    now = datetime.now(UTC).replace(microsecond=0)
    ring = tokens.KeyRing(active=tokens.generate_signing_key(now))
    minted = tokens.mint_plugin_token(
        ring, egress_manifest("billing"), issuer="i", audience="a", ttl_seconds=600, now=now
    )
    return tokens.verify_plugin_token(
        minted.token,
        tokens.jwks(ring),
        audience="a",
        issuer="i",
        now=now + timedelta(seconds=1),
        revoked_jtis=(),
    )


def test_authenticator_maps_the_cores_refusals() -> None:
    verifier = CountingVerifier(verified_token())
    auth = Authenticator(verifier)
    assert isinstance(auth.identify("Bearer good"), VerifiedToken)
    failure = auth.identify("Bearer bad")
    assert isinstance(failure, AuthFailure)
    assert (failure.status, failure.reason) == (407, "invalid_token")
    assert "bad" not in failure.message.replace("bad signature", "")
    mismatch = auth.identify("Basic " + base64.b64encode(b"other:good").decode())
    assert isinstance(mismatch, AuthFailure)
    assert mismatch.reason == "credentials_mismatch"
    assert verifier.calls == 3


@pytest.mark.parametrize(
    ("status", "reason", "answered"),
    [
        (401, "token_revoked", 407),
        (401, "invalid_token", 407),
        (503, "core_not_ready", 503),  # retry later, not re-authenticate
    ],
)
def test_the_cores_auth_failures_keep_their_reason(status: int, reason: str, answered: int) -> None:
    class Refusing:
        def verify(self, token: str) -> VerifiedToken:
            raise CoreAuthFailure(status, reason, "detail")

    failure = Authenticator(Refusing()).identify("Bearer x.y.z")
    assert isinstance(failure, AuthFailure)
    assert (failure.status, failure.reason, failure.message) == (answered, reason, "detail")


def test_limits_are_per_plugin() -> None:
    clock = [0.0]
    limits = PluginLimits(rate_per_second=1.0, burst=2, max_tunnels=1, monotonic=lambda: clock[0])
    assert limits.take("a")
    assert limits.take("a")
    assert not limits.take("a")
    assert limits.take("b")
    clock[0] = 1.0
    assert limits.take("a")
    assert limits.open("a")
    assert not limits.open("a")
    assert limits.open("b")
    limits.close("a")
    assert limits.open_tunnels("a") == 0
    assert limits.open("a")


async def test_static_resolver_knows_only_its_map() -> None:
    resolver = StaticResolver({"API.partner.test": ["127.0.0.1", "::1"]})
    assert [str(a) for a in await resolver.resolve("api.partner.test", 443)] == [
        "127.0.0.1",
        "::1",
    ]
    with pytest.raises(ResolveError):
        await resolver.resolve("example.com", 443)


def test_refusal_is_problem_json_with_a_reason_header() -> None:
    raw = refusal(403, "domain_not_allowed", "x is not allowed")
    head, body = raw.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 403 Forbidden")
    assert b"X-Vivified-Reason: domain_not_allowed" in head
    assert b"Content-Type: application/problem+json" in head
    assert json.loads(body)["reason"] == "domain_not_allowed"
    assert b'Proxy-Authenticate: Basic realm="vivified"' in refusal(407, "credentials_missing", "")


def test_kernel_splice_is_the_default_and_can_be_turned_off() -> None:
    assert ProxySettings.from_env({}).kernel_splice is True
    off = ProxySettings.from_env({"VIVIFIED_PROXY_KERNEL_SPLICE": "false"})
    assert off.kernel_splice is False
    with pytest.raises(ProxySettingsError, match="KERNEL_SPLICE"):
        ProxySettings.from_env({"VIVIFIED_PROXY_KERNEL_SPLICE": "maybe"})
