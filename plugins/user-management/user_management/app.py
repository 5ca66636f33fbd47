"""The User Management plugin's HTTP API (FastAPI).

=====================  ==========================================================  =======
``GET /health``        status, plugin, version, uptime_seconds, memory_usage (RSS)  no auth
``GET /api/users/ID``  the user's extended attributes                               token
``PUT /api/users/ID``  replace them with a JSON object of scalars                   token
=====================  ==========================================================  =======

Callers authenticate with a platform-issued plugin token (``Authorization: Bearer``),
verified by ``vivified_sdk.TokenVerifier``: ES256 signature against the mounted JWKS,
issuer, audience, expiry, revocation (the core's list at ``VIVIFIED_REVOCATIONS_URL``; fails
closed). Profiles are PII, so by default the caller's token must
also carry the ``handles_pii`` trait (``USER_MANAGEMENT_REQUIRED_TRAIT``; empty = any
plugin). Every access is written to the audit log (``user_management.audit``) with the
caller's plugin id and token id, never with attribute values.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import resource
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from vivified_sdk import (
    CallVerifier,
    CoreClient,
    PublishRefused,
    TokenFile,
    TokenInvalid,
    TokenVerifier,
    contract,
    publish,
)

from . import MANIFEST
from .store import ProfileStore, StoreUnavailable
from .validation import (
    MAX_BODY_BYTES,
    InvalidInput,
    MalformedJson,
    parse_attributes,
    validate_user_id,
)

__all__ = ["Config", "create_app", "memory_usage", "router"]

logger = logging.getLogger("user_management")
audit = logging.getLogger("user_management.audit")

VERSION = str(MANIFEST["version"])
DEFAULT_DB = "/data/users.db"
DEFAULT_REQUIRED_TRAIT = "handles_pii"
STARTED = time.monotonic()


def memory_usage() -> int:
    """Resident set size in bytes (``VmRSS``; peak RSS where /proc is unavailable)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


@dataclass
class Config:
    """Everything the app needs; ``Config.from_env()`` is what the container uses."""

    verifier: TokenVerifier
    db_path: str = DEFAULT_DB
    plugin_id: str = str(MANIFEST["id"])
    required_trait: str | None = DEFAULT_REQUIRED_TRAIT
    heartbeat_url: str | None = None
    heartbeat_interval_seconds: float = 30.0
    token_file: TokenFile | None = None
    #: Calls through the core's operator lane: when set (in a cluster: the operator always
    #: passes VIVIFIED_JWKS_URL), *only* call tokens minted by the core for this plugin are
    #: accepted; a plugin token presented directly is refused.
    calls: CallVerifier | None = None
    #: The core (VIVIFIED_CORE_URL): UserCreated is published there when a profile is created.
    core_url: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        env = os.environ if environ is None else environ
        trait = env.get("USER_MANAGEMENT_REQUIRED_TRAIT", DEFAULT_REQUIRED_TRAIT).strip()
        return cls(
            verifier=TokenVerifier.from_env(env),
            db_path=env.get("USER_MANAGEMENT_DB") or DEFAULT_DB,
            plugin_id=env.get(contract.ENV_PLUGIN_ID) or str(MANIFEST["id"]),
            required_trait=trait or None,
            heartbeat_url=env.get(contract.ENV_HEARTBEAT_URL) or None,
            heartbeat_interval_seconds=float(env.get("USER_MANAGEMENT_HEARTBEAT_SECONDS") or 30.0),
            token_file=TokenFile.from_env(env),
            calls=CallVerifier.from_env(env) if env.get(contract.ENV_JWKS_URL) else None,
            core_url=env.get(contract.ENV_CORE_URL) or None,
        )


