"""What a refused client reads: a status line, a machine-readable reason, a problem+json body.

Every refusal names its reason in ``X-Vivified-Reason`` (``contract.PROXY_REASON_HEADER``) and
in the body (RFC 9457), so a denial never looks like a TLS or network error to the plugin's
author.
"""

from __future__ import annotations

import json

from vivified_sdk import contract

__all__ = ["REASON_HEADER", "refusal", "tunnel_established"]

REASON_HEADER = contract.PROXY_REASON_HEADER
_TITLES = {
    400: "Bad Request",
    403: "Forbidden",
    405: "Method Not Allowed",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def refusal(status: int, reason: str, message: str) -> bytes:
    """A complete ``Connection: close`` response; 407 carries the Basic challenge."""
    title = _TITLES.get(status, "Error")
    body = json.dumps(
        {
            "type": f"https://vivified.dev/problems/proxy/{reason}",
            "title": title,
            "status": status,
            "reason": reason,
            "detail": message,
        },
        separators=(",", ":"),
    ).encode()
    lines = [
        f"HTTP/1.1 {status} {title}",
        "Content-Type: application/problem+json",
        f"{REASON_HEADER}: {reason}",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if status == 407:
        lines.append('Proxy-Authenticate: Basic realm="vivified"')
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def tunnel_established(report_only: str = "") -> bytes:
    extra = f"{REASON_HEADER}: report_only; would_deny={report_only}\r\n" if report_only else ""
    return f"HTTP/1.1 200 Connection established\r\n{extra}\r\n".encode("latin-1")
