"""Chaos bench: the long variants of tests/chaos/ on the local test ground.

    python bench/chaos.py [--plugins 300] [--timeout 600] [--kill-at 0.5] [--only NAMES]

Needs the local cluster (``make cluster-up``; reads .cluster/kubeconfig) with the CRD
installed (any e2e run does that). For each fault it creates a fresh namespace, starts a
``vivified operator`` for it, injects the fault, restarts the operator and polls the invariant
checker (tests/chaos/invariants.py) until it finds nothing or ``--timeout`` passes. Prints a
table: fault, when, time to converge, invariant violations. Cleans its namespaces up.

Faults (``--only``, comma-separated names; default all):
* ``burst``: SIGKILL the operator after ``--kill-at`` of ``--plugins`` are created;
* ``disable``: all plugins Active, then every one disabled (token revoked) and the operator
  killed 0.3 s later; earlier revocations must survive;
* ``remint``: all Active, then every plugin's version bumped (new claims: new tokens, the old
  ones revoked) and the operator killed 0.3 s later; no old token may stay unrevoked;
* ``apiserver`` / ``etcd``: SIGKILL kube-apiserver / etcd after ``--kill-at`` of the burst
  (``hack/cluster/cluster.py restart``), started again ``--down`` s later; the operator is not
  restarted (it must ride the outage out); "converge" counts from the moment it serves again;
* ``failover``: two replicas in a kopf peering (``--lifetime`` s keep-alives); SIGKILL the
  leader after ``--kill-at`` of the burst; "when" says the takeover time (kill → the standby's
  ``leading peering`` line); 409s, writes by a replica that was not leading, and a rejoined
  replica taking the lead back count as violations (tests/chaos/failover.py).
Not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "operator"))
sys.path.insert(0, str(REPO / "tests"))  # tests/e2e/real_node.py imports cluster_support

import yaml  # noqa: E402
from kubernetes import client, config  # noqa: E402
from tests.chaos import failover  # noqa: E402
from tests.chaos.harness import (  # noqa: E402
    ControlPlane,
    Operator,
    Outcome,
    converge,
    persistently,
)
from tests.e2e.conftest import (  # noqa: E402
    CRD_FILE,
    OPERATOR_NAMESPACE,
    delete_plugins,
    strip_finalizers,
)
from tests.e2e.kube import Cluster, plugin_body, wait_for  # noqa: E402


def fresh_namespace(core: client.CoreV1Api, prefix: str) -> str:
    name = f"{prefix}-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": name}})
    return name


def mid_burst(
    api: client.ApiClient, kubeconfig: Path, n: int, at: float, timeout: float
) -> Outcome:
    core = client.CoreV1Api(api)
    namespace = fresh_namespace(core, "chaos-burst")
    op = Operator(kubeconfig, OPERATOR_NAMESPACE, (namespace,), Path(tempfile.mkdtemp()))
    cluster = Cluster(api)
    try:
        op.start()
        kill_at = int(n * at)
        for i in range(n):
            cluster.apply_plugin(namespace, plugin_body(f"p-{i:04d}"))
            if i == kill_at:
                op.kill9()
        op.start()
        seconds, problems, _ = converge(api, [namespace], OPERATOR_NAMESPACE, timeout=timeout)
        return Outcome(
            "kill-9 operator", f"plugin {kill_at} of {n} created", seconds, tuple(problems)
        )
    finally:
        cleanup(api, op, namespace)


def mid_disable(api: client.ApiClient, kubeconfig: Path, n: int, timeout: float) -> Outcome:
    core = client.CoreV1Api(api)
    namespace = fresh_namespace(core, "chaos-disable")
    op = Operator(kubeconfig, OPERATOR_NAMESPACE, (namespace,), Path(tempfile.mkdtemp()))
    cluster = Cluster(api)
    try:
        op.start()
        for i in range(n):
            cluster.apply_plugin(namespace, plugin_body(f"d-{i:04d}"))
        _, problems, before = converge(api, [namespace], OPERATOR_NAMESPACE, timeout=timeout)
        if problems:
            return Outcome("kill-9 operator", "before disable", None, tuple(problems))
        for i in range(n):
            cluster.patch_spec(namespace, f"d-{i:04d}", {"enabled": False})
        time.sleep(0.3)
        op.kill9()
        op.start()
        seconds, problems, _ = converge(
            api, [namespace], OPERATOR_NAMESPACE, earlier=[before], timeout=timeout
        )
        return Outcome("kill-9 operator", f"0.3 s into disabling {n}", seconds, tuple(problems))
    finally:
        cleanup(api, op, namespace)


def mid_remint(api: client.ApiClient, kubeconfig: Path, n: int, timeout: float) -> Outcome:
    core = client.CoreV1Api(api)
    namespace = fresh_namespace(core, "chaos-remint")
    op = Operator(kubeconfig, OPERATOR_NAMESPACE, (namespace,), Path(tempfile.mkdtemp()))
    cluster = Cluster(api)
    try:
        op.start()
        for i in range(n):
            cluster.apply_plugin(namespace, plugin_body(f"r-{i:04d}"))
        _, problems, before = converge(api, [namespace], OPERATOR_NAMESPACE, timeout=timeout)
        if problems:
            return Outcome("kill-9 operator", "before re-mint", None, tuple(problems))
        for i in range(n):
            cluster.patch_spec(namespace, f"r-{i:04d}", {"manifest": {"version": "1.1.0"}})
        time.sleep(0.3)
        op.kill9()
        op.start()
        seconds, problems, _ = converge(
            api, [namespace], OPERATOR_NAMESPACE, earlier=[before], timeout=timeout
        )
        return Outcome("kill-9 operator", f"0.3 s into re-minting {n}", seconds, tuple(problems))
    finally:
        cleanup(api, op, namespace)


def control_plane_restart(
    api: client.ApiClient, kubeconfig: Path, component: str, args: argparse.Namespace
) -> Outcome:
    """kill -9 COMPONENT mid-burst, start it again after --down s; the operator stays."""
    core = client.CoreV1Api(api)
    namespace = fresh_namespace(core, f"chaos-{component.removeprefix('kube-')}")
    op = Operator(kubeconfig, OPERATOR_NAMESPACE, (namespace,), Path(tempfile.mkdtemp()))
    cluster = Cluster(api)
    plane = ControlPlane(kubeconfig.parent)
    n, kill_at = args.plugins, int(args.plugins * args.kill_at)
    try:
        op.start()
        restart = None
        for i in range(n):
            body = plugin_body(f"c-{i:04d}")
            persistently(functools.partial(cluster.apply_plugin, namespace, body))
            if i == kill_at:
                restart = plane.restart_in_background(component, args.down)
        assert restart is not None
        timing = restart.result()
        seconds, problems, _ = converge(api, [namespace], OPERATOR_NAMESPACE, timeout=args.timeout)
        if not op.alive:
            problems = [*problems, f"the operator died with {component}"]
        when = f"plugin {kill_at} of {n}, down {timing['down']:.1f}s"
        return Outcome(f"kill-9 {component.removeprefix('kube-')}", when, seconds, tuple(problems))
    finally:
        cleanup(api, op, namespace)


def failover_row(api: client.ApiClient, kubeconfig: Path, args: argparse.Namespace) -> Outcome:
    """kill -9 the leader of two peered replicas mid-burst (tests/chaos/failover.py)."""
    namespace = fresh_namespace(client.CoreV1Api(api), "chaos-failover")
    a, b = failover.replica_pair(
        kubeconfig, OPERATOR_NAMESPACE, namespace, Path(tempfile.mkdtemp()), args.lifetime
    )
    kill_at = int(args.plugins * args.kill_at)
    try:
        got = failover.run(
            api, kubeconfig, OPERATOR_NAMESPACE, namespace, (a, b),
            plugins=args.plugins, kill_at=kill_at, timeout=args.timeout,
        )  # fmt: skip
    finally:
        cleanup(api, b if b.alive else a, namespace)
        a.stop()
    took = f"{got.takeover_seconds:.1f}s" if got.takeover_seconds is not None else "never"
    problems = [*got.violations, *(f"409: {c}" for c in got.conflicts)]
    problems += [f"written while standing by: {w}" for w in got.writes_while_standing_by]
    problems += ["the rejoined replica took the lead back"] * got.rejoined_took_the_lead
    problems += ["the new leader exited"] * got.standby_exited
    return Outcome(
        "kill-9 leader (HA)",
        f"plugin {kill_at} of {args.plugins}, takeover {took}",
        got.converge_seconds,
        tuple(problems),
    )


def prepare_ground(api: client.ApiClient) -> None:
    """The CRD and the operator's namespace, as the e2e fixtures make them (a fresh cluster)."""
    ext = client.ApiextensionsV1Api(api)
    crd = yaml.safe_load(CRD_FILE.read_text())
    with contextlib.suppress(client.ApiException):
        ext.create_custom_resource_definition(crd)
    with contextlib.suppress(client.ApiException):
        client.CoreV1Api(api).create_namespace({"metadata": {"name": OPERATOR_NAMESPACE}})
    name = crd["metadata"]["name"]
    wait_for(
        "CRD Established",
        lambda: any(
            c.type == "Established" and c.status == "True"
            for c in ext.read_custom_resource_definition(name).status.conditions or []
        ),
        timeout=30,
    )


