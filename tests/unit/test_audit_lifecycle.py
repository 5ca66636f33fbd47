"""Operator lifecycle changes reach the trail through the Event recorder's one call."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from kopf._core.intents.causes import Activity
from tests.fake_operator import NAMESPACE, NOW, FakeOperator, plugin_body
from tests.unit.test_audit_auditor import SIGNER, FlakySink, verify

from vivified import tokens
from vivified.audit import AuditEntry, AuditUnavailable, MemoryAuditor
from vivified.audit.lifecycle import lifecycle_entry
from vivified.audit.record import build_body
from vivified.dataplane.audit import operator as operator_audit
from vivified.dataplane.audit.auditor import ChainAuditor
from vivified.dataplane.audit.file import iter_lines
from vivified.resource import FINALIZER
from vivified.settings import OperatorSettings
from vivified.shell.events import EventRecorder
from vivified.shell.handlers import build_registry
from vivified.shell.kube import KubeError
from vivified.shell.runtime import Runtime

PLUGIN: dict[str, Any] = {
    "metadata": {"name": "billing", "namespace": "plugins", "generation": 3, "uid": "u1"},
    "spec": {"manifest": {"id": "billing"}},
}


class FakeKube:
    def __init__(self) -> None:
        self.posted: list[dict[str, Any]] = []

    async def request(self, method: str, path: str, body: dict[str, Any]) -> None:
        self.posted.append(body)


@pytest.fixture
def memory() -> Iterator[MemoryAuditor]:
    auditor = MemoryAuditor()
    operator_audit.configure(auditor)
    yield auditor
    operator_audit.configure(None)


@pytest.mark.parametrize(
    ("reason", "message", "action"),
    [
        ("PhasePending", "Pending: waiting", "lifecycle.validated"),
        ("PhaseActive", "Active: ready", "lifecycle.enabled"),
        ("PhaseDisabled", "Disabled: spec.enabled is false", "lifecycle.disabled"),
        ("ValidationFailed", "1 validation error(s): id: bad", "lifecycle.invalid"),
        ("TokenIssued", "token j1 issued with key k1", "lifecycle.token_minted"),
        ("TokenRevoked", "plugin disabled: token revoked", "lifecycle.token_revoked"),
        ("PluginDeleted", "plugin deleted; token(s) revoked: j1", "lifecycle.deleted"),
        (
            "ChildrenApplied",
            "ServiceAccount billing created; Deployment billing created",
            "lifecycle.created",
        ),
    ],
)
async def test_operator_events_become_lifecycle_records(
    memory: MemoryAuditor, reason: str, message: str, action: str
) -> None:
    kube = FakeKube()
    await EventRecorder(kube, lambda: datetime.now(UTC)).normal(PLUGIN, reason, message)  # type: ignore[arg-type]
    assert len(kube.posted) == 1
    assert [e.action for e in memory.entries] == [action]
    entry = memory.entries[0]
    assert entry.agent == "system:vivified-operator"
    assert entry.entity["plugin"] == "billing"
    assert entry.entity["namespace"] == "plugins"
    assert entry.outcome == ("refused" if action == "lifecycle.invalid" else "allowed")


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("PhaseInvalid", "Invalid: ..."),
        ("ChildrenApplied", "Deployment billing updated"),
        ("Probe", "x"),
    ],
)
def test_other_events_are_not_lifecycle_changes(reason: str, message: str) -> None:
    assert lifecycle_entry(PLUGIN, reason, message) is None


async def test_audit_failure_never_breaks_the_operator() -> None:
    class Down:
        async def record(self, entry: AuditEntry) -> None:
            raise AuditUnavailable("audit_unavailable")

    operator_audit.configure(Down())
    try:
        before = operator_audit.lost()
        recorder = EventRecorder(FakeKube(), lambda: datetime.now(UTC))  # type: ignore[arg-type]
        await recorder.normal(PLUGIN, "PhaseActive", "x")
        assert operator_audit.lost() == before + 1
    finally:
        operator_audit.configure(None)


async def test_unconfigured_operator_audits_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIVIFIED_AUDIT_SINK", raising=False)
    operator_audit.configure(None)
    await operator_audit.audit_lifecycle(PLUGIN, "PhaseActive", "x")
    operator_audit.configure(None)


async def test_operator_from_env_writes_a_file_trail(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("VIVIFIED_AUDIT_SINK", f"file:{tmp_path / 'trail'}")
    monkeypatch.setenv("HOSTNAME", "op-0")
    operator_audit.configure(None)
    try:
        await operator_audit.audit_lifecycle(PLUGIN, "PhaseDisabled", "Disabled")
        auditor = await operator_audit._auditor()
        await auditor.close()  # type: ignore[attr-defined]
    finally:
        operator_audit.configure(None)
    text = (tmp_path / "trail").read_text()
    assert '"writer":"operator-op-0"' in text
    assert '"action":"lifecycle.disabled"' in text


# -- deleted and key rotated, through the operator's fakes ------------------------------------


def entries_of(memory: MemoryAuditor, action: str) -> list[AuditEntry]:
    return [e for e in memory.entries if e.action == action]


def secret_words(keyring: tokens.KeyRing) -> list[str]:
    """Every piece of key material of ``keyring``: its private PEMs and JWK coordinates."""
    words: list[str] = []
    for key in (keyring.active, keyring.next):
        if key is None:
            continue
        pem = key.private_pem.decode()
        words += [line for line in pem.splitlines() if line and "-----" not in line]
        jwk = key.public_jwk()
        words += [jwk["x"], jwk["y"]]
    words += [r.x for r in keyring.retired] + [r.y for r in keyring.retired]
    return words


def assert_no_key_material(entries: list[AuditEntry], keyrings: list[tokens.KeyRing]) -> None:
    bodies = [build_body(e, NOW) for e in entries]
    text = json.dumps(bodies)
    for keyring in keyrings:
        for word in secret_words(keyring):
            assert word not in text


async def test_the_key_ring_s_life_is_audited_by_key_id_only(memory: MemoryAuditor) -> None:
    operator = FakeOperator()
    await operator.start()
    created = operator.identity.keyring
    settings = operator.settings
    # Staged a publish-ahead before the max age, rotated at it: one record per step.
    operator.clock.advance(
        settings.signing_key_max_age_seconds - settings.signing_key_publish_ahead_seconds
    )
    await operator.identity.load()
    staged = operator.identity.keyring
    operator.clock.advance(settings.signing_key_publish_ahead_seconds)
    await operator.identity.load()
    rotated = operator.identity.keyring
    await operator.identity.load()  # nothing due: nothing announced
    await operator.stop()

    records = entries_of(memory, "lifecycle.key_rotated")
    assert staged.next is not None
    assert [
        (
            e.entity["step"],
            e.entity["kid"],
            e.entity.get("previous_kid", ""),
        )
        for e in records
    ] == [
        ("created", created.active.kid, ""),
        ("staged", staged.next.kid, ""),
        ("rotated", staged.next.kid, created.active.kid),
    ]
    assert rotated.active.kid == staged.next.kid
    for entry in records:
        assert entry.agent == "system:vivified-operator"
        assert entry.entity["secret"] == settings.signing_key_secret
        assert entry.entity["namespace"] == settings.operator_namespace
        assert "plugin" not in entry.entity
    assert "previous_verifies_until" in records[-1].entity
    # The same three as Events about the Secret, for `kubectl describe secret`.
    events = [
        e for e in operator.cluster.of_kind("Event") if e["involvedObject"]["kind"] == "Secret"
    ]
    assert [e["reason"] for e in events] == [
        "SigningKeyCreated",
        "SigningKeyStaged",
        "SigningKeyRotated",
    ]
    assert_no_key_material(records, [created, staged, rotated])


async def test_a_replica_that_lost_the_rotation_race_announces_nothing(
    memory: MemoryAuditor,
) -> None:
    operator = FakeOperator()
    await operator.start()
    operator.clock.advance(operator.settings.signing_key_max_age_seconds)

    real = operator.cluster.request

    async def another_replica_wrote_first(method: str, path: str, **kw: Any) -> dict[str, Any]:
        if method == "PUT" and "/secrets/" in path:  # the compare-and-swap fails
            raise KubeError(409, "Conflict", "the object has been modified")
        return await real(method, path, **kw)

    operator.cluster.request = another_replica_wrote_first  # type: ignore[method-assign]
    with pytest.raises(KubeError):
        await operator.identity.load()
    await operator.stop()
    assert [e.entity["step"] for e in entries_of(memory, "lifecycle.key_rotated")] == ["created"]


@pytest.mark.parametrize(
    ("before", "after", "steps", "why"),
    [
        (None, "A", [("created", "A", "")], "a first key ring"),
        ("A", "A", [], "unchanged (or only pruned)"),
        ("A", "A+B", [("staged", "B", "")], "the next key published ahead"),
        ("A+B", "B", [("rotated", "B", "A")], "the staged key promoted"),
        ("A", "C", [("rotated", "C", "A")], "rotated without staging"),
        ("A+B", "A+C", [("staged", "C", "")], "another key staged instead"),
    ],
)
def test_key_changes(
    before: str | None, after: str, steps: list[tuple[str, str, str]], why: str
) -> None:
    keys = {name: tokens.generate_signing_key(NOW) for name in "ABC"}

    def ring(spec: str, previous: tokens.KeyRing | None) -> tokens.KeyRing:
        active, _, staged = spec.partition("+")
        base = tokens.KeyRing(active=keys[active], next=keys[staged] if staged else None)
        if previous is not None and previous.active.kid != keys[active].kid:
            return tokens.rotate(previous, keys[active], NOW, 3600)
        return base

    first = ring(before, None) if before is not None else None
    second = ring(after, first)
    found = [(c.step, c.kid, c.previous_kid) for c in tokens.key_changes(first, second)]
    kid = {k.kid: name for name, k in keys.items()}
    assert [(s, kid[k], kid.get(p, "")) for s, k, p in found] == steps, why


async def test_a_deletion_is_one_record_with_its_revoked_token(memory: MemoryAuditor) -> None:
    operator = FakeOperator()
    await operator.start()
    body = plugin_body("gone")
    body["metadata"]["finalizers"] = [FINALIZER]
    operator.create(body)
    await operator.settle()
    operator.cluster.make_available(NAMESPACE, "gone")
    await operator.settle()
    jti = operator.status("gone")["token"]["jti"]
    stored = operator.cluster.stored("VivifiedPlugin", NAMESPACE, "gone")
    assert stored is not None
    uid = stored["metadata"]["uid"]
    marked = dict(stored, metadata={**stored["metadata"], "deletionTimestamp": "x"})
    # kopf's delete handler finalizes, and so does the reconcile of the marked plugin.
    await operator.reconciler.finalize((NAMESPACE, "gone"), marked)
    operator.cluster.mark_deleted("VivifiedPlugin", NAMESPACE, "gone")
    await operator.settle()
    await operator.stop()

    deleted = entries_of(memory, "lifecycle.deleted")
    assert len(deleted) == 1, "announced once per uid"
    entity = deleted[0].entity
    assert (entity["plugin"], entity["namespace"], entity["uid"]) == ("gone", NAMESPACE, uid)
    assert entity["revoked_jti"] == jti
    assert jti in operator.identity.revocations
    assert deleted[0].outcome == "allowed"
    events = [e for e in operator.cluster.of_kind("Event") if e["reason"] == "PluginDeleted"]
    assert len(events) == 1
    token = operator.cluster.stored("Secret", NAMESPACE, "gone-token")
    assert token is None or "eyJ" not in json.dumps([build_body(e, NOW) for e in deleted])


async def test_a_deletion_in_a_terminating_namespace_is_audited_without_its_event(
    memory: MemoryAuditor,
) -> None:
    operator = FakeOperator()
    await operator.start()
    body = plugin_body("late")
    body["metadata"]["finalizers"] = [FINALIZER]
    operator.create(body)
    await operator.settle()
    operator.cluster.terminating.add(NAMESPACE)  # the API server refuses the Event (403)
    operator.cluster.mark_deleted("VivifiedPlugin", NAMESPACE, "late")
    await operator.settle()
    await operator.stop()
    assert [e.entity["plugin"] for e in entries_of(memory, "lifecycle.deleted")] == ["late"]
    assert not [e for e in operator.cluster.of_kind("Event") if e["reason"] == "PluginDeleted"]


# -- shutdown: the operator closes its auditor (kopf's cleanup handler) -----------------------


def kubeconfig(tmp_path: Path) -> Path:
    """A kubeconfig for a server nobody listens on: stopping a Runtime makes no request."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "current-context": "c",
                "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
                "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:9/"}}],
                "users": [{"name": "u", "user": {"token": "unused"}}],
            }
        )
    )
    return path


