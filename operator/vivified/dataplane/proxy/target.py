"""Where a proxy request wants to go: CONNECT authority or absolute ``http://`` URI."""

from __future__ import annotations

import contextlib
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from vivified.policy.egress import parse_authority

from .head import RequestHead

__all__ = ["Refusal", "first_header", "request_target"]


@dataclass(frozen=True)
class Refusal(Exception):  # noqa: N818 - a refusal, not an error
    status: int
    reason: str
    message: str


def first_header(head: RequestHead, name: str) -> str | None:
    values = head.get_all(name)
    return values[0] if values else None


def request_target(head: RequestHead) -> tuple[str, str, int]:
    """("connect" | "http", host, port) of a proxy request, or a Refusal."""
    if head.method == "CONNECT":
        parsed = parse_authority(head.target, 0)
        if parsed is None or parsed[1] == 0:
            raise Refusal(400, "request_malformed", "CONNECT needs host:port")
        return "connect", _unbracket(parsed[0]), parsed[1]
    lowered = head.target[:8].lower()
    if lowered.startswith("https://"):
        raise Refusal(400, "scheme_not_supported", "use CONNECT for https:// targets")
    if not lowered.startswith("http://"):
        raise Refusal(400, "request_malformed", "a proxy request needs an absolute http:// URI")
    try:
        parts = urlsplit(head.target)
    except ValueError:
        raise Refusal(400, "request_malformed", "the request URI is malformed") from None
    parsed = parse_authority(parts.netloc, 80)
    if parsed is None:
        raise Refusal(400, "request_malformed", "the request URI has no valid host")
    return "http", _unbracket(parsed[0]), parsed[1]


def _unbracket(host: str) -> str:
    if host.startswith("[") and host.endswith("]"):
        with contextlib.suppress(ValueError):
            return str(ipaddress.ip_address(host[1:-1]))
    return host
