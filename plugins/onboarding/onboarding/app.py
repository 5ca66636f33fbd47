"""The Onboarding plugin's HTTP API (FastAPI).

=========================  =================================================  ==========
``GET /health``            status                                              no auth
``POST /api/onboard/ID``   write ID's starting profile in user-management     call token
=========================  =================================================  ==========

Its own callers come through the core too (``CallVerifier``), and its answer shows what
happened downstream: user-management's status, the caller it saw, or the core's refusal
``reason`` (problem+json) when policy said no.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from vivified_sdk import CallVerifier, CoreClient, TokenInvalid

TARGET = "user-management"
_USER_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def create_app(verifier: CallVerifier | None = None, core: CoreClient | None = None) -> FastAPI:
    state: dict[str, Any] = {"verifier": verifier, "core": core}

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # The core's JWKS is fetched in the background, never inside a request.
        calls = _verifier()
        calls.start()
        await asyncio.to_thread(calls.wait_ready, 5.0)
        try:
            yield
        finally:
            await asyncio.to_thread(calls.stop)

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)

    def _verifier() -> CallVerifier:
        if state["verifier"] is None:
            state["verifier"] = CallVerifier.from_env()
        return state["verifier"]  # type: ignore[no-any-return]

    def _core() -> CoreClient:
        if state["core"] is None:
            state["core"] = CoreClient.from_env()
        return state["core"]  # type: ignore[no-any-return]

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "healthy", "plugin": "onboarding"}

    @app.post("/api/onboard/{user_id}")
    async def onboard(user_id: str, request: Request) -> JSONResponse:
        if len(request.headers.getlist("authorization")) > 1:
            return JSONResponse({"error": "Authorization appears twice"}, status_code=400)
        try:
            call = _verifier().verify_authorization(request.headers.get("Authorization"))
        except TokenInvalid:
            return JSONResponse({"error": "a call token from the core is required"}, 401)
        if not _USER_ID.fullmatch(user_id):
            return JSONResponse({"error": "invalid user id"}, status_code=422)
        reply = await _core().invoke(
            TARGET, "user_info", user_id, method="PUT", json={"onboarded_by": call.caller}
        )
        body: dict[str, Any] = {"user": user_id, "user_management_status": reply.status_code}
        if reply.headers.get("content-type", "").startswith("application/problem+json"):
            body["refused"] = reply.json().get("reason")
        else:
            body["caller_seen_by_user_management"] = reply.headers.get("X-Vivified-Caller-Seen")
        return JSONResponse(body, status_code=200 if reply.status_code < 400 else 502)

    return app
