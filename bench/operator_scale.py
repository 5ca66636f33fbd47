"""Benchmark: how long until N plugins are all Active, against the floor of creating their
children directly — both on the same API server, in one run.

    python bench/operator_scale.py [--plugins 300] [--runs 1] [--kubeconfig .cluster/kubeconfig]

The floor applies exactly the child objects the operator would (same renderer) with a tight
concurrent client loop, then waits until every Deployment is Available. The operator run applies
N VivifiedPlugins at once and waits until every one reports phase Active. The ratio
operator/floor is the overhead of validation, tokens, status and the watch round trips. The
operator's peak RSS (VmHWM) is read from /proc. Not a test: it prints numbers.

Writes are counted from the test cluster's audit log (``logs/audit.log`` next to
``--kubeconfig``), so kopf's requests count too: per new plugin until all are Active, against
the floor of one write per child plus the token Secret and one status write; and per plugin
during one idle resync after that (``VIVIFIED_RESYNC_SECONDS``, short here), which should be
zero. Probes are off (``overrides`` mode): kwok's pods serve nothing, and health writes would
blur the count.
``--runs N`` repeats the operator run (fresh namespace, fresh operator) to show it converges
every time; the floor runs once.

The operator serves its admission webhooks on loopback and the bench registers them for the
run's namespace, as the chart does (validating ``failurePolicy: Fail``; mutating
``add-finalizer``, ``Ignore``): the finalizer then comes with the create and costs the
operator no write. ``--no-webhook`` measures the fallback, where kopf adds it (one write more).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "operator"))
sys.path.insert(0, str(REPO))

from tests.cluster_support import self_signed_certificate  # noqa: E402

from vivified.render import PluginInstance, render_children  # noqa: E402
from vivified.resource import PluginSpec  # noqa: E402
from vivified.settings import OperatorSettings  # noqa: E402
from vivified.shell.credentials import load as load_credentials  # noqa: E402
from vivified.shell.kube import (  # noqa: E402
    APPLY_CONTENT_TYPE,
    MERGE_PATCH_CONTENT_TYPE,
    Kube,
    KubeError,
)


def plugin(plugin_id: str) -> dict[str, Any]:
    return {
        "apiVersion": "vivified.dev/v1alpha1",
        "kind": "VivifiedPlugin",
        "metadata": {"name": plugin_id},
        "spec": {
            "image": "registry.example.com/bench/plugin:1.0.0",
            "manifest": {
                "id": plugin_id,
                "name": f"Bench {plugin_id}",
                "version": "1.0.0",
                "contracts": ["StoragePlugin"],
                "traits": ["audit_required"],
                "security": {"authentication_required": True, "data_classification": ["internal"]},
                "compliance": {"hipaa_controls": [], "audit_level": "basic"},
                "health_check": {"type": "http", "port": 8000, "path": "/health"},
                "resources": {"memory_limit": 128, "cpu_limit": 0.25},
            },
        },
    }


async def gather_limited(coros: list[Any], limit: int = 32) -> None:
    gate = asyncio.Semaphore(limit)

    async def run(coro: Any) -> None:
        async with gate:
            await coro

    await asyncio.gather(*(run(c) for c in coros))


async def make_namespace(kube: Kube, name: str) -> None:
    await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


async def count(kube: Kube, namespace: str, check: Any) -> int:
    return sum(1 for item in (await kube.list(*check[0], namespace))["items"] if check[1](item))


class NotConvergedError(Exception):
    """Fewer than all were done when the time ran out."""


async def wait_until(
    kube: Kube, namespace: str, kind: str, done: Any, n: int, *, timeout: float = 1200.0
) -> float:
    start = time.monotonic()
    while True:
        items = (await kube.list(kind, namespace))["items"]
        finished = sum(1 for i in items if done(i))
        if finished >= n:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise NotConvergedError(f"{finished}/{n} {kind} done after {timeout:.0f}s")
        await asyncio.sleep(1.0 if n > 300 else 0.25)


def deployment_available(item: dict[str, Any]) -> bool:
    status = item.get("status", {})
    return status.get("readyReplicas", 0) >= item["spec"].get("replicas", 1)


async def floor(kube: Kube, n: int, namespace: str) -> float:
    settings = OperatorSettings()
    objects: list[dict[str, Any]] = []
    for i in range(n):
        spec = PluginSpec.model_validate(plugin(f"p{i}")["spec"])
        instance = PluginInstance.preview(spec, namespace=namespace, with_token=True)
        objects.extend(render_children(instance, settings))
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": f"p{i}-token", "namespace": namespace},
                "data": {"token": "eA=="},
            }
        )
    start = time.monotonic()
    await gather_limited([kube.apply(o, field_manager="bench-floor") for o in objects])
    await wait_until(kube, namespace, "Deployment", deployment_available, n)
    return time.monotonic() - start


AGENTS = ("vivified-operator", "kopf")
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


def audit_log(state: Path) -> Path:
    """The test cluster's audit log; without it every write count would read as zero."""
    path = state / "logs" / "audit.log"
    if not path.exists():
        raise SystemExit(f"no audit log at {path}: is --kubeconfig the test cluster's?")
    return path


