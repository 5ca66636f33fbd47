"""The admission webhook as the API server sees it, without a cluster: the operator's own
server (``shell.webhook.SheddingWebhookServer``) over HTTPS on loopback, calling kopf's real
admission path (``serve_admission_request``) into our registered handler; and an open-loop
client that sends AdmissionReviews at a fixed rate.

Used by tests/unit/test_webhook_shedding.py and bench/webhook.py. As a program it is the
server process of the bench:

    python -m tests.chaos.webhook_load --cert-dir DIR [--max-in-flight 32]

prints ``URL <url>`` once it listens, serves until SIGTERM/SIGINT, then prints
``STATS {"served": n, "shed": m}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import functools
import json
import signal
import ssl
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import aiohttp
import kopf
import yaml
from kopf._cogs.structs import ephemera, references
from kopf._core.engines import admission, indexing
from kopf._core.reactor import inventory

from vivified.policy import PolicyConfig
from vivified.registry import PluginRegistry
from vivified.resource import GROUP, PLURAL, VERSION
from vivified.shell.webhook import WEBHOOK_PATH, SheddingWebhookServer, register_admission

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "manifests" / "examples" / "user-management.yaml"
INVALID = REPO / "manifests" / "examples" / "invalid" / "phi-without-controls.yaml"


@dataclass
class Runtime:
    """What the handler reads from the operator: an (empty) plugin index and no policy."""

    registry: PluginRegistry = field(default_factory=PluginRegistry)
    policy: PolicyConfig | None = None


def admission_fn(runtime: Runtime | None = None) -> Any:
    """kopf's ``WebhookFn`` exactly as ``kopf.run`` binds it, with our ``validate-plugin``
    handler registered: the whole path an AdmissionReview takes inside the operator."""
    registry = kopf.OperatorRegistry()
    register_admission(registry, runtime or Runtime())
    insights = references.Insights()
    insights.webhook_resources.add(
        references.Resource(GROUP, VERSION, PLURAL, kind="VivifiedPlugin", namespaced=True)
    )
    return functools.partial(
        admission.serve_admission_request,
        settings=kopf.OperatorSettings(),
        registry=registry,
        insights=insights,
        memories=inventory.ResourceMemories(),
        memobase=ephemera.AnyMemo(ephemera.Memo()),
        indices=indexing.OperatorIndexers().indices,
    )


def plugin(path: Path = EXAMPLE, namespace: str = "plugins") -> dict[str, Any]:
    body = dict(next(iter(yaml.safe_load_all(path.read_text()))))
    body["metadata"]["namespace"] = namespace
    return body


def review(obj: dict[str, Any], operation: str = "CREATE") -> dict[str, Any]:
    """An ``admission.k8s.io/v1`` AdmissionReview as kube-apiserver sends it."""
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": GROUP, "version": VERSION, "kind": "VivifiedPlugin"},
            "resource": {"group": GROUP, "version": VERSION, "resource": PLURAL},
            "requestKind": {"group": GROUP, "version": VERSION, "kind": "VivifiedPlugin"},
            "requestResource": {"group": GROUP, "version": VERSION, "resource": PLURAL},
            "name": obj["metadata"]["name"],
            "namespace": obj["metadata"]["namespace"],
            "operation": operation,
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters"]},
            "object": obj,
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def review_bodies(count: int = 64) -> list[bytes]:
    """Encoded reviews, each with its own uid and name; one in eight is invalid (denied)."""
    valid, invalid = plugin(), plugin(INVALID)
    out = []
    for i in range(count):
        obj = copy.deepcopy(invalid if i % 8 == 7 else valid)
        obj["metadata"]["name"] = obj["spec"]["manifest"]["id"]
        out.append(json.dumps(review(obj)).encode())
    return out


@contextlib.asynccontextmanager
async def serving(server: SheddingWebhookServer, fn: Any) -> AsyncIterator[str]:
    """Runs SERVER with the webhook function FN; yields the handler's URL."""
    configs = cast(AsyncGenerator[Any, None], server(fn))
    config = await configs.__anext__()
    try:
        yield f"{str(config['url']).rstrip('/')}{WEBHOOK_PATH}"
    finally:
        await configs.aclose()


def client_context(cafile: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cafile))


# --- the open-loop client -----------------------------------------------------------------------


@dataclass
class Sample:
    """One request: when it was due (seconds from start), its latency from that moment (so a
    slow server cannot hide queueing behind a late send), and what came back."""

    due: float
    latency: float
    outcome: str  # "allowed", "denied", "429", another status, "timeout" or an error name


async def open_loop(
    url: str,
    context: ssl.SSLContext,
    bodies: Sequence[bytes],
    *,
    rate: float,
    duration: float,
    timeout: float,
    connections: int,
) -> tuple[list[Sample], float]:
    """Sends ``rate`` requests per second for ``duration`` seconds, each at its due time
    whether or not earlier ones were answered (open loop); returns the samples and the
    largest lateness of a send (a late client, not a slow server, if that is large)."""
    connector = aiohttp.TCPConnector(ssl=context, limit=connections)
    limits = aiohttp.ClientTimeout(total=timeout)
    samples: list[Sample] = []
    late = 0.0
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, timeout=limits) as session:

        async def one(i: int, due: float, start: float) -> None:
            outcome = "?"
            try:
                async with session.post(url, data=bodies[i % len(bodies)], headers=headers) as r:
                    payload = await r.read()
                    if r.status == 200:
                        answer = json.loads(payload)["response"]
                        outcome = "allowed" if answer["allowed"] else "denied"
                    else:
                        outcome = str(r.status)
            except TimeoutError:
                outcome = "timeout"
            except (aiohttp.ClientError, OSError, ValueError, KeyError) as error:
                outcome = type(error).__name__
            samples.append(Sample(due, time.monotonic() - start - due, outcome))

        tasks = []
        start = time.monotonic()
        total = int(rate * duration)
        for i in range(total):
            due = i / rate
            wait = start + due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                late = max(late, -wait)
            tasks.append(asyncio.create_task(one(i, due, start)))
        await asyncio.gather(*tasks)
    return samples, late


# --- the server process of the bench ------------------------------------------------------------


async def _serve_forever(cert_dir: Path, max_in_flight: int) -> None:
    server = SheddingWebhookServer(
        max_in_flight=max_in_flight,
        addr="127.0.0.1",
        port=0,
        certfile=str(cert_dir / "tls.crt"),
        pkeyfile=str(cert_dir / "tls.key"),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with serving(server, admission_fn()) as url:
        print(f"URL {url}", flush=True)
        await stop.wait()
    print("STATS " + json.dumps({"served": server.served, "shed": server.shed}), flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert-dir", type=Path, required=True)
    parser.add_argument("--max-in-flight", type=int, default=32)
    args = parser.parse_args(argv)
    asyncio.run(_serve_forever(cast(Path, args.cert_dir), args.max_in_flight))


if __name__ == "__main__":
    main()
