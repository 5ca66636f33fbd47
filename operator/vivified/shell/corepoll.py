"""Reading the core's operator-only documents: the operator's token, and one poll per document.

The core publishes two documents about every plugin that only the operator may read: the
proxy's allowlist state (``shell/allowlists.py``, for ``EgressEnforced``) and the event lane's
counts (``shell/event_counts.py``, for ``status.events``). Each is one aggregate request per
period, whatever the number of plugins, to any core replica behind the Service.

:class:`OperatorToken` is the credential: a short-lived token signed with the operator's active
signing key (``vivified.tokens.operator_token``; the core trusts it through the JWKS it already
reads), minted in memory, never written anywhere, re-minted at half its lifetime or when the
active key changes. :class:`CoreReports` is the poll: it keeps the latest entries per plugin,
announces the plugins whose entry appeared, changed or vanished (so only those are
reconciled, and an unchanged value costs no write), and when the core cannot be read keeps the
last document for ``stale_after`` seconds, then drops it: a core that has stopped reporting is
not quoted any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Generic, TypedDict, TypeVar, Unpack

import httpx

from vivified import tokens
from vivified.tokens.operator_token import DEFAULT_TTL_SECONDS, mint_operator_token
from vivified_sdk import loads_strict

__all__ = ["CoreReports", "Key", "OperatorToken", "PollKnobs", "changed_keys"]

logger = logging.getLogger(__name__)

Key = tuple[str, str]
T = TypeVar("T")
MAX_DOCUMENT_BYTES = 8 * 1024 * 1024
_REASON = re.compile(r"[a-z][a-z0-9_]{0,63}")


class OperatorToken:
    """``Authorization`` for the core's operator routes. ``repr`` never shows the token."""

    def __init__(
        self,
        keyring: Callable[[], tokens.KeyRing],
        *,
        issuer: str,
        clock: Callable[[], datetime],
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
    ) -> None:
        self._keyring = keyring
        self._issuer = issuer
        self._clock = clock
        self._ttl = ttl_seconds
        self._minted: tokens.MintedToken | None = None

    def current(self) -> tokens.MintedToken:
        now = self._clock()
        ring = self._keyring()
        minted = self._minted
        if (
            minted is None
            or minted.kid != ring.active.kid
            or tokens.needs_remint(minted.issued_at, minted.expires_at, now, 0.5)
        ):
            minted = mint_operator_token(ring, issuer=self._issuer, ttl_seconds=self._ttl, now=now)
            self._minted = minted
        return minted

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.current().token}"}

    def __repr__(self) -> str:
        return f"OperatorToken(issuer={self._issuer!r}, ttl={self._ttl})"


def changed_keys(old: Mapping[Key, object], new: Mapping[Key, object]) -> set[Key]:
    """Plugins whose entry appeared, disappeared or changed: the ones to reconcile again."""
    return {key for key in old.keys() | new.keys() if old.get(key) != new.get(key)}


def _reason(response: httpx.Response) -> str:
    """``HTTP <status> <the core's problem reason>``, for a log line (a reason that is not a
    short snake_case word is left out: nothing odd reaches the log)."""
    try:
        body = loads_strict(response.content, max_bytes=64 * 1024)
    except ValueError:
        body = None
    reason = body.get("reason") if isinstance(body, dict) else None
    shown = reason if isinstance(reason, str) and _REASON.fullmatch(reason) else ""
    return f"HTTP {response.status_code} {shown}".rstrip()


class PollKnobs(TypedDict, total=False):
    """A poll's settings, each with a default."""

    auth: Callable[[], Mapping[str, str]] | None
    """Request headers (the operator's token) per request; None sends none."""
    interval: float
    """Seconds between two reads (5)."""
    stale_after: float | None
    """Seconds the last document stands while the core cannot be read (6 intervals, >= 30)."""
    timeout: float
    """Seconds per request (3)."""
    client: httpx.AsyncClient | None
    monotonic: Callable[[], float]


class CoreReports(Generic[T]):
    """The core's latest entry per plugin in one document, kept fresh by a background poll."""

    def __init__(
        self,
        url: str,
        parse: Callable[[object], dict[Key, T]],
        on_change: Callable[[set[Key]], None],
        *,
        name: str,
        **knobs: Unpack[PollKnobs],
    ) -> None:
        self.url = url
        self.name = name
        self._parse = parse
        self._on_change = on_change
        self._auth = knobs.get("auth")
        self._interval = knobs.get("interval", 5.0)
        stale = knobs.get("stale_after")
        self._stale_after = stale if stale is not None else max(30.0, 6 * self._interval)
        client = knobs.get("client")
        self._client = client or httpx.AsyncClient(
            timeout=knobs.get("timeout", 3.0), trust_env=False
        )
        self._owns_client = client is None
        self._monotonic = knobs.get("monotonic", time.monotonic)
        self._reports: dict[Key, T] = {}
        self._last_good: float | None = None
        self._failing = False
        self._task: asyncio.Task[None] | None = None

    def get(self, key: Key) -> T | None:
        return self._reports.get(key)

    async def _fetch(self) -> dict[Key, T]:
        headers = dict(self._auth()) if self._auth is not None else {}
        response = await self._client.get(self.url, headers=headers)
        if response.status_code != 200:
            raise httpx.HTTPStatusError(
                _reason(response), request=response.request, response=response
            )
        return self._parse(loads_strict(response.content, max_bytes=MAX_DOCUMENT_BYTES))

    async def poll_once(self) -> set[Key]:
        """Fetch once; return (and announce) the plugins whose entry changed."""
        try:
            fresh = await self._fetch()
        except (httpx.HTTPError, ValueError) as error:
            if not self._failing:
                logger.warning(
                    "cannot read the core's %s (%s): the last values stand for %.0f s",
                    self.name,
                    error if isinstance(error, httpx.HTTPStatusError) else type(error).__name__,
                    self._stale_after,
                )
                self._failing = True
            stale = (
                self._last_good is None or self._monotonic() - self._last_good > self._stale_after
            )
            if not stale:
                return set()
            fresh = {}
        else:
            if self._failing:
                logger.info("reading the core's %s again", self.name)
            self._last_good = self._monotonic()
            self._failing = False
        changed = changed_keys(self._reports, fresh)
        self._reports = fresh
        if changed:
            self._on_change(changed)
        return changed

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"core-poll-{self.name}")

    async def _run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except Exception:
                logger.exception("poll of the core's %s failed", self.name)
            await asyncio.sleep(self._interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._owns_client:
            await self._client.aclose()
