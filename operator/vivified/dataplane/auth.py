"""Who is calling: every request to the core is hostile until its plugin token checks out.

Order of checks (each refusal has its own reason):

1. header hygiene — a single-value header sent twice (two ``Authorization`` lines) is a 400
   ``repeated_header``: servers and proxies disagree about which copy wins, so none does;
2. shape — ``Bearer`` + a compact JWS in printable ASCII, at most 8 KiB, else 401
   ``malformed_credentials`` (nothing odd reaches PyJWT: a non-UTF-8 byte used to be a 500);
3. the token — ES256, published ``kid``, signature, ``iss``, ``aud``, ``exp``/``nbf``, type,
   ``sub`` = ``plugin:<plugin_id>`` (``vivified.tokens.verify_plugin_token``), then its ``jti``
   against the revocation list: 401 ``invalid_token`` / ``token_revoked``;
4. the plugin — the ``plugin_id`` claim names a VivifiedPlugin the core serves (401
   ``unknown_plugin``) that is Active and enabled (401 ``plugin_inactive``: a disabled
   plugin's token stops working as soon as the watch sees it, revocation or not).

The operator's own token (``vivified.tokens.operator_token``, docs/tokens.md) is a different
principal: :meth:`Authenticator.authenticate_operator` accepts only it, and only the routes
wrapped in :func:`operator_route` call that (the proxy's allowlist state, the event lane's
counts). A plugin token there is a 403 ``operator_only``; an operator token anywhere else is a
403 ``operator_token_refused`` (checked only after the plugin verifier refused it, so it costs
plugin traffic nothing).

Until the JWKS and revocation list are loaded every token is refused with 503
``core_not_ready`` (fail closed). Verified signatures are cached per token string until the
trust documents change; expiry, revocation and the plugin's state are re-checked on every
request. No credential is ever logged or echoed.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web
from multidict import CIMultiDictProxy

from vivified import tokens
from vivified.dataplane.directory import PluginDirectory, PluginRecord
from vivified.dataplane.metrics import Registry
from vivified.dataplane.problem import problem
from vivified.dataplane.settings import CoreSettings
from vivified.dataplane.trust import TrustState
from vivified.tokens.operator_token import claims_type
from vivified_sdk import contract

__all__ = [
    "OPERATOR_ROUTES",
    "SINGLE_VALUE_HEADERS",
    "AuthFailure",
    "Authenticator",
    "Caller",
    "OperatorCaller",
    "operator_route",
    "repeated_header",
]

#: Headers that must appear at most once in any request the core accepts.
SINGLE_VALUE_HEADERS: tuple[str, ...] = (
    "Authorization",
    "Proxy-Authorization",
    "Content-Length",
    "Content-Type",
    "Host",
    "Transfer-Encoding",
)
_BEARER = re.compile(r"Bearer ([A-Za-z0-9_.-]{1,8192})", re.IGNORECASE)
_CACHE_LIMIT = 4096


@dataclass(frozen=True)
class Caller:
    """A verified caller: its token's claims and its plugin as the directory has it."""

    token: tokens.VerifiedToken
    record: PluginRecord

    @property
    def plugin_id(self) -> str:
        return self.record.plugin_id


@dataclass(frozen=True)
class OperatorCaller:
    """The operator, by a verified operator token."""

    token: tokens.OperatorIdentity


