"""Benchmark: how long until N plugins are all Active, against the floor of creating their
children directly — both on the same API server, in one run.

    python bench/operator_scale.py [--plugins 300] [--kubeconfig .cluster/kubeconfig]

The floor applies exactly the child objects the operator would (same renderer) with a tight
concurrent client loop, then waits until every Deployment is Available. The operator run applies
N VivifiedPlugins at once and waits until every one reports phase Active. The ratio
operator/floor is the overhead of validation, tokens, status and the watch round trips. The
operator's peak RSS (VmHWM) is read from /proc. Not a test: it prints numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "operator"))

from vivified.render import PluginInstance, render_children  # noqa: E402
from vivified.resource import PluginSpec  # noqa: E402
from vivified.settings import OperatorSettings  # noqa: E402
from vivified.shell.kube import Kube, KubeError  # noqa: E402


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


async def wait_until(kube: Kube, namespace: str, kind: str, done: Any, n: int) -> float:
    start = time.monotonic()
    while True:
        items = (await kube.list(kind, namespace))["items"]
        if sum(1 for i in items if done(i)) >= n:
            return time.monotonic() - start
        await asyncio.sleep(0.25)


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


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def operator_run(kube: Kube, n: int, namespace: str, kubeconfig: str) -> tuple[float, float]:
    env = {**os.environ, "KUBECONFIG": kubeconfig, "VIVIFIED_OPERATOR_NAMESPACE": "vivified-system"}
    log = open(REPO / ".cluster" / "bench-operator.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "vivified", "operator", "--namespace", namespace],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    try:
        while b"caches synced" not in (REPO / ".cluster" / "bench-operator.log").read_bytes():
            if process.poll() is not None:
                raise RuntimeError("operator exited; see .cluster/bench-operator.log")
            await asyncio.sleep(0.2)
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
        return elapsed, peak_rss_mib(process.pid)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        log.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plugins", type=int, default=300)
    parser.add_argument("--kubeconfig", default=str(REPO / ".cluster" / "kubeconfig"))
    args = parser.parse_args()
    kube = Kube.from_environment(args.kubeconfig)
    run = uuid.uuid4().hex[:6]
    floor_ns, operator_ns = f"bench-floor-{run}", f"bench-operator-{run}"
    try:
        await make_namespace(kube, "vivified-system")
    except KubeError as error:
        if error.status != 409:
            raise
    for ns in (floor_ns, operator_ns):
        await make_namespace(kube, ns)
    try:
        floor_seconds = await floor(kube, args.plugins, floor_ns)
        operator_seconds, rss = await operator_run(kube, args.plugins, operator_ns, args.kubeconfig)
    finally:
        for ns in (floor_ns, operator_ns):
            await kube.delete("Namespace", None, ns)
        await kube.close()
    print(
        json.dumps(
            {
                "plugins": args.plugins,
                "floor_seconds": round(floor_seconds, 2),
                "operator_seconds": round(operator_seconds, 2),
                "ratio_operator_over_floor": round(operator_seconds / floor_seconds, 2),
                "operator_peak_rss_mib": round(rss, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
