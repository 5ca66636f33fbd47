"""Browser-facing defences: security headers on every response, and the cross-site check on
every state-changing request.

Three layers refuse a cross-site POST: the cookie is SameSite=Strict (the browser does not send
it), the request's Origin / Sec-Fetch-Site must name this site, and the form must carry the CSRF
token sealed inside the session cookie. Each refusal says which layer refused and why.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import urlsplit

from aiohttp import web

CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)
HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # no-referrer would make browsers send Origin: null
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def cross_site_refusal(headers: Mapping[str, str], host: str) -> str | None:
    """Why a state-changing request is refused as cross-site, or None if it is same-site.

    Browsers send Sec-Fetch-Site (all current ones) and Origin on POST; a client that sends
    neither (curl, a script with a stolen cookie) still needs the CSRF token.
    """
    site = headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return f"the browser marked this request as {site!r}, not from this site"
    origin = headers.get("Origin")
    if origin is not None:
        if origin == "null":
            return "the request has an opaque origin (null)"
        if urlsplit(origin).netloc.lower() != host.lower():
            return "the request's Origin is another site"
    return None


def _harden(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if not request.path.startswith("/ui/static/"):
        # Pages name the systems that hold patients' data and who may change them: no caching.
        response.headers.setdefault("Cache-Control", "no-store")


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every response, errors from the router included, carries the headers above."""
    try:
        response = await handler(request)
    except web.HTTPException as error:
        _harden(request, error)
        raise
    _harden(request, response)
    return response
