"""Domain vetting: host names are parsed (IDNA, ipaddress), never matched by substring."""

from __future__ import annotations

import pytest

from vivified.policy import PolicyConfig, check_domain, normalize_domain
from vivified.policy.config import load_default_blocked_domains, parse_blocked_domains

ACCEPTED = [
    "api.stripe.com",
    "v10.api.stripe.com",
    "1password.com",
    "xn--bcher-kva.example",
    "bücher.example",
    "API.Stripe.COM",
    "hooks.slack.com",
    "a.io",
    "s3.eu-west-1.amazonaws.com",
    "a" * 63 + ".com",
    ".".join(["a" * 63] * 3) + "." + "b" * 61,  # 253 characters
    "localhost.example.com",  # 'localhost' as a label elsewhere is just a name
    "10.example.com",
]


@pytest.mark.parametrize("name", ACCEPTED, ids=lambda n: n[:30])
def test_accepted(name: str) -> None:
    assert check_domain(name) is None


REJECTED = [
    # (name, fragment of the reason)
    ("localhost", "loopback"),
    ("LOCALHOST", "loopback"),
    ("foo.localhost", "loopback"),
    ("127.0.0.1", "loopback address"),
    ("10.0.0.1", "private-network address"),
    ("192.168.1.10", "private-network address"),
    ("172.16.0.1", "private-network address"),
    ("169.254.169.254", "cloud metadata"),
    ("0.0.0.0", "unspecified"),  # noqa: S104
    ("224.0.0.1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("8.8.8.8", "IP address (a public address)"),
    ("::1", "loopback"),
    ("[::1]", "loopback"),
    ("::", "unspecified"),
    ("fe80::1", "link-local"),
    ("fd00::1", "private"),
    ("fe80::1%eth0", "link-local"),
    ("::ffff:127.0.0.1", "IPv4-mapped address of 127.0.0.1"),
    ("::ffff:169.254.169.254", "IPv4-mapped"),
    ("2001:4860:4860::8888", "public address"),
    ("2130706433", "loopback"),
    ("0x7f000001", "loopback"),
    ("0x7f.1", "loopback"),
    ("127.1", "loopback"),
    ("0177.0.0.1", "loopback"),
    ("\uff11\uff12\uff17.\uff10.\uff10.\uff11", "loopback"),  # full-width 127.0.0.1
    ("a.b.c.123", "numeric top-level label"),
    ("metadata.google.internal", "internal"),
    ("printer.local", "link-local (mDNS)"),
    ("kubernetes.default", "Kubernetes API server"),
    ("kubernetes.default.svc", "Kubernetes API server"),
    ("kubernetes.default.svc.cluster.local", "Kubernetes API server"),
    ("my-svc.my-ns.svc", "cluster-internal service"),
    ("x.cluster.local", "cluster-internal"),
    ("router.localdomain", "local name"),
    ("nas.home.arpa", "home.arpa"),
    ("1.0.0.127.in-addr.arpa", "reverse DNS"),
    ("foo.onion", "Tor"),
    ("foo.bit", "Namecoin"),
    ("foo.invalid", "never resolves"),
    ("server.corp", "private network"),
    ("*.stripe.com", "wildcard"),
    ("*", "wildcard"),
    ("https://api.stripe.com", "is a URL"),
    ("ftp://files.example.com", "is a URL"),
    ("api.stripe.com:443", "port"),
    ("api.stripe.com/path", "path"),
    ("api.stripe.com?x=1", "query"),
    ("user@host.com", "user info"),
    ("a..b", "empty label"),
    (".example.com", "empty label"),
    ("api.stripe.com.", "trailing dot"),
    ("-a.com", "hyphen"),
    ("a-.com", "hyphen"),
    ("a_b.com", "not a valid domain name"),
    ("a b.com", "whitespace"),
    ("a\x00b.com", "control"),
    ("a" * 64 + ".com", "longer than 63"),
    ("a" * 250 + ".com", "longer than 253"),
    ("intranet", "single-label"),
    ("", "must not be empty"),
    ("malware.com", "blocked-domain list"),
    ("cdn.malware.com", "subdomain of blocked domain 'malware.com'"),
    ("phishing.com", "blocked-domain list"),
    ("login.PHISHING.com", "subdomain of blocked domain"),
]


@pytest.mark.parametrize(("name", "fragment"), REJECTED, ids=lambda v: repr(v)[:30])
def test_rejected(name: str, fragment: str) -> None:
    reason = check_domain(name)
    assert reason is not None, f"{name!r} should be rejected"
    assert fragment in reason, reason


def test_label_of_254_name_boundary() -> None:
    name_253 = ".".join(["a" * 63] * 3) + "." + "b" * 61
    assert len(name_253) == 253
    assert check_domain(name_253) is None
    assert check_domain(name_253 + "b") is not None


def test_non_string_is_rejected() -> None:
    assert check_domain(123) == "must be a string, not int"


def test_reason_quotes_the_name() -> None:
    assert check_domain("localhost") == "'localhost' is a loopback name"


def test_normalize_domain_gives_the_a_label_form() -> None:
    assert normalize_domain("Bücher.Example") == "xn--bcher-kva.example"
    assert normalize_domain("API.stripe.com") == "api.stripe.com"
    assert normalize_domain("https://x.com") is None
    assert normalize_domain(5) is None


# --------------------------------------------------------------------------------------------
# The blocked list is configuration
# --------------------------------------------------------------------------------------------


def test_default_blocked_list_is_loaded_from_the_package_data_file() -> None:
    blocked = load_default_blocked_domains()
    assert {"malware.com", "phishing.com", "localhost", "127.0.0.1"} <= blocked
    assert not any(entry.startswith("#") for entry in blocked)


def test_blocked_list_format_comments_blanks_case_and_idna() -> None:
    text = """
    # a comment
    Evil.Example   # trailing comment

    böse.example
    """
    assert parse_blocked_domains(text.splitlines()) == {"evil.example", "xn--bse-sna.example"}


def test_config_overrides_the_blocked_list() -> None:
    custom = PolicyConfig.from_blocked_list("evil.example\n")
    assert check_domain("api.evil.example", custom) is not None
    assert check_domain("malware.com", custom) is None  # the default list is replaced
    assert check_domain("malware.com") is not None  # ...but still the default


def test_config_can_extend_the_default_list() -> None:
    extended = PolicyConfig(blocked_domains=PolicyConfig.default().blocked_domains | {"x.example"})
    assert check_domain("a.x.example", extended) is not None
    assert check_domain("malware.com", extended) is not None


def test_blocking_is_by_label_not_by_substring() -> None:
    config = PolicyConfig.from_blocked_list("ware.com\n")
    assert check_domain("malware.com", config) is None
    assert check_domain("cdn.ware.com", config) is not None