class AuthFailure(Exception):  # noqa: N818 - reads as what happened
    """Why a request is refused before any lane looks at it. ``detail`` is safe to return."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.detail = detail


def repeated_header(headers: Mapping[str, str] | CIMultiDictProxy[str]) -> str | None:
    """The first single-value header that appears more than once, or None."""
    getall = getattr(headers, "getall", None)
    if getall is None:
        return None
    for name in SINGLE_VALUE_HEADERS:
        if len(getall(name, ())) > 1:
            return name
    return None


class Authenticator:
    """Checks 1-4 of the module docstring for one request's headers."""

    def __init__(
        self,
        trust: TrustState,
        directory: PluginDirectory,
        settings: CoreSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self._trust = trust
        self._directory = directory
        self._settings = settings
        self._clock = clock
        self._cache: dict[str, tuple[int, tokens.VerifiedToken]] = {}

    def authenticate(
        self, headers: CIMultiDictProxy[str], *, header: str = "Authorization"
    ) -> Caller:
        verified = self.verify(_bearer(headers, header, "plugin token"))
        record = self._directory.get(verified.plugin_id)
        if record is None:
            raise AuthFailure(
                401, "unknown_plugin", f"no plugin {verified.plugin_id!r} is served here"
            )
        if not record.active:
            raise AuthFailure(
                401, "plugin_inactive", f"plugin {verified.plugin_id!r} is {record.phase}"
            )
        return Caller(token=verified, record=record)

    def verify(self, token: str) -> tokens.VerifiedToken:
        if not self._trust.ready:
            raise AuthFailure(503, "core_not_ready", "the core has not loaded its key set yet")
        now = self._clock()
        version = self._trust.version
        cached = self._cache.get(token)
        if cached is not None and cached[0] == version:
            verified = cached[1]
            leeway = timedelta(seconds=self._settings.token_leeway_seconds)
            if verified.expires_at <= now - leeway:
                raise AuthFailure(401, "invalid_token", "invalid token: token expired")
            return verified
        try:
            verified = tokens.verify_plugin_token(
                token,
                self._trust.plugin_jwks,
                audience=self._settings.token_audience,
                issuer=self._settings.token_issuer,
                revoked_jtis=self._trust.revoked,
                now=now,
                leeway=self._settings.token_leeway_seconds,
            )
        except tokens.TokenInvalid as invalid:
            if claims_type(token) == contract.OPERATOR_TOKEN_TYPE and self._is_operator(token):
                raise AuthFailure(
                    403,
                    "operator_token_refused",
                    "the operator's token is accepted only on the operator's read routes",
                ) from None
            reason = "token_revoked" if invalid.reason == "token revoked" else "invalid_token"
            raise AuthFailure(401, reason, f"invalid token: {invalid.reason}") from None
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[token] = (version, verified)
        return verified

    def _is_operator(self, token: str) -> bool:
        try:
            self._verify_operator(token)
        except tokens.TokenInvalid:
            return False
        return True

    def _verify_operator(self, token: str) -> tokens.OperatorIdentity:
        return tokens.verify_operator_token(
            token,
            self._trust.plugin_jwks,
            issuer=self._settings.token_issuer,
            revoked_jtis=self._trust.revoked,
            now=self._clock(),
            leeway=self._settings.token_leeway_seconds,
        )

    def authenticate_operator(self, headers: CIMultiDictProxy[str]) -> OperatorCaller:
        """The operator's token, or why not: the only credential the operator routes take."""
        token = _bearer(headers, "Authorization", "operator token")
        if not self._trust.ready:
            raise AuthFailure(503, "core_not_ready", "the core has not loaded its key set yet")
        try:
            return OperatorCaller(token=self._verify_operator(token))
        except tokens.TokenInvalid as invalid:
            if invalid.reason in ("not an operator token", "not the operator's subject"):
                raise AuthFailure(
                    403,
                    "operator_only",
                    "this route serves the operator only; a plugin token is not accepted here",
                ) from None
            reason = "token_revoked" if invalid.reason == "token revoked" else "invalid_token"
            raise AuthFailure(401, reason, f"invalid operator token: {invalid.reason}") from None


def _bearer(headers: CIMultiDictProxy[str], header: str, what: str) -> str:
    """Checks 1-2 of the module docstring: the token of the one ``Bearer`` header."""
    repeated = repeated_header(headers)
    if repeated is not None:
        raise AuthFailure(400, "repeated_header", f"the {repeated} header appears twice")
    values = headers.getall(header, ())
    if not values:
        raise AuthFailure(401, "missing_credentials", f"a {what} is required")
    match = _BEARER.fullmatch(values[0].strip())
    if match is None:
        raise AuthFailure(401, "malformed_credentials", f"{header} must be 'Bearer <{what}>'")
    return match.group(1)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


#: The ``lane`` label of the operator routes in ``vivified_core_requests_total``.
OPERATOR_ROUTES = "operator-api"


def operator_route(
    authenticator: Authenticator, handler: Handler, metrics: Registry | None = None
) -> Handler:
    """``handler`` behind :meth:`Authenticator.authenticate_operator`: every refusal is
    problem+json with its reason (and counted in ``metrics``, so a plugin probing the
    operator's routes shows on ``/metrics``), and the handler runs for the operator only."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            authenticator.authenticate_operator(request.headers)
        except AuthFailure as failure:
            if metrics is not None:
                metrics.requests.inc(OPERATOR_ROUTES, "refused", failure.reason)
            challenge = 'Bearer error="invalid_token"' if failure.status == 401 else None
            headers = {"WWW-Authenticate": challenge} if challenge else {}
            return problem(failure.status, failure.reason, failure.detail, headers=headers)
        if metrics is not None:
            metrics.requests.inc(OPERATOR_ROUTES, "allowed", "")
        return await handler(request)

    return guarded
