"""``POST /plugins/heartbeat``: plugins tell the operator they are alive (passive monitoring).

The caller is identified only by its plugin token (``Authorization: Bearer``), verified
against the operator's own key ring and revocation list, so a plugin can report only for
itself: a ``plugin_id`` in the body must equal the token's. The body is small, strict JSON;
its metrics are sanitised like probe metrics before they reach the status.

=====  =============================================================================
200    accepted: ``{"plugin_id": ..., "health": ...}``
400    the body is not a valid heartbeat (message says why)
401    no, malformed, expired, revoked or wrongly signed token
403    the body names another plugin
404    no VivifiedPlugin holds the token's plugin id, or it is not monitored (disabled)
413    body larger than 16 KiB
415    Content-Type is not application/json
=====  =============================================================================

The same server publishes, unauthenticated and read-only, what plugins need to verify the
tokens *they* receive (public data: key ids, public keys, revoked token ids and expiries):

* ``GET /plugins/revocations``: the revocation list document exactly as stored in the
  ``vivified-revoked-tokens`` ConfigMap (``revoked.json``), ``Cache-Control: no-store``.
  Plugins in other namespaces cannot mount that ConfigMap; the SDK polls this instead
  (``VIVIFIED_REVOCATIONS_URL``).
* ``GET /plugins/jwks``: the public JWKS (``VIVIFIED_JWKS_URL``); 503 until the key ring is
  loaded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from aiohttp import web

from vivified import tokens
from vivified.health import Health, Heartbeat, HeartbeatError, load_json, parse_heartbeat
from vivified.settings import OperatorSettings
from vivified_sdk import TokenInvalid, TokenVerifier, VerifiedToken, VerifierUnavailable, contract

__all__ = [
    "HEARTBEAT_PATH",
    "JWKS_PATH",
    "MAX_HEARTBEAT_BYTES",
    "REVOCATIONS_PATH",
    "HeartbeatServer",
    "HeartbeatSink",
    "KeySource",
    "PluginIndex",
]

logger = logging.getLogger(__name__)

HEARTBEAT_PATH = contract.OPERATOR_HEARTBEAT_PATH
REVOCATIONS_PATH = contract.OPERATOR_REVOCATIONS_PATH
JWKS_PATH = contract.OPERATOR_JWKS_PATH
MAX_HEARTBEAT_BYTES = 16 * 1024

PluginKey = tuple[str, str]


class KeySource(Protocol):
    """What verifying a plugin token needs (``vivified.shell.identity.Identity``)."""

    @property
    def keyring(self) -> tokens.KeyRing: ...

    @property
    def revocations(self) -> tokens.RevocationList: ...


class PluginIndex(Protocol):
    """Finds the resource that holds a plugin id (``vivified.registry.PluginRegistry``)."""

    def owner_of(self, plugin_id: str) -> PluginKey | None: ...


class HeartbeatSink(Protocol):
    """Receives verified heartbeats (``vivified.shell.monitor.HealthMonitor``)."""

    def record_heartbeat(self, key: PluginKey, beat: Heartbeat) -> Health | None: ...


class _RingKeys:
    """The key ring's JWKS as a verifier key source (the SDK's ``JwksSource``)."""

    def __init__(self, current: Callable[[], Mapping[str, Any]]) -> None:
        self._current = current

    def document(self) -> Mapping[str, Any]:
        try:
            return self._current()
        except RuntimeError:  # key ring not loaded yet
            raise VerifierUnavailable("the operator is starting") from None

    def missing(self, kid: str) -> None:
        del kid  # the ring is in memory: nothing to fetch


class _RingRevocations:
    """The operator's revocation list as a verifier revocation source."""

    def __init__(self, keys: KeySource) -> None:
        self._keys = keys

    def jtis(self) -> tokens.RevocationList:
        try:
            return self._keys.revocations
        except RuntimeError:
            raise VerifierUnavailable("the operator is starting") from None


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


