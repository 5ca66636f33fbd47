"""Read what the core's proxy enforces, so ``EgressEnforced`` says the truth (issue 9).

Every ``egress_report_seconds`` the operator fetches ``GET /v1/proxy/allowlists`` under
``core_url`` (any replica behind the Service; every replica reads the same VivifiedPlugins)
with its own token (``shell/corepoll.py``: the route refuses plugins, which must not learn
each other's domains). Plugins whose entry appeared, changed or vanished are reconciled again,
and the reconciler reads :meth:`AllowlistReports.get` into ``PluginFacts.egress_report``. The
decision itself (generation, domains, mode) is the pure
``vivified.policy.egress_status.egress_condition``.

When the core cannot be read the last document is kept for ``stale_after`` seconds, then
dropped: a core that has stopped reporting is not claimed to enforce anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Unpack

from vivified.policy.egress_status import EgressReport, reports_from_document
from vivified.shell.corepoll import CoreReports, Key, PollKnobs
from vivified_sdk import contract

__all__ = ["AllowlistReports"]


class AllowlistReports(CoreReports[EgressReport]):
    """The core's latest allowlist state per plugin, kept fresh by a background poll."""

    def __init__(
        self, core_url: str, on_change: Callable[[set[Key]], None], **knobs: Unpack[PollKnobs]
    ) -> None:
        super().__init__(
            core_url.rstrip("/") + contract.CORE_PROXY_ALLOWLISTS_PATH,
            reports_from_document,
            on_change,
            name="allowlist state",
            **knobs,
        )
