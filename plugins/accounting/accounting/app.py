"""A small event-lane subscriber: on ``UserCreated`` it sets up a payroll record.

Deliveries arrive at ``endpoints.events`` (``/events``) through the SDK's ``EventReceiver``,
which checks the core's call token (``CallVerifier``: the core's JWKS at
``VIVIFIED_JWKS_URL``, audience = this plugin) and skips a redelivered ``(source, id)``. The payroll
record is keyed on the user id, so handling an event twice changes nothing (idempotent by
construction, which is what at-least-once delivery asks of every subscriber).

    uvicorn --factory accounting.app:create_app
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from vivified_sdk import CallVerifier, EventReceiver


class Payroll:
    """In-memory payroll records (an example; a real plugin keeps them in its own store)."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}

    def on_event(self, event: dict[str, Any]) -> None:
        if event.get("type") != "UserCreated":
            return
        data = event.get("data") or {}
        user_id = str(data.get("user_id", ""))
        if user_id and user_id not in self.records:
            self.records[user_id] = {"user_id": user_id, "status": "set_up", "event": event["id"]}


def create_app(verifier: CallVerifier | None = None) -> FastAPI:
    """``verifier``: the core's call tokens (default ``CallVerifier.from_env()``, refreshed in
    the background while the app runs)."""
    payroll = Payroll()
    calls = verifier if verifier is not None else CallVerifier.from_env()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        calls.start()
        try:
            yield
        finally:
            calls.stop()

    app = FastAPI(
        title="Accounting", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.payroll = payroll
    receiver = EventReceiver(calls, payroll.on_event)

    @app.post("/events")
    async def events(request: Request) -> Response:
        status, body = await receiver.receive(request.headers, await request.body())
        return JSONResponse(body, status_code=status) if body else Response(status_code=status)

    @app.get("/health")
    def health() -> JSONResponse:
        return JSONResponse({"status": "healthy", "payroll_records": len(payroll.records)})

    return app
