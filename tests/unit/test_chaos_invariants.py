"""The chaos invariant checker's pure half (tests/chaos/invariants.py): one healthy state,
then one deliberate breakage per row, each with the reason it must be caught."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from tests.chaos.invariants import KINDS, Child, Plugin, Snapshot, Token, check

NOW = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
A = Plugin("ns", "a", "uid-a", enabled=True, phase="Active")
OFF = Plugin("ns", "off", "uid-off", enabled=False, phase="Disabled")


def children(plugin: Plugin, kinds: tuple[str, ...] = KINDS) -> tuple[Child, ...]:
    return tuple(Child(k, plugin.namespace, plugin.name, plugin.name, (plugin.uid,)) for k in kinds)


def healthy() -> Snapshot:
    return Snapshot(
        plugins=(A, OFF),
        children=(*children(A), *children(OFF, tuple(k for k in KINDS if k != "Secret"))),
        tokens=(Token("ns", "a", "jti-a2", valid=True),),
        revoked={"jti-a1": LATER, "jti-off": LATER},
        keyring_keys={"k1": ("x1", "y1"), "k0": ("x0", "y0")},
        jwks_keys={"k1": ("x1", "y1"), "k0": ("x0", "y0")},
        taken_at=NOW,
    )


def test_a_healthy_state_has_no_violation() -> None:
    assert check(healthy(), [healthy()]) == []


def test_a_revocation_that_expired_may_go() -> None:
    """Pruning after expiry is allowed: the token it revoked cannot verify any more."""
    before = dataclasses.replace(healthy(), revoked={"old": NOW - timedelta(seconds=1)})
    assert check(healthy(), [before]) == []


def test_a_plugin_being_deleted_needs_neither_phase_nor_children() -> None:
    gone = dataclasses.replace(A, phase="Terminating", deleting=True)
    # its children may still be there (garbage collection follows), its token is revoked
    assert check(dataclasses.replace(healthy(), plugins=(gone, OFF), tokens=())) == []


H = healthy()
BROKEN = [
    (
        "the operator died before writing the phase",
        dataclasses.replace(H, plugins=(dataclasses.replace(A, phase="Pending"), OFF)),
        ["ns/a: phase Pending, want Active"],
    ),
    (
        "the phase still describes the spec before an edit (the reconcile has not run yet)",
        dataclasses.replace(
            H,
            plugins=(dataclasses.replace(A, generation=3, observed_generation=2), OFF),
        ),
        ["ns/a: status is for generation 2, the spec is at 3"],
    ),
    (
        "a disabled plugin must not stay Active",
        dataclasses.replace(H, plugins=(A, dataclasses.replace(OFF, phase="Active"))),
        ["ns/off: phase Active, want Disabled"],
    ),
    (
        "a child was never created (killed between two creates)",
        dataclasses.replace(H, children=tuple(c for c in H.children if c != children(A)[2])),
        ["ns/a: no Deployment"],
    ),
    (
        "a child whose owner is gone is an orphan",
        dataclasses.replace(
            H, children=(*H.children, Child("Service", "ns", "z", "z", ("uid-gone",)))
        ),
        ["ns/Service/z: orphan (no live owner)"],
    ),
    (
        "a child without any owner reference is an orphan",
        dataclasses.replace(H, children=(*H.children, Child("Secret", "ns", "z-token", "z"))),
        ["ns/Secret/z-token: orphan (no live owner)"],
    ),
    (
        "two valid tokens for one plugin (re-mint without revoking the old one)",
        dataclasses.replace(H, tokens=(*H.tokens, Token("ns", "a", "jti-a3", valid=True))),
        ["ns/a: 2 valid tokens"],
    ),
    (
        "an enabled plugin left without a valid token",
        dataclasses.replace(H, tokens=(Token("ns", "a", "jti-a2", valid=False),)),
        ["ns/a: no valid token"],
    ),
    (
        "a disabled plugin still holds a valid token",
        dataclasses.replace(H, tokens=(*H.tokens, Token("ns", "off", "jti-off2", valid=True))),
        ["ns/off: valid token for a plugin that is gone or disabled"],
    ),
    (
        "a revocation dropped on restart (the deliberately broken build of issue 13)",
        dataclasses.replace(H, revoked={"jti-off": LATER}),
        [f"revocation of jti-a1 lost (expires {LATER.isoformat()})"],
    ),
    (
        "a JWKS that lacks a key the keyring signs with",
        dataclasses.replace(H, jwks_keys={"k0": ("x0", "y0")}),
        ["keyring kids ['k0', 'k1'] != JWKS kids ['k0']"],
    ),
    (
        "a JWKS that publishes another public key under the same kid",
        dataclasses.replace(H, jwks_keys={"k1": ("x9", "y1"), "k0": ("x0", "y0")}),
        ["key k1: keyring and JWKS publish different public keys"],
    ),
]


@pytest.mark.parametrize(("reason", "state", "expected"), BROKEN, ids=[r for r, _, _ in BROKEN])
def test_each_broken_state_is_caught(reason: str, state: Snapshot, expected: list[str]) -> None:
    assert check(state, [healthy()]) == expected, reason


# Invariant 7, no unrevoked old token: what earlier snapshots saw in token Secrets.
def seen(plugin: Plugin, jti: str, claims: str) -> Token:
    return Token(plugin.namespace, plugin.name, jti, True, claims, plugin.uid, LATER)


CURRENT = dataclasses.replace(H, tokens=(Token("ns", "a", "jti-a2", True, "c1", "uid-a", LATER),))
HISTORY = [
    (
        "the claims changed: the old token was revoked (jti-a1 is on the list)",
        seen(A, "jti-a1", "c0"),
        [],
    ),
    (
        "re-minted for its lifetime or key, same claims: the old one may live out its time",
        seen(A, "jti-a0", "c1"),
        [],
    ),
    (
        "killed between writing the new token and revoking the old: claims it no longer has",
        seen(A, "jti-a0", "c0"),
        ["ns/a: old token jti-a0 asserts superseded claims, not revoked"],
    ),
    (
        "disabled, its token Secret deleted, but the token never revoked",
        seen(OFF, "jti-off0", "c"),
        ["ns/off: old token jti-off0 of a disabled plugin not revoked"],
    ),
    (
        "deleted (no plugin with that uid any more) and its token never revoked",
        seen(Plugin("ns", "a", "uid-a-before", enabled=True, phase="Active"), "jti-x", "c1"),
        ["ns/a: old token jti-x of a deleted plugin not revoked"],
    ),
    (
        "an old token that has expired needs no revocation",
        dataclasses.replace(seen(OFF, "jti-off0", "c"), expires_at=NOW - timedelta(seconds=1)),
        [],
    ),
]


@pytest.mark.parametrize(("reason", "old", "expected"), HISTORY, ids=[r for r, _, _ in HISTORY])
def test_old_tokens_are_revoked_when_they_must_be(
    reason: str, old: Token, expected: list[str]
) -> None:
    earlier = dataclasses.replace(H, tokens=(old,))
    assert check(CURRENT, [earlier]) == expected, reason
