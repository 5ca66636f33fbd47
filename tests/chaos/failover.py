"""Failover of two operator replicas joined in a kopf peering, as processes on the test ground.

The scenario (``run``): replica A leads, replica B stands by; A revokes tokens after B loaded
its start-up state; A is killed with SIGKILL while work is pending (a disable, a new plugin);
B must take over, finish the work, and leave every invariant intact (tests/chaos/invariants.py,
"every revoked jti stays revoked" included). A is then started again and must stand by.

Measured: takeover (kill → B's ``leading peering`` line), B's first write after the kill (the
API server's audit log), time to converge. Counted from the audit log: 409 answers to the
operators (writers that raced: must be zero) and writes by a replica while it was not leading
(a standby before the kill, the rejoined A at any time: must be none).
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tests.chaos.harness import REPO, Operator, converge
from tests.e2e.kube import Cluster, plugin_body, wait_for

PEERING_CRDS = REPO / "charts" / "vivified" / "crds" / "kopf.dev_peerings.yaml"
PEERING = "vivified-failover"
LEADING = "leading peering"
WRITES = frozenset({"create", "update", "patch", "delete", "deletecollection"})
OPERATOR_AGENTS = ("vivified-operator", "kopf")


def install_peering_crds(api: client.ApiClient) -> None:
    """kopf's peering CRDs from the chart (created if missing), Established."""
    ext = client.ApiextensionsV1Api(api)
    for crd in yaml.safe_load_all(PEERING_CRDS.read_text()):
        if not crd:
            continue
        name = crd["metadata"]["name"]
        try:
            ext.create_custom_resource_definition(crd)
        except ApiException as error:
            if error.status != 409:
                raise

        def established(name: str = name) -> bool:
            status = ext.read_custom_resource_definition(name).status
            conditions = (status.conditions if status else None) or []
            return any(c.type == "Established" and c.status == "True" for c in conditions)

        wait_for(f"CRD {name} Established", established, timeout=30)


def create_peering(api: client.ApiClient, namespace: str, name: str = PEERING) -> None:
    """The KopfPeering a namespaced operator joins (the chart creates one per namespace)."""
    body = {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": name}}
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        "kopf.dev", "v1", namespace, "kopfpeerings", body
    )


def audit_log(kubeconfig: Path) -> Path:
    """The local test cluster's audit log (hack/cluster/cluster.py), next to the kubeconfig."""
    return kubeconfig.parent / "logs" / "audit.log"


def audit_events(log: Path, offset: int) -> Iterator[dict[str, Any]]:
    with log.open("rb") as stream:
        stream.seek(offset)
        for line in stream:
            try:
                yield json.loads(line)
            except ValueError:
                continue  # a line being written


def epoch(event: dict[str, Any]) -> float:
    stamp = event.get("requestReceivedTimestamp") or event.get("stageTimestamp") or ""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class Writes:
    """The operators' writes around a failover, as the API server's audit log saw them."""

    conflicts: tuple[str, ...]  # 409s answered to an operator
    while_standing_by: tuple[str, ...]  # the old leader after the kill, the new one before
    first_write: float | None  # epoch of the new leader's first successful write after the kill


def count_writes(
    events: Iterable[dict[str, Any]],
    namespaces: Collection[str],
    killed_at: float,
    *,
    old_leader: str,
    new_leader: str,
) -> Writes:
    """Sort the writes in NAMESPACES by who made them and when; OLD_LEADER and NEW_LEADER are
    the part of each replica's user agent that is its own (``shell/main.py``)."""
    conflicts, idle, first = [], [], None
    for event in events:
        agent = str(event.get("userAgent", ""))
        ref = event.get("objectRef", {})
        if event.get("verb") not in WRITES or ref.get("namespace") not in namespaces:
            continue
        what = f"{event['verb']} {ref.get('resource')}/{ref.get('name')} by {agent}"
        code = int((event.get("responseStatus") or {}).get("code", 0))
        when = epoch(event)
        if code == 409 and agent.startswith(OPERATOR_AGENTS):
            conflicts.append(what)
        if (old_leader in agent and when >= killed_at) or (
            new_leader in agent and when < killed_at
        ):
            idle.append(what)
        if new_leader in agent and when >= killed_at and code < 400:
            first = when if first is None else min(first, when)
    return Writes(tuple(conflicts), tuple(idle), first)


def replica_agent(op: Operator) -> str:
    """The part of a replica's user agent that is its own (``shell/main.py``: host/pid/start)."""
    assert op.process is not None
    return f"/{op.process.pid}/"