def audit_offset(state: Path) -> int:
    return audit_log(state).stat().st_size


def audited_writes(state: Path, offset: int, namespace: str) -> dict[str, int]:
    """The operator's and kopf's writes in ``namespace`` since ``offset``, by resource."""
    found: dict[str, int] = {}
    path = audit_log(state)
    if path.stat().st_size < offset:
        return {"audit-log-rotated": 1}
    with path.open("rb") as stream:
        stream.seek(offset)
        for line in stream:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            ref = event.get("objectRef", {})
            if (
                event.get("verb") in WRITE_VERBS
                and ref.get("namespace") == namespace
                and event.get("userAgent", "").startswith(AGENTS)
                and event.get("responseStatus", {}).get("code", 200) < 400
            ):
                resource = ref.get("resource", "") + (
                    "/" + ref["subresource"] if ref.get("subresource") else ""
                )
                found[resource] = found.get(resource, 0) + 1
    return found


def floor_writes_per_plugin(namespace: str) -> int:
    """One write per child object, the token Secret, and one status write."""
    spec = PluginSpec.model_validate(plugin("p0")["spec"])
    instance = PluginInstance.preview(spec, namespace=namespace, with_token=True)
    return len(render_children(instance, OperatorSettings())) + 2


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


WEBHOOK_CONFIGURATIONS = "/apis/admissionregistration.k8s.io/v1/"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def webhook_configurations(
    namespace: str, port: int, ca: bytes
) -> list[tuple[str, dict[str, Any]]]:
    """The chart's two webhooks (charts/vivified/templates/webhook.yaml), by loopback URL and
    limited to ``namespace``: (collection, object) pairs."""
    scope = {
        "matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": [namespace]}
        ]
    }
    rules = [
        {
            "apiGroups": ["vivified.dev"],
            "apiVersions": ["v1alpha1"],
            "resources": ["vivifiedplugins"],
            "scope": "Namespaced",
        }
    ]

    def hook(name: str, path: str, operations: list[str], policy: str) -> dict[str, Any]:
        return {
            "name": f"{name}.vivified.dev",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": policy,
            "timeoutSeconds": 5,
            "namespaceSelector": scope,
            "rules": [{**rules[0], "operations": operations}],
            "clientConfig": {
                "url": f"https://127.0.0.1:{port}{path}",
                "caBundle": base64.b64encode(ca).decode(),
            },
        }

    meta = {"name": f"vivified-bench-{namespace}"}
    return [
        (
            "validatingwebhookconfigurations",
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingWebhookConfiguration",
                "metadata": meta,
                "webhooks": [
                    hook("validate-plugin", "/validate-plugin", ["CREATE", "UPDATE"], "Fail")
                ],
            },
        ),
        (
            "mutatingwebhookconfigurations",
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "MutatingWebhookConfiguration",
                "metadata": meta,
                "webhooks": [hook("add-finalizer", "/add-finalizer", ["CREATE"], "Ignore")],
            },
        ),
    ]


