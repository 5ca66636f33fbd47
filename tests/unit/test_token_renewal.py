"""The token re-mint chain: one named check per reason, the first failing one decides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vivified.tokens.renewal import LiveToken, RenewalInput, refresh_in, renewal_reason

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GOOD = LiveToken("j1", "k1", NOW - timedelta(hours=1), NOW + timedelta(hours=23), "c1")


def facts(live: LiveToken | None = GOOD, **changes: object) -> RenewalInput:
    base: dict[str, object] = {
        "live": live,
        "claims": "c1",
        "signing_kids": {"k1"},
        "revoked": set(),
        "now": NOW,
        "refresh_fraction": 0.8,
    }
    base.update(changes)
    return RenewalInput(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("reason", "given", "expected"),
    [
        ("a good token is kept", facts(), None),
        ("no Secret yet", facts(None), "Missing"),
        ("its id is on the revocation list", facts(revoked={"j1"}), "Revoked"),
        ("its key left the ring", facts(signing_kids={"k2"}), "KeyRetired"),
        ("the manifest's claims changed", facts(claims="c2"), "ClaimsChanged"),
        ("80 % of its life is gone", facts(now=NOW + timedelta(hours=19)), "DueForRemint"),
        ("revoked wins over due", facts(revoked={"j1"}, now=NOW + timedelta(hours=30)), "Revoked"),
    ],
)
def test_renewal_reason(reason: str, given: RenewalInput, expected: str | None) -> None:
    assert renewal_reason(given) == expected, reason


def test_refresh_is_scheduled_at_the_fraction_and_never_in_the_past() -> None:
    issued, expires = NOW, NOW + timedelta(hours=10)
    assert refresh_in(issued, expires, NOW, 0.8) == 8 * 3600
    assert refresh_in(issued, expires, NOW + timedelta(hours=9), 0.8) == 1.0
