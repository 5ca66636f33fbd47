"""RFC 9457 problem+json responses with the lane's stable ``reason``."""

from __future__ import annotations

import json

from aiohttp import web

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    503: "Service Unavailable",
}


def problem(status: int, reason: str, detail: str) -> web.Response:
    body = {
        "type": f"https://vivified.dev/problems/{reason}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "reason": reason,
    }
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/problem+json"
    )