async def strip_finalizers(kube: Kube, namespace: str) -> None:
    """Without the operator nobody removes its finalizer: let the namespace go."""
    items = (await kube.list("VivifiedPlugin", namespace))["items"]
    path = f"/apis/vivified.dev/v1alpha1/namespaces/{namespace}/vivifiedplugins/"
    await gather_limited(
        [
            kube.request(
                "PATCH",
                path + item["metadata"]["name"],
                body={"metadata": {"finalizers": None}},
                content_type=MERGE_PATCH_CONTENT_TYPE,
            )
            for item in items
            if item["metadata"].get("finalizers")
        ]
    )


async def operator_run(
    kube: Kube, n: int, namespace: str, kubeconfig: str, resync_seconds: int, *, webhook: bool
) -> dict[str, Any]:
    env = {
        **os.environ,
        "KUBECONFIG": kubeconfig,
        "VIVIFIED_OPERATOR_NAMESPACE": "vivified-system",
        "VIVIFIED_PROBE_MODE": "overrides",
        "VIVIFIED_RESYNC_SECONDS": str(resync_seconds),
    }
    state = Path(kubeconfig).resolve().parent
    configurations: list[tuple[str, dict[str, Any]]] = []
    if webhook:
        certs = state / "bench-webhook-certs"
        certs.mkdir(exist_ok=True)
        cert, _ = self_signed_certificate(certs)
        port = free_port()
        env |= {
            "VIVIFIED_WEBHOOK_PORT": str(port),
            "VIVIFIED_WEBHOOK_ADDR": "127.0.0.1",
            "VIVIFIED_WEBHOOK_CERT_DIR": str(certs),
        }
        configurations = webhook_configurations(namespace, port, cert.read_bytes())
    log_path = state / "bench-operator.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "vivified", "operator", "--namespace", namespace],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    try:
        while b"caches synced" not in log_path.read_bytes():
            if process.poll() is not None:
                raise RuntimeError(f"operator exited; see {log_path}")
            await asyncio.sleep(0.2)
        for collection, body in configurations:
            await kube.request("POST", WEBHOOK_CONFIGURATIONS + collection, body=body)
        if configurations:
            await asyncio.sleep(1.0)  # the API server's webhook informer picks them up
        offset = audit_offset(state)
        start = time.monotonic()
        await gather_limited(
            [
                kube.create(
                    {**plugin(f"p{i}"), "metadata": {"name": f"p{i}", "namespace": namespace}}
                )
                for i in range(n)
            ]
        )
        await wait_until(
            kube,
            namespace,
            "VivifiedPlugin",
            lambda item: item.get("status", {}).get("phase") == "Active",
            n,
        )
        elapsed = time.monotonic() - start
        await asyncio.sleep(2.0)  # let the last status writes land in the log
        converge_writes = audited_writes(state, offset, namespace)
        # One idle resync: wait for the next "resync" line, then for its reconciles to finish.
        idle_offset = audit_offset(state)
        seen = log_path.read_bytes().count(b"resync:")
        deadline = time.monotonic() + resync_seconds * 3 + 30
        while log_path.read_bytes().count(b"resync:") <= seen and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        await asyncio.sleep(max(5.0, n / 100))
        idle_writes = audited_writes(state, idle_offset, namespace)
        return {
            "seconds": elapsed,
            "rss": peak_rss_mib(process.pid),
            "converge_writes": converge_writes,
            "idle_writes": idle_writes,
        }
    finally:
        for collection, body in configurations:
            await kube.request(
                "DELETE", WEBHOOK_CONFIGURATIONS + collection + "/" + body["metadata"]["name"]
            )
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:  # a loaded machine: do not lose the numbers for it
            process.kill()
            process.wait()
        log.close()


