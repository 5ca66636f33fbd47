"""Read what the core's proxy enforces, so ``EgressEnforced`` says the truth (issue 9).

Every ``egress_report_seconds`` the operator fetches ``GET /v1/proxy/allowlists`` under
``core_url`` (any replica behind the Service; every replica reads the same VivifiedPlugins).
Plugins whose entry appeared, changed or vanished are reconciled again, and the reconciler
reads :meth:`AllowlistReports.get` into ``PluginFacts.egress_report``. The decision itself
(generation, domains, mode) is the pure ``vivified.policy.egress_status.egress_condition``.

When the core cannot be read the last document is kept for ``stale_after`` seconds, then
dropped: a core that has stopped reporting is not claimed to enforce anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import httpx

from vivified.policy.egress_status import (
    EgressReport,
    changed_reports,
    reports_from_document,
)
from vivified_sdk import contract, loads_strict

__all__ = ["AllowlistReports"]

logger = logging.getLogger(__name__)

Key = tuple[str, str]
MAX_DOCUMENT_BYTES = 8 * 1024 * 1024


class AllowlistReports:
    """The core's latest allowlist state per plugin, kept fresh by a background poll."""

    def __init__(
        self,
        core_url: str,
        on_change: Callable[[set[Key]], None],
        *,
        interval: float = 5.0,
        stale_after: float | None = None,
        timeout: float = 3.0,
        client: httpx.AsyncClient | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = core_url.rstrip("/") + contract.CORE_PROXY_ALLOWLISTS_PATH
        self._on_change = on_change
        self._interval = interval
        self._stale_after = stale_after if stale_after is not None else max(30.0, 6 * interval)
        self._client = client or httpx.AsyncClient(timeout=timeout, trust_env=False)
        self._owns_client = client is None
        self._monotonic = monotonic
        self._reports: dict[Key, EgressReport] = {}
        self._last_good: float | None = None
        self._failing = False
        self._task: asyncio.Task[None] | None = None

    def get(self, key: Key) -> EgressReport | None:
        return self._reports.get(key)

    async def poll_once(self) -> set[Key]:
        """Fetch once; return (and announce) the plugins whose report changed."""
        try:
            response = await self._client.get(self.url)
            response.raise_for_status()
            fresh = reports_from_document(
                loads_strict(response.content, max_bytes=MAX_DOCUMENT_BYTES)
            )
        except (httpx.HTTPError, ValueError) as error:
            if not self._failing:
                logger.warning(
                    "cannot read the core's allowlist state (%s): EgressEnforced keeps its "
                    "last known value for %.0f s",
                    type(error).__name__,
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
            self._last_good = self._monotonic()
            self._failing = False
        changed = changed_reports(self._reports, fresh)
        self._reports = fresh
        if changed:
            self._on_change(changed)
        return changed

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="egress-allowlists")

    async def _run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except Exception:
                logger.exception("allowlist poll failed")
            await asyncio.sleep(self._interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._owns_client:
            await self._client.aclose()
