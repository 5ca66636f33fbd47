"""kill -9 at every write: the operator dies right before its k-th API write of a scenario
(token mints, a claims change, a disable, a re-mint, a key rotation), a fresh operator starts
on what the cluster holds, and the invariants of tests/chaos/invariants.py must hold once it
has settled, for every k.

The cluster is tests/fake_cluster.py (no I/O, deterministic); a write after the death raises
:class:`Killed` (a ``BaseException``: no handler of the operator may catch it), so nothing the
dead process would still have done lands. The live variant (a real SIGKILL at a random moment
on the local cluster) is tests/chaos/test_token_kill.py; this one covers every moment.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from tests.chaos.invariants import (
    CLAIMS_ANNOTATION,
    EXPIRES_ANNOTATION,
    JTI_ANNOTATION,
    KINDS,
    PLUGIN_LABEL,
    Snapshot,
    Token,
    check,
    snapshot_from,
)
from tests.fake_cluster import FakeCluster
from tests.fake_operator import NAMESPACE, Clock, FakeOperator, plugin_body

from vivified import tokens
from vivified.settings import OperatorSettings

pytestmark = pytest.mark.timeout(120)

SETTINGS = OperatorSettings(token_ttl_seconds=3600, signing_key_max_age_seconds=7200,
                            signing_key_publish_ahead_seconds=600)  # fmt: skip
PLUGINS = ("p-one", "p-two")


class Killed(BaseException):
    """The process is gone: raised by every write from the crash on."""


@dataclass
class CrashingCluster(FakeCluster):
    """Dies right before write number ``crash_at`` (counted from :meth:`arm`)."""

    crash_at: int | None = None
    counting: bool = False
    counted: int = 0
    dead: bool = False
    #: Every token Secret the operator ever wrote (what earlier snapshots would have seen).
    history: list[Token] = field(default_factory=list)

    def arm(self, at: int | None) -> None:
        """Count writes from now; die before write AT (None: count only)."""
        self.crash_at, self.counting, self.counted, self.dead = at, True, 0, False

    def disarm(self) -> None:
        self.crash_at, self.counting, self.dead = None, False, False

    def _write(self, method: str, kind: str, namespace: str, name: str) -> None:
        if self.dead:
            raise Killed
        if self.counting:
            self.counted += 1
            if self.counted == self.crash_at:
                self.dead = True
                raise Killed
        super()._write(method, kind, namespace, name)

    def put(self, kind: str, obj: dict[str, Any], *, event: str | None = None) -> dict[str, Any]:
        stored = super().put(kind, obj, event=event)
        if kind == "Secret" and "token" in (stored.get("data") or {}):
            meta = stored["metadata"]
            notes = meta.get("annotations") or {}
            self.history.append(
                Token(
                    meta["namespace"],
                    meta["labels"][PLUGIN_LABEL],
                    notes.get(JTI_ANNOTATION, ""),
                    True,
                    notes.get(CLAIMS_ANNOTATION, ""),
                    str((meta.get("ownerReferences") or [{}])[0].get("uid", "")),
                    tokens.parse_rfc3339(notes[EXPIRES_ANNOTATION]),
                )
            )
        return stored


def available_deployments(cluster: FakeCluster, kind: str, obj: dict[str, Any]) -> None:
    """Play the Deployment controller: every applied Deployment becomes available."""
    if kind == "Deployment":
        cluster.make_available(obj["metadata"]["namespace"], obj["metadata"]["name"])


async def boot(cluster: CrashingCluster, clock: Clock) -> FakeOperator:
    """A fresh operator process on what the cluster holds (its caches filled by listing)."""
    op = FakeOperator(cluster=cluster, settings=SETTINGS, clock=clock)
    op.informer.start()
    await op.informer.wait_synced()
    await op.start()
    for plugin in cluster.of_kind("VivifiedPlugin"):
        op.observe("ADDED", copy.deepcopy(plugin))
    return op


async def until_dead_or_settled(op: FakeOperator, cluster: CrashingCluster) -> None:
    settling = asyncio.ensure_future(op.settle())
    while not settling.done() and not cluster.dead:
        await asyncio.sleep(0)
    if not settling.done():
        settling.cancel()
    await asyncio.gather(settling, return_exceptions=True)


async def shut(op: FakeOperator, cluster: CrashingCluster) -> None:
    """Stop a process (dead or alive) and unhook it from the cluster."""
    await asyncio.gather(op.stop(), op.informer.stop(), return_exceptions=True)
    if op._watch in cluster.watchers:
        cluster.watchers.remove(op._watch)


def snapshot(cluster: FakeCluster, clock: Clock) -> Snapshot:
    ns = SETTINGS.operator_namespace

    def data(name: str) -> dict[str, str]:
        return dict((cluster.stored("ConfigMap", ns, name) or {}).get("data") or {})

    signing = cluster.stored("Secret", ns, SETTINGS.signing_key_secret)
    children = {
        kind: [o for o in cluster.of_kind(kind) if PLUGIN_LABEL in o["metadata"].get("labels", {})]
        for kind in KINDS
    }
    return snapshot_from(
        cluster.of_kind("VivifiedPlugin"),
        children,
        jwks_data=data(SETTINGS.jwks_configmap),
        revocations_data=data(SETTINGS.revocations_configmap),
        signing_key_data=(signing or {}).get("data") if signing else None,
        now=clock(),
        issuer=SETTINGS.token_issuer,
        audience=SETTINGS.token_audience,
    )


Action = Callable[[FakeOperator, CrashingCluster, Clock], Awaitable[None]]


async def nothing(op: FakeOperator, cluster: CrashingCluster, clock: Clock) -> None:
    """Setup only (the crash falls among the first mints)."""


async def change_claims(op: FakeOperator, cluster: CrashingCluster, clock: Clock) -> None:
    """A new version: the tokens' claims change, the old tokens must be revoked."""
    for name in PLUGINS:
        body = copy.deepcopy(cluster.stored("VivifiedPlugin", NAMESPACE, name))
        assert body is not None
        body["spec"]["manifest"]["version"] = "1.1.0"
        body["metadata"]["generation"] += 1
        cluster.put("VivifiedPlugin", body)