def cleanup(api: client.ApiClient, op: Operator, namespace: str) -> None:
    custom = client.CustomObjectsApi(api)
    if op.process is not None and op.process.poll() is None:
        delete_plugins(custom, namespace, timeout=120)
    op.stop()
    strip_finalizers(custom, namespace)
    with contextlib.suppress(client.ApiException):
        client.CoreV1Api(api).delete_namespace(namespace)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--plugins", type=int, default=300)
    parser.add_argument("--disable-plugins", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--kill-at", type=float, default=0.5)
    parser.add_argument("--down", type=float, default=2.0, help="seconds a component is down")
    parser.add_argument("--lifetime", type=int, default=30, help="failover: peering keep-alive s")
    parser.add_argument("--only", default="burst,disable,remint,apiserver,etcd,failover")
    parser.add_argument("--kubeconfig", type=Path, default=REPO / ".cluster" / "kubeconfig")
    args = parser.parse_args()
    api = config.new_client_from_config(str(args.kubeconfig))
    faults: dict[str, Callable[[], Outcome]] = {
        "burst": lambda: mid_burst(api, args.kubeconfig, args.plugins, args.kill_at, args.timeout),
        "disable": lambda: mid_disable(api, args.kubeconfig, args.disable_plugins, args.timeout),
        "remint": lambda: mid_remint(api, args.kubeconfig, args.disable_plugins, args.timeout),
        "apiserver": lambda: control_plane_restart(api, args.kubeconfig, "kube-apiserver", args),
        "etcd": lambda: control_plane_restart(api, args.kubeconfig, "etcd", args),
        "failover": lambda: failover_row(api, args.kubeconfig, args),
    }
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    if unknown := sorted(set(names) - set(faults)):
        parser.error(f"unknown fault(s) {unknown}; choose from {', '.join(faults)}")
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    prepare_ground(api)
    rows = [faults[name]() for name in names]
    print(f"{'fault':<18} {'when':<34} {'converge':>10} {'violations':>10}")
    for row in rows:
        took = f"{row.converge_seconds:.1f}s" if row.converge_seconds is not None else "no"
        print(f"{row.fault:<18} {row.when:<34} {took:>10} {len(row.violations):>10}")
        for problem in row.violations[:5]:
            print(f"    {problem}")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
