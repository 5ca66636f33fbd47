"""The proxy lane's pure decision, as tables: every refusal has its own reason."""

from __future__ import annotations

import ipaddress

import pytest
from tests.unit.egress_fixtures import egress_record

from vivified.policy.egress import (
    EgressConfig,
    EgressDecision,
    apply_mode,
    classify_address,
    decide,
    decide_host_header,
    decide_target,
    parse_authority,
)

PUBLIC = ipaddress.ip_address("93.184.216.34")
CONFIG = EgressConfig()


@pytest.mark.parametrize(
    ("authority", "expected"),
    [
        ("api.partner.test:443", ("api.partner.test", 443)),
        ("api.partner.test", ("api.partner.test", 80)),
        ("[2001:db8::1]:8443", ("[2001:db8::1]", 8443)),
        ("[::1]", ("[::1]", 80)),
        ("2001:db8::1", None),
        ("host:", None),
        ("host:0", None),
        ("host:65536", None),
        ("host:44a", None),
        ("user@host:443", None),
        ("host/path:443", None),
        ("", None),
        (":443", None),
        ("[::1", None),
        ("[::1]x", None),
    ],
)
def test_parse_authority(authority: str, expected: tuple[str, int] | None) -> None:
    assert parse_authority(authority, 80) == expected


@pytest.mark.parametrize(
    ("record", "host", "port", "reason"),
    [
        (egress_record(), "api.partner.test", 443, "allowed"),
        (egress_record(), "API.Partner.TEST", 443, "allowed"),
        (egress_record(domains=("bücher.example",)), "xn--bcher-kva.example", 443, "allowed"),
        (egress_record(domains=("bücher.example",)), "BÜCHER.example", 443, "allowed"),
        (None, "api.partner.test", 443, "plugin_unknown"),
        (
            egress_record(enabled=False, phase="Disabled"),
            "api.partner.test",
            443,
            "plugin_disabled",
        ),
        (egress_record(phase="Pending"), "api.partner.test", 443, "plugin_inactive"),
        (
            egress_record(traits=("audit_required",), domains=()),
            "api.partner.test",
            443,
            "trait_missing",
        ),
        (egress_record(), "other.partner.test", 443, "domain_not_allowed"),
        (egress_record(), "evil.api.partner.test", 443, "domain_not_allowed"),
        (egress_record(), "partner.test", 443, "domain_not_allowed"),
        (egress_record(), "api.partner.test.", 443, "domain_not_allowed"),
        (egress_record(), "localhost", 443, "domain_not_allowed"),
        (egress_record(), "metadata.google.internal", 443, "domain_not_allowed"),
        (egress_record(), "api.partner.test", 22, "port_not_allowed"),
        (egress_record(), "api.partner.test", 80, "port_not_allowed"),
        (egress_record(), "127.0.0.1", 443, "ip_literal"),
        (egress_record(), "169.254.169.254", 443, "ip_literal"),
        (egress_record(), "2130706433", 443, "ip_literal"),
        (egress_record(), "0x7f.1", 443, "ip_literal"),
        (egress_record(), "[::1]", 443, "ip_literal"),
        (egress_record(), "[::ffff:169.254.169.254]", 443, "ip_literal"),
        (egress_record(), "93.184.216.34", 443, "ip_literal"),
        (egress_record(), "api partner", 443, "host_invalid"),
        (egress_record(), "*.partner.test", 443, "host_invalid"),
        (egress_record(), "a..b", 443, "host_invalid"),
    ],
)
def test_decide_target(record: object, host: str, port: int, reason: str) -> None:
    decision = decide_target(record, host, port, CONFIG)  # type: ignore[arg-type]
    assert decision.reason == reason, decision.message
    assert decision.allowed is (reason == "allowed")
    assert decision.message


def test_more_ports_by_configuration() -> None:
    config = EgressConfig(allowed_ports=frozenset({443, 8443}))
    assert decide_target(egress_record(), "api.partner.test", 8443, config).allowed


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("93.184.216.34", None),
        ("2606:2800:220:1:248:1893:25c8:1946", None),
        ("127.0.0.1", "address_loopback"),
        ("127.8.9.10", "address_loopback"),
        ("::1", "address_loopback"),
        ("10.1.2.3", "address_private"),
        ("172.16.0.1", "address_private"),
        ("192.168.1.1", "address_private"),
        ("fd00::1", "address_private"),
        ("169.254.169.254", "address_link_local"),
        ("169.254.1.1", "address_link_local"),
        ("fe80::1", "address_link_local"),
        ("fd00:ec2::254", "address_link_local"),
        ("100.64.0.1", "address_cgnat"),
        ("100.100.100.200", "address_cgnat"),
        ("224.0.0.1", "address_multicast"),
        ("ff02::1", "address_multicast"),
        ("240.0.0.1", "address_reserved"),
        ("255.255.255.255", "address_reserved"),
        ("192.0.2.1", "address_reserved"),
        ("198.18.0.1", "address_reserved"),
        ("2001:db8::1", "address_reserved"),
        ("0.0.0.0", "address_unspecified"),  # noqa: S104 - an address under test
        ("0.1.2.3", "address_unspecified"),
        ("::", "address_unspecified"),
        ("::ffff:127.0.0.1", "address_loopback"),
        ("::ffff:169.254.169.254", "address_link_local"),
        ("::ffff:10.0.0.1", "address_private"),
        ("::ffff:93.184.216.34", None),
        ("::127.0.0.1", "address_loopback"),
        ("64:ff9b::a9fe:a9fe", "address_link_local"),
        ("64:ff9b::7f00:1", "address_loopback"),
        ("64:ff9b::5db8:d822", None),
        ("64:ff9b:1::1", "address_reserved"),
        ("2002:7f00:1::1", "address_loopback"),
        ("2002:a9fe:a9fe::1", "address_link_local"),
        ("2002:0a00:0001::1", "address_private"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "address_embedded_ipv4"),
    ],
)
def test_classify_address(address: str, reason: str | None) -> None:
    verdict = classify_address(ipaddress.ip_address(address))
    assert (verdict[0] if verdict else None) == reason, verdict