def summary(result: dict[str, Any], n: int, floor_per_plugin: int) -> dict[str, Any]:
    writes = result["converge_writes"]
    events = writes.get("events", 0)
    objects = sum(v for k, v in writes.items() if k != "events")
    return {
        "operator_seconds": round(result["seconds"], 2),
        "operator_peak_rss_mib": round(result["rss"], 1),
        "writes_per_new_plugin": round(objects / n, 2),
        "writes_per_new_plugin_over_floor": round(objects / n / floor_per_plugin, 2),
        "events_per_new_plugin": round(events / n, 2),
        "writes_by_resource": writes,
        # Objects only: an Event about the convergence itself can land after the last plugin
        # turned Active (seen: 1 of 4,000 at 1,000 plugins on a loaded machine).
        "idle_resync_writes_per_plugin": round(
            sum(v for k, v in result["idle_writes"].items() if k != "events") / n, 3
        ),
        "idle_resync_events": result["idle_writes"].get("events", 0),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plugins", type=int, default=300)
    parser.add_argument("--runs", type=int, default=1, help="operator runs (the floor runs once)")
    parser.add_argument("--no-floor", action="store_true", help="skip the floor")
    parser.add_argument("--resync-seconds", type=int, default=30)
    parser.add_argument("--kubeconfig", default=str(REPO / ".cluster" / "kubeconfig"))
    parser.add_argument(
        "--no-webhook",
        action="store_true",
        help="no admission webhooks: kopf adds the finalizer (the fallback's write count)",
    )
    args = parser.parse_args()
    # Its own user agent: the audit-log count must not mistake the bench's creates for the
    # operator's writes.
    kube = Kube(load_credentials(args.kubeconfig), user_agent="vivified-bench")
    run = uuid.uuid4().hex[:6]
    crd = yaml.safe_load((REPO / "crds" / "vivified.dev_vivifiedplugins.yaml").read_text())
    await kube.request(
        "PATCH",
        f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}",
        params={"fieldManager": "bench", "force": "true"},
        body=crd,
        content_type=APPLY_CONTENT_TYPE,
    )
    await asyncio.sleep(2.0)  # until it is served
    try:
        await make_namespace(kube, "vivified-system")
    except KubeError as error:
        if error.status != 409:
            raise
    floor_seconds = None
    if not args.no_floor:
        floor_ns = f"bench-floor-{run}"
        await make_namespace(kube, floor_ns)
        try:
            floor_seconds = await floor(kube, args.plugins, floor_ns)
        finally:
            await kube.delete("Namespace", None, floor_ns)
    per_plugin = floor_writes_per_plugin("x")
    runs = []
    try:
        for i in range(args.runs):
            ns = f"bench-operator-{run}-{i}"
            await make_namespace(kube, ns)
            try:
                result = await operator_run(
                    kube,
                    args.plugins,
                    ns,
                    args.kubeconfig,
                    args.resync_seconds,
                    webhook=not args.no_webhook,
                )
            finally:
                await strip_finalizers(kube, ns)
                await kube.delete("Namespace", None, ns)
            runs.append(summary(result, args.plugins, per_plugin))
            print(json.dumps({"run": i + 1, **runs[-1]}), flush=True)
    finally:
        await kube.close()
    print(
        json.dumps(
            {
                "plugins": args.plugins,
                "runs_converged": len(runs),
                "floor_seconds": round(floor_seconds, 2) if floor_seconds else None,
                "floor_writes_per_plugin": per_plugin,
                "webhook": not args.no_webhook,
                "ratio_operator_over_floor": [
                    round(r["operator_seconds"] / floor_seconds, 2) for r in runs
                ]
                if floor_seconds
                else None,
                "runs": runs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