async def disable_one(op: FakeOperator, cluster: CrashingCluster, clock: Clock) -> None:
    body = copy.deepcopy(cluster.stored("VivifiedPlugin", NAMESPACE, PLUGINS[0]))
    assert body is not None
    body["spec"]["enabled"] = False
    body["metadata"]["generation"] += 1
    cluster.put("VivifiedPlugin", body)


async def remint_due(op: FakeOperator, cluster: CrashingCluster, clock: Clock) -> None:
    """80 % of the lifetime has passed: both tokens are re-minted (the resync finds them)."""
    clock.advance(SETTINGS.token_ttl_seconds * 0.85)
    op._enqueue_all({(NAMESPACE, name) for name in PLUGINS})


async def rotate_key(op: FakeOperator, cluster: CrashingCluster, clock: Clock) -> None:
    """Stage the next key, then rotate to it (the identity refresher), then resync."""
    clock.advance(SETTINGS.signing_key_max_age_seconds - SETTINGS.signing_key_publish_ahead_seconds)
    await op.identity.load()
    clock.advance(SETTINGS.signing_key_publish_ahead_seconds + 1)
    await op.identity.load()
    op._enqueue_all({(NAMESPACE, name) for name in PLUGINS})


@dataclass(frozen=True)
class Outcome:
    writes: int  # the action's writes when nothing dies
    problems: dict[int, list[str]]  # crash point -> violations after the restart


async def run(action: Action, crash_at: int | None, *, setup: bool = True) -> tuple[
    int, list[str]
]:  # fmt: skip
    """Setup (plugins created and settled), then ACTION with the process dying before its
    CRASH_AT-th write, a restart, and the check. Returns (writes counted, violations)."""
    cluster, clock = CrashingCluster(), Clock()
    cluster.after_write.append(available_deployments)
    op = await boot(cluster, clock)
    before = snapshot(cluster, clock)
    if setup:
        for name in PLUGINS:
            op.create(plugin_body(name))
        await op.settle()
        before = snapshot(cluster, clock)
    cluster.arm(crash_at)
    try:
        if not setup:
            for name in PLUGINS:
                op.create(plugin_body(name))
        await action(op, cluster, clock)
        await until_dead_or_settled(op, cluster)
    except Killed:
        pass
    counted = cluster.counted
    await shut(op, cluster)
    cluster.disarm()
    clock.advance(1)
    op = await boot(cluster, clock)
    await op.settle()
    after = snapshot(cluster, clock)
    await shut(op, cluster)
    history = Snapshot(tokens=tuple(cluster.history), taken_at=clock())
    return counted, check(after, [before, history])


SCENARIOS: list[tuple[str, Action, bool]] = [
    ("first mints", nothing, False),
    ("claims change", change_claims, True),
    ("disable", disable_one, True),
    ("re-mint due", remint_due, True),
    ("key rotation", rotate_key, True),
]


@pytest.mark.parametrize(("name", "action", "setup"), SCENARIOS, ids=[n for n, _, _ in SCENARIOS])
async def test_kill_9_before_any_write_leaves_the_invariants_intact(
    name: str, action: Action, setup: bool
) -> None:
    writes, clean = await run(action, None, setup=setup)
    assert clean == [], f"{name} without a crash: {clean}"
    assert writes > 0, f"{name} makes no write: nothing to crash into"
    failures = {}
    for point in range(1, writes + 1):
        _, problems = await run(action, point, setup=setup)
        if problems:
            failures[point] = problems
    assert failures == {}, f"{name}: {len(failures)} of {writes} crash points break invariants"


def test_the_crash_points_can_see_a_lost_revocation() -> None:
    """The harness itself: a restart that forgets revocations (as a build that rewrote the
    list from memory would) is caught, so a clean run above means something."""
    cluster, clock = CrashingCluster(), Clock()
    history = Snapshot(
        tokens=(Token(NAMESPACE, "x", "jti-x", True, "c", "uid-gone", clock() + timedelta(1)),),
        taken_at=clock(),
    )
    assert check(snapshot(cluster, clock), [history]) == [
        f"{NAMESPACE}/x: old token jti-x of a deleted plugin not revoked"
    ]