def test_every_answer_must_be_public() -> None:
    first_public_then_private = [PUBLIC, ipaddress.ip_address("10.0.0.7")]
    d = decide(egress_record(), "api.partner.test", 443, first_public_then_private, CONFIG)
    assert (d.allowed, d.reason) == (False, "address_private")
    assert "10.0.0.7" in d.message


def test_allowed_decision_keeps_the_checked_addresses_in_order() -> None:
    other = ipaddress.ip_address("93.184.216.35")
    d = decide(egress_record(), "api.partner.test", 443, [other, PUBLIC, other], CONFIG)
    assert d.allowed
    assert d.addresses == (other, PUBLIC)


def test_no_answer_is_refused() -> None:
    d = decide(egress_record(), "api.partner.test", 443, [], CONFIG)
    assert d.reason == "resolution_failed"


def test_test_networks_admit_loopback_only_when_configured() -> None:
    loop = [ipaddress.ip_address("127.0.0.1")]
    assert decide(egress_record(), "api.partner.test", 443, loop, CONFIG).reason == (
        "address_loopback"
    )
    test_config = EgressConfig(test_allow_networks=(ipaddress.ip_network("127.0.0.0/8"),))
    assert decide(egress_record(), "api.partner.test", 443, loop, test_config).allowed
    metadata = [ipaddress.ip_address("169.254.169.254")]
    assert not decide(egress_record(), "api.partner.test", 443, metadata, test_config).allowed


@pytest.mark.parametrize(
    ("host", "port", "record", "reason", "would_deny"),
    [
        ("other.partner.test", 443, egress_record(), "report_only", "domain_not_allowed"),
        ("api.partner.test", 22, egress_record(), "report_only", "port_not_allowed"),
        (
            "api.partner.test",
            443,
            egress_record(traits=("audit_required",), domains=()),
            "report_only",
            "trait_missing",
        ),
        ("127.0.0.1", 443, egress_record(), "ip_literal", ""),
        ("api.partner.test", 443, egress_record(phase="Pending"), "plugin_inactive", ""),
    ],
)
def test_report_mode_relaxes_only_the_allowlist(
    host: str, port: int, record: object, reason: str, would_deny: str
) -> None:
    config = EgressConfig(mode="report")
    d = decide(record, host, port, [PUBLIC], config)  # type: ignore[arg-type]
    assert (d.reason, d.would_deny) == (reason, would_deny)
    assert d.allowed is (reason == "report_only")


def test_report_mode_still_refuses_private_addresses() -> None:
    config = EgressConfig(mode="report")
    d = decide(
        egress_record(), "other.partner.test", 443, [ipaddress.ip_address("10.0.0.1")], config
    )
    assert (d.allowed, d.reason) == (False, "address_private")


def test_apply_mode_leaves_enforce_alone() -> None:
    refused = EgressDecision(False, "domain_not_allowed", "no")
    assert apply_mode(refused, "enforce") is refused


@pytest.mark.parametrize(
    ("uri", "header", "mismatch"),
    [
        ("api.partner.test", "api.partner.test", False),
        ("api.partner.test", "API.partner.test:80", False),
        ("api.partner.test:8080", "api.partner.test:8080", False),
        ("api.partner.test", None, False),
        ("api.partner.test", "other.partner.test", True),
        ("api.partner.test", "api.partner.test:8080", True),
        ("api.partner.test", "bad host", True),
    ],
)
def test_host_header_must_match_the_uri(uri: str, header: str | None, mismatch: bool) -> None:
    assert (decide_host_header(uri, header, 80) is not None) is mismatch


def test_allowed_domains_equal_the_manifests_own_union() -> None:
    from vivified.policy.egress import allowed_domains  # noqa: PLC0415

    record = egress_record(domains=("BÜCHER.example", "api.partner.test"))
    assert allowed_domains(record) == frozenset(record.manifest.all_allowed_domains)