def _problem(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


class _Refused(Exception):  # noqa: N818
    def __init__(self, response: JSONResponse) -> None:
        super().__init__(response.status_code)
        self.response = response


async def _read_body(request: Request) -> bytes:
    """The body, refusing more than ``MAX_BODY_BYTES`` without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise _Refused(_problem(413, f"body larger than {MAX_BODY_BYTES} bytes"))
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise _Refused(_problem(413, f"body larger than {MAX_BODY_BYTES} bytes"))
    return bytes(body)


async def _heartbeats(url: str, token_file: TokenFile, config: Config) -> None:
    """Tell the operator we are alive (passive monitoring), if it gave us an address."""
    core_url = os.environ.get(contract.ENV_CORE_URL) or url
    async with CoreClient(core_url, token_file=token_file, heartbeat_url=url) as core:
        while True:
            try:
                reply = await core.heartbeat(
                    "healthy",
                    metrics={
                        "uptime_seconds": round(time.monotonic() - STARTED, 1),
                        "memory_usage": memory_usage(),
                    },
                )
                if reply.status_code != 200:
                    logger.warning("heartbeat refused: HTTP %d", reply.status_code)
            except Exception as error:  # keep beating whatever happened
                logger.warning("heartbeat failed: %s", type(error).__name__)
            await asyncio.sleep(config.heartbeat_interval_seconds)


@dataclass(frozen=True)
class _State:
    config: Config
    store: ProfileStore


def _state(request: Request) -> _State:
    state: _State = request.app.state.user_management
    return state


def _audit(event: str, **fields: str) -> None:
    audit.info(json.dumps({"event": event, **fields}, sort_keys=True))


@dataclass(frozen=True)
class Caller:
    """Who is calling: from the core's call token (or, outside a cluster, a plugin token)."""

    plugin_id: str
    jti: str
    traits: tuple[str, ...]


def _verify(cfg: Config, header: str | None) -> Caller:
    if cfg.calls is not None:
        call = cfg.calls.verify_authorization(header)
        return Caller(call.caller, call.jti, call.traits)
    token = cfg.verifier.verify_authorization(header)
    return Caller(token.plugin_id, token.jti, token.traits)


def caller(request: Request) -> Caller:
    """A valid call token (or platform token out of cluster), and the trait PII requires."""
    cfg = _state(request).config
    if len(request.headers.getlist("authorization")) > 1:
        raise _Refused(_problem(400, "the Authorization header appears twice"))
    try:
        token = _verify(cfg, request.headers.get("Authorization"))
    except TokenInvalid as invalid:
        _audit("auth.denied", reason=invalid.reason)
        raise _Refused(
            _problem(
                401,
                "a valid call token from the core is required"
                if cfg.calls is not None
                else "a valid platform token is required",
                **{"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        ) from None
    if cfg.required_trait and cfg.required_trait not in token.traits:
        _audit("auth.forbidden", caller=token.plugin_id, jti=token.jti)
        raise _Refused(_problem(403, f"caller lacks the {cfg.required_trait} trait"))
    return token


CallerToken = Annotated[Caller, Depends(caller)]
router = APIRouter()


def _record(event: str, token: Caller, user_id: str, outcome: str) -> None:
    _audit(event, caller=token.plugin_id, jti=token.jti, user_id=user_id, outcome=outcome)


@router.get("/health")
def health(request: Request) -> JSONResponse:
    """Unauthenticated (the operator's probes and the kubelet call it); no secrets."""
    state = _state(request)
    body: dict[str, Any] = {
        "status": "healthy",
        "plugin": state.config.plugin_id,
        "version": VERSION,
        "uptime_seconds": round(time.monotonic() - STARTED, 3),
        "memory_usage": memory_usage(),
    }
    try:
        state.store.ping()
    except StoreUnavailable:
        body["status"] = "unhealthy"
        body["error"] = "database unavailable"
        return JSONResponse(body, status_code=503)
    return JSONResponse(body)


@router.get("/api/users/{user_id}")
def get_user(user_id: str, request: Request, token: CallerToken) -> JSONResponse:
    try:
        validate_user_id(user_id)
    except InvalidInput as problem:
        return _problem(422, str(problem))
    try:
        profile = _state(request).store.get(user_id)
    except StoreUnavailable:
        _record("user.read", token, user_id, "error")
        return _problem(503, "profile store unavailable")
    _record("user.read", token, user_id, "found" if profile else "not_found")
    seen = {"X-Vivified-Caller-Seen": token.plugin_id}  # the demo shows who the core vouched for
    if profile is None:
        return _problem(404, "no profile for this user", **seen)
    return JSONResponse(profile.to_dict(), headers=seen)


@router.put("/api/users/{user_id}")
async def put_user(user_id: str, request: Request, token: CallerToken) -> JSONResponse:
    try:
        validate_user_id(user_id)
    except InvalidInput as problem:
        return _problem(422, str(problem))
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return _problem(415, "Content-Type must be application/json")
    body = await _read_body(request)
    try:
        attributes = parse_attributes(body)
    except MalformedJson as problem:
        return _problem(400, str(problem))
    except InvalidInput as problem:
        return _problem(422, str(problem))
    store = _state(request).store
    try:
        created = await run_in_threadpool(
            store.put, user_id, attributes, f"plugin:{token.plugin_id}"
        )
        profile = await run_in_threadpool(store.get, user_id)
    except StoreUnavailable:
        _record("user.write", token, user_id, "error")
        return _problem(503, "profile store unavailable")
    _record("user.write", token, user_id, "created" if created else "replaced")
    if created and profile is not None:
        await _user_created(_state(request).config, profile.to_dict())
    if profile is None:  # deleted between the two statements: nothing to show
        return _problem(503, "profile store unavailable")
    return JSONResponse(profile.to_dict(), status_code=201 if created else 200)


async def _user_created(config: Config, profile: Mapping[str, Any]) -> None:
    """Publish UserCreated through the core (event lane). The id is derived from the profile,
    so a retried request re-sends the same event and the core stores it once. Not an outbox:
    if the core is down the profile stays created and the failure is logged."""
    if config.core_url is None or config.token_file is None:
        return
    data: dict[str, Any] = {"user_id": profile["user_id"]}
    email = profile["attributes"].get("email")
    if isinstance(email, str):
        data["email"] = email
    event_id = f"user-created:{profile['user_id']}:{profile['updated_at']}"
    try:
        async with CoreClient(config.core_url, token_file=config.token_file) as core:
            await publish(core, "UserCreated", data, event_id=event_id, subject=profile["user_id"])
    except PublishRefused as refused:
        logger.warning("UserCreated refused by the core: %s", refused.reason)
    except Exception as error:  # the profile is stored; the event is best effort here
        logger.warning("UserCreated not published: %s", type(error).__name__)


async def _refused(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, _Refused)  # noqa: S101 - registered for _Refused only
    return error.response


def create_app(config: Config | None = None) -> FastAPI:
    """Build the app. Tests pass a ``Config``; the container reads the environment
    (``uvicorn --factory user_management.app:create_app``)."""
    cfg = config or Config.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # The verifier refreshes JWKS/revocation URLs in a background thread (never in a
        # request); until its first revocation list arrives it refuses every token.
        cfg.verifier.start()
        await asyncio.to_thread(cfg.verifier.wait_ready, 5.0)
        if cfg.calls is not None:  # the core's JWKS, for the call tokens it forwards
            cfg.calls.start()
            await asyncio.to_thread(cfg.calls.wait_ready, 5.0)
        beat = None
        if cfg.heartbeat_url and cfg.token_file is not None:
            beat = asyncio.create_task(_heartbeats(cfg.heartbeat_url, cfg.token_file, cfg))
        try:
            yield
        finally:
            if beat is not None:
                beat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beat
            await asyncio.to_thread(cfg.verifier.stop)
            if cfg.calls is not None:
                await asyncio.to_thread(cfg.calls.stop)

    api = FastAPI(
        title=str(MANIFEST["name"]),
        version=VERSION,
        lifespan=lifespan,
        # No unauthenticated schema or docs pages: only /health is open.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    api.state.user_management = _State(cfg, ProfileStore(cfg.db_path))
    api.add_exception_handler(_Refused, _refused)
    api.include_router(router)
    return api
