"""The chart's event-lane values: one NATS server, or an external cluster; installation types."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from tests.unit.test_chart import RenderError, only, render

from vivified.event_types import packaged_registry


def test_off_by_default(helm: Path) -> None:
    assert not [d for d in render(helm) if d["metadata"]["name"].endswith(("-events", "-nats"))]


def test_single_server_with_jetstream_and_installation_types(helm: Path) -> None:
    types = {"acme.InvoicePaid": {"classification": "internal", "schema": {"type": "object"}}}
    docs = render(helm, {"events": {"enabled": True, "types": types}})
    config = only(docs, "ConfigMap", "rel-vivified-events")["data"]
    assert config["VIVIFIED_NATS_URL"].startswith("nats://rel-vivified-nats.")
    extended = packaged_registry().extended(yaml.safe_load(config["event-types.yaml"]), "chart")
    assert extended.get("acme.InvoicePaid") is not None
    nats = only(docs, "StatefulSet", "rel-vivified-nats")
    assert "jetstream" in only(docs, "ConfigMap", "rel-vivified-nats")["data"]["nats.conf"]
    assert nats["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"


def test_external_cluster_with_credentials_and_tls(helm: Path) -> None:
    nats = {
        "mode": "external",
        "url": "tls://nats.nats.svc:4222",
        "credentialsSecret": "nats-creds",
        "tlsCaSecret": "nats-ca",
    }
    docs = render(helm, {"events": {"enabled": True, "replicas": 3, "nats": nats}})
    config = only(docs, "ConfigMap", "rel-vivified-events")["data"]
    assert config["VIVIFIED_NATS_URL"] == "tls://nats.nats.svc:4222"
    assert config["VIVIFIED_EVENTS_REPLICAS"] == "3"
    assert "VIVIFIED_NATS_CREDS" in config
    assert not [d for d in docs if d["kind"] == "StatefulSet"]


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"nats": {"mode": "external"}}, "events.nats.url"),
        ({"replicas": 3}, "JetStream cluster"),
        ({"types": {"X": {"classification": "secret", "schema": {}}}}, "classification"),
    ],
)
def test_bad_event_values_are_refused(helm: Path, values: dict[str, object], match: str) -> None:
    with pytest.raises(RenderError, match=match):
        render(helm, {"events": {"enabled": True, **values}})