@dataclass(frozen=True)
class Failover:
    takeover_seconds: float | None  # kill → the standby's "leading peering" line
    first_write_seconds: float | None  # kill → the standby's first write (audit log)
    converge_seconds: float | None  # kill → every invariant holds
    violations: tuple[str, ...]
    conflicts: tuple[str, ...]  # 409s answered to an operator
    writes_while_standing_by: tuple[str, ...]
    rejoined_took_the_lead: bool
    standby_exited: bool


def wait_line(op: Operator, text: str, timeout: float) -> float | None:
    """Wall-clock time at which TEXT appeared in OP's current log, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in op.log().read_text(errors="replace"):
            return time.time()
        time.sleep(0.05)
    return None


def kill_the_leader(a: Operator, b: Operator) -> float:
    """SIGKILL A (checking that B only stood by until now); returns the moment."""
    if LEADING in b.log().read_text(errors="replace"):
        raise AssertionError("the standby led before the leader was killed")
    moment = time.time()
    a.kill9()
    return moment


def run(
    api: client.ApiClient,
    kubeconfig: Path,
    operator_namespace: str,
    namespace: str,
    replicas: Sequence[Operator],
    *,
    plugins: int = 8,
    disabled: int = 2,
    kill_at: int | None = None,
    timeout: float = 180.0,
) -> Failover:
    """Two replicas (A leads, B stands by), kill -9 A, measure and check; see the module doc.

    KILL_AT: kill A right after creating plugin KILL_AT (a burst in flight); default after
    every plugin is converged and the disables are done."""
    a, b = replicas
    cluster = Cluster(api)
    log = audit_log(kubeconfig)
    offset = log.stat().st_size
    install_peering_crds(api)
    create_peering(api, namespace)
    a.start()
    if wait_line(a, LEADING, 60) is None:
        raise AssertionError(f"replica A never led: {a.log().read_text()[-2000:]}")
    b.start()
    names = [f"ha-{i:04d}" for i in range(plugins)]
    killed_at: float | None = None
    before = None
    for i, name in enumerate(names):
        cluster.apply_plugin(namespace, plugin_body(name))
        if kill_at is not None and i == kill_at:
            killed_at = kill_the_leader(a, b)
    if killed_at is None:
        _, problems, _ = converge(api, [namespace], operator_namespace, timeout=timeout)
        if problems:
            raise AssertionError(f"before the kill: {problems}")
        for name in names[:disabled]:  # A revokes after B loaded its start-up list
            cluster.patch_spec(namespace, name, {"enabled": False})
        _, problems, before = converge(api, [namespace], operator_namespace, timeout=timeout)
        if problems:
            raise AssertionError(f"before the kill: {problems}")
        if len(before.revoked) < disabled:
            raise AssertionError(f"A revoked {len(before.revoked)} tokens, not {disabled}")
        killed_at = kill_the_leader(a, b)
        # Work for the new leader: one more revocation and a new plugin.
        cluster.patch_spec(namespace, names[disabled], {"enabled": False})
        cluster.apply_plugin(namespace, plugin_body("ha-after-kill"))
    led = wait_line(b, LEADING, timeout)
    seconds, problems, _ = converge(
        api, [namespace], operator_namespace, earlier=[before] if before else [], timeout=timeout
    )
    converged = time.time() - killed_at if seconds is not None else None
    # The killed replica comes back (as its Deployment would restart it): it must stand by.
    a.start()
    time.sleep(5)
    rejoined_led = LEADING in a.log().read_text(errors="replace")
    standby_exited = not b.alive
    # A's restarted process has a new pid: any write of it is after the kill.
    writes = count_writes(
        audit_events(log, offset),
        (namespace, operator_namespace),
        killed_at,
        old_leader=replica_agent(a),
        new_leader=replica_agent(b),
    )
    return Failover(
        takeover_seconds=led - killed_at if led is not None else None,
        first_write_seconds=(
            writes.first_write - killed_at if writes.first_write is not None else None
        ),
        converge_seconds=converged,
        violations=tuple(problems),
        conflicts=writes.conflicts,
        writes_while_standing_by=writes.while_standing_by,
        rejoined_took_the_lead=rejoined_led,
        standby_exited=standby_exited,
    )


def replica_pair(
    kubeconfig: Path, operator_namespace: str, namespace: str, log_dir: Path, lifetime: int
) -> tuple[Operator, Operator]:
    """Replicas A and B of one peering, each with its own log directory."""
    settings = {"peering_name": PEERING, "peering_lifetime_seconds": str(lifetime)}
    pair = []
    for name in ("a", "b"):
        (log_dir / name).mkdir(parents=True, exist_ok=True)
        pair.append(
            Operator(kubeconfig, operator_namespace, (namespace,), log_dir / name, dict(settings))
        )
    return pair[0], pair[1]
