"""The webhook's load shedding as kube-apiserver meets it (the local cluster calls a webhook by
URL on loopback): a shed review is retried by the API server after ``Retry-After`` and then
admitted; an overload that outlasts the webhook's timeout is retried until that timeout and
then refused as a timeout of the webhook, never admitted. The unit side (exact limit, no
timing) is tests/unit/test_webhook_shedding.py.

The server is the operator's ``SheddingWebhookServer`` with a limit of one; a gate parks
reviews of ConfigMaps named ``hold-*`` to occupy that slot, so nothing here is timed but the
API server's own timeout.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from tests.chaos import webhook_load as wl

from cluster_support import KubeCluster, self_signed_certificate, wait_until
from vivified.shell.webhook import SheddingWebhookServer

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(120)]


class Gate:
    """Admits every review; parks ``hold-*`` ConfigMaps until released."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.release = asyncio.Event()
        self.seen: list[str] = []

    async def __call__(self, request: dict[str, Any], **_: Any) -> dict[str, Any]:
        name = str(request["request"]["object"]["metadata"]["name"])
        self.seen.append(name)
        if name.startswith("hold-"):
            await self.release.wait()
        return {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": request["request"]["uid"], "allowed": True},
        }

    def open(self) -> None:
        self.loop.call_soon_threadsafe(self.release.set)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.release.clear)


class Served:
    """The webhook server on its own event loop thread."""

    def __init__(self, directory: Path) -> None:
        cert, key = self_signed_certificate(directory)
        self.ca_bundle = cert.read_bytes()
        self.server = SheddingWebhookServer(
            max_in_flight=1, addr="127.0.0.1", port=0, certfile=str(cert), pkeyfile=str(key)
        )
        self.loop = asyncio.new_event_loop()
        self.gate = Gate(self.loop)
        self.url = ""
        self._ready, self._stop = threading.Event(), asyncio.Event()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._run(),))
        self.thread.start()
        self._ready.wait(30)

    async def _run(self) -> None:
        async with wl.serving(self.server, self.gate) as url:
            self.url = url
            self._ready.set()
            await self._stop.wait()

    def stop(self) -> None:
        self.gate.open()
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(30)
        self.loop.close()


@pytest.fixture
def served(kube_cluster: KubeCluster, tmp_path: Path) -> Iterator[Served]:
    if not kube_cluster.local:
        pytest.skip("calls a webhook on the host's loopback (the local test cluster)")
    s = Served(tmp_path)
    yield s
    s.stop()


def create_in_background(
    core: client.CoreV1Api, namespace: str, name: str
) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            core.create_namespaced_config_map(
                namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name))
            )
        except BaseException as error:  # handed to the test
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def test_the_api_server_retries_a_shed_review_and_reports_a_lasting_overload(
    k8s_api: client.ApiClient, namespace: str, served: Served
) -> None:
    admission, core = client.AdmissionregistrationV1Api(k8s_api), client.CoreV1Api(k8s_api)
    name = f"shedding.{namespace}.test.vivified.dev"
    admission.create_validating_webhook_configuration(
        client.V1ValidatingWebhookConfiguration(
            metadata=client.V1ObjectMeta(name=name),
            webhooks=[
                client.V1ValidatingWebhook(
                    name=name,
                    client_config=client.AdmissionregistrationV1WebhookClientConfig(
                        url=served.url, ca_bundle=base64.b64encode(served.ca_bundle).decode()
                    ),
                    rules=[
                        client.V1RuleWithOperations(
                            api_groups=[""],
                            api_versions=["v1"],
                            operations=["CREATE"],
                            resources=["configmaps"],
                        )
                    ],
                    namespace_selector=client.V1LabelSelector(
                        match_labels={"kubernetes.io/metadata.name": namespace}
                    ),
                    failure_policy="Fail",
                    side_effects="None",
                    admission_review_versions=["v1"],
                    timeout_seconds=5,
                )
            ],
        )
    )
    try:
        probes = iter(range(1000))

        def webhook_called() -> bool:
            probe = f"probe-{next(probes)}"
            core.create_namespaced_config_map(
                namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=probe))
            )
            return probe in served.gate.seen

        wait_until(webhook_called, "the API server to call the webhook")

        # 1. A short overload: the slot is held, a review is shed, the API server retries it
        #    after Retry-After, the slot frees up, the retry is admitted.
        held, held_errors = create_in_background(core, namespace, "hold-1")
        wait_until(lambda: "hold-1" in served.gate.seen, "the first review to be parked")
        queued, queued_errors = create_in_background(core, namespace, "queued-1")
        wait_until(lambda: served.server.shed >= 1, "a review to be shed")
        served.gate.open()
        held.join(30)
        queued.join(30)
        assert held_errors == []
        assert queued_errors == []
        assert served.gate.seen.count("queued-1") == 1  # shed first, admitted on the retry
        assert core.read_namespaced_config_map("queued-1", namespace) is not None

        # 2. An overload that outlasts the webhook's timeout: the API server keeps retrying
        #    after each Retry-After until its timeout, so the client hears a timeout of this
        #    webhook (measured: "context deadline exceeded"; our 429 message is in the
        #    operator's log), and the object is not admitted.
        served.gate.close()
        shed_before = served.server.shed
        held, _ = create_in_background(core, namespace, "hold-2")
        wait_until(lambda: "hold-2" in served.gate.seen, "the second review to be parked")
        with pytest.raises(ApiException) as refused:
            core.create_namespaced_config_map(
                namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="refused"))
            )
        served.gate.open()
        held.join(30)
        print(f"\nrefusal after a lasting overload: {refused.value.status} {refused.value.body}")
        assert f'failed calling webhook \\"{name}\\"' in refused.value.body
        assert served.server.shed - shed_before >= 2  # the API server retried before giving up
        assert "refused" not in served.gate.seen  # never admitted unvalidated
    finally:
        admission.delete_validating_webhook_configuration(name)