class HeartbeatServer:
    """The aiohttp app and its listener. ``port=0`` in settings means "not served"."""

    def __init__(
        self,
        sink: HeartbeatSink,
        plugins: PluginIndex,
        keys: KeySource,
        settings: OperatorSettings,
        clock: Callable[[], datetime],
        *,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        self._sink = sink
        self._plugins = plugins
        self._keys = keys
        self._settings = settings
        self._clock = clock
        self._host = host if host is not None else settings.heartbeat_host
        self._port = port if port is not None else settings.heartbeat_port
        # An explicit port 0 asks for any free port (tests); port 0 in settings = off.
        self._enabled = port is not None or settings.heartbeat_port != 0
        self._runner: web.AppRunner | None = None
        self._jwks_for: tokens.KeyRing | None = None
        self._jwks: Mapping[str, Any] = {"keys": []}
        self._revoked_for: tokens.RevocationList | None = None
        self._revoked_text = ""
        self.bound_port: int | None = None
        # The SDK's verifier, fed from memory: the same checks plugins and the core run.
        self._verifier = TokenVerifier(
            _RingKeys(self._current_jwks),
            audience=settings.token_audience,
            issuer=settings.token_issuer,
            revocations=_RingRevocations(keys),
            leeway=settings.token_leeway_seconds,
            clock=clock,
        )

    # -- lifecycle -----------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_HEARTBEAT_BYTES)
        app.router.add_post(HEARTBEAT_PATH, self.handle)
        app.router.add_get(REVOCATIONS_PATH, self.handle_revocations)
        app.router.add_get(JWKS_PATH, self.handle_jwks)
        return app

    async def start(self) -> None:
        """Listen on ``host:port`` (``port`` 0 from settings: do nothing). A port already in
        use is logged as an error, not raised: the rest of the operator keeps working."""
        if self._runner is not None or not self._enabled:
            return
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except OSError as error:
            # Probes, reconcile and everything else still work; heartbeats are refused
            # until the operator restarts with a free port. Loud, but not fatal.
            logger.error(
                "heartbeat API not served: cannot listen on %s:%s (%s)",
                self._host,
                self._port,
                error.strerror or error,
            )
            await runner.cleanup()
            return
        self._runner = runner
        addresses = runner.addresses
        self.bound_port = int(addresses[0][1]) if addresses else self._port
        logger.info(
            "heartbeat API listening on %s:%s%s", self._host, self.bound_port, HEARTBEAT_PATH
        )

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # -- the request ---------------------------------------------------------------------------
    def _current_jwks(self, ring: tokens.KeyRing | None = None) -> Mapping[str, Any]:
        """The key ring's JWKS, recomputed only when the ring changes (loading keys is slow)."""
        ring = self._keys.keyring if ring is None else ring
        if ring is not self._jwks_for:
            self._jwks = tokens.jwks(ring)
            self._jwks_for = ring
        return self._jwks

    # -- public, read-only documents -----------------------------------------------------------
    async def handle_revocations(self, request: web.Request) -> web.Response:
        """The revocation list as stored in its ConfigMap. Never cached by clients."""
        del request
        revocations = self._keys.revocations
        if revocations is not self._revoked_for:
            data = tokens.revocations_to_configmap_data(revocations)
            self._revoked_text = data[tokens.REVOCATIONS_CONFIGMAP_KEY]
            self._revoked_for = revocations
        return web.Response(
            text=self._revoked_text,
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    async def handle_jwks(self, request: web.Request) -> web.Response:
        """``tokens.jwks(keyring, now)``: retired keys past ``retire_until`` left out."""
        del request
        try:
            ring = self._keys.keyring
        except RuntimeError:  # key ring not loaded yet
            return _error(503, "the operator is starting", **{"Retry-After": "5"})
        moment = self._clock()
        gone = {r.kid for r in ring.retired if r.retire_until <= moment}
        keys = [k for k in self._current_jwks(ring)["keys"] if k["kid"] not in gone]
        return web.json_response({"keys": keys})

    def _verify(self, request: web.Request) -> VerifiedToken | web.Response:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _error(401, "a plugin token is required", **{"WWW-Authenticate": "Bearer"})
        try:
            return self._verifier.verify(token.strip())
        except VerifierUnavailable:
            return _error(503, "the operator is starting", **{"Retry-After": "5"})
        except TokenInvalid as invalid:
            logger.info("heartbeat refused: %s", invalid.reason)
            return _error(
                401,
                f"invalid token: {invalid.reason}",
                **{"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )

    async def handle(self, request: web.Request) -> web.Response:
        verified = self._verify(request)
        if isinstance(verified, web.Response):
            return verified
        if request.content_type != "application/json":
            return _error(415, "Content-Type must be application/json")
        length = request.content_length
        if length is not None and length > MAX_HEARTBEAT_BYTES:
            return _error(413, f"body larger than {MAX_HEARTBEAT_BYTES} bytes")
        raw = b""
        while len(raw) <= MAX_HEARTBEAT_BYTES:
            chunk = await request.content.read(MAX_HEARTBEAT_BYTES + 1 - len(raw))
            if not chunk:
                break
            raw += chunk
        if len(raw) > MAX_HEARTBEAT_BYTES:
            return _error(413, f"body larger than {MAX_HEARTBEAT_BYTES} bytes")
        try:
            beat = parse_heartbeat(load_json(raw))
        except HeartbeatError as problem:
            return _error(400, str(problem))
        except ValueError as problem:
            return _error(400, f"body is not valid JSON: {problem}")
        if beat.plugin_id is not None and beat.plugin_id != verified.plugin_id:
            logger.warning(
                "plugin %s sent a heartbeat for another plugin; refused", verified.plugin_id
            )
            return _error(403, "a plugin may only report its own health")
        key = self._plugins.owner_of(verified.plugin_id)
        if key is None:
            return _error(404, f"no VivifiedPlugin holds plugin id {verified.plugin_id!r}")
        health = self._sink.record_heartbeat(key, beat)
        if health is None:
            return _error(404, f"plugin {verified.plugin_id!r} is not monitored (disabled?)")
        return web.json_response({"plugin_id": verified.plugin_id, "health": health.value})
