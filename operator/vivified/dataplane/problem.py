"""Errors from the core as ``application/problem+json`` (RFC 9457) with a stable ``reason``.

Every refusal names its reason the same way in the body, the metrics and the audit entry, so
a deny is never silent. Messages never quote a credential.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from aiohttp import web

__all__ = ["PROBLEM_CONTENT_TYPE", "TITLES", "problem"]

PROBLEM_CONTENT_TYPE = "application/problem+json"

TITLES: Mapping[int, str] = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def problem(
    status: int,
    reason: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: str,
) -> web.Response:
    """A problem+json response: ``type`` is a stable URN made from ``reason``."""
    body = {
        "type": f"urn:vivified:problem:{reason}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "reason": reason,
        "detail": detail,
        **extra,
    }
    response = web.Response(
        status=status,
        body=json.dumps(body, separators=(",", ":")).encode(),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=dict(headers or {}),
    )
    response.headers["Cache-Control"] = "no-store"
    return response