async def test_kopf_cleanup_flushes_a_held_lifecycle_record(tmp_path: Path) -> None:
    trail = tmp_path / "trail.jsonl"
    sink = FlakySink(trail)
    auditor = ChainAuditor(sink, "operator-0", signer=SIGNER, retry_seconds=3600)
    await auditor.start()
    operator_audit.configure(auditor)
    try:
        sink.down = True
        await operator_audit.audit_lifecycle(PLUGIN, "PhaseDisabled", "Disabled: by spec")
        assert auditor.metrics.records_held_total == 1, "held while the sink is down"
        assert not trail.read_bytes()
        sink.down = False  # back, but the probe (hourly here) has not noticed yet

        runtime = Runtime(OperatorSettings(), kubeconfig=str(kubeconfig(tmp_path)))
        registry = build_registry(runtime)
        cleanups = registry._activities.get_handlers(activity=Activity.CLEANUP)
        assert cleanups, "the operator registers a kopf cleanup handler"
        for handler in cleanups:
            await cast(Callable[[], Awaitable[None]], handler.fn)()
    finally:
        operator_audit.configure(None)

    lines = [json.loads(line) for line in iter_lines(trail)]
    assert [r["action"] for r in lines] == ["lifecycle.disabled"]
    assert verify(trail) == 1, "flushed, chained and checkpointed at shutdown"
