"""The chart's event-lane values: one NATS server, or an external cluster; installation types."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.unit.test_chart import RenderError, only, render

from vivified.dataplane.events.settings import EventLaneSettings
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


def _core(helm: Path, values: dict[str, Any] | None = None) -> dict[str, Any]:
    """The core Deployment's pod spec."""
    deployment = only(render(helm, values, core=True), "Deployment", "vivified-core")
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def test_the_core_reads_the_event_lane_settings(helm: Path) -> None:
    """The core mounts the lane when VIVIFIED_NATS_URL is set: from the events ConfigMap."""
    container = _core(helm, {"events": {"enabled": True}})["containers"][0]
    assert container["envFrom"] == [{"configMapRef": {"name": "rel-vivified-events"}}]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["event-types"] == "/etc/vivified/events"  # VIVIFIED_EVENT_TYPES_FILE's dir
    assert "nats-creds" not in mounts
    off = _core(helm)["containers"][0]
    assert "envFrom" not in off


def test_external_cluster_with_credentials_and_tls(helm: Path) -> None:
    nats = {
        "mode": "external",
        "url": "tls://nats.nats.svc:4222",
        "credentialsSecret": "nats-creds",
        "tlsCaSecret": "nats-ca",
    }
    values = {"events": {"enabled": True, "replicas": 3, "nats": nats}}
    docs = render(helm, values)
    config = only(docs, "ConfigMap", "rel-vivified-events")["data"]
    assert config["VIVIFIED_NATS_URL"] == "tls://nats.nats.svc:4222"
    assert config["VIVIFIED_EVENTS_REPLICAS"] == "3"
    assert "VIVIFIED_NATS_CREDS" in config
    assert not [d for d in docs if d["kind"] == "StatefulSet"]
    container = _core(helm, values)["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert config["VIVIFIED_NATS_CREDS"].startswith(mounts["nats-creds"] + "/")
    assert config["VIVIFIED_NATS_TLS_CA"].startswith(mounts["nats-tls"] + "/")


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


#: Chart value (under events.) -> the core's setting it feeds.
TUNABLES = {
    "maxAttempts": "max_attempts",
    "delivery.timeoutSeconds": "delivery_timeout_seconds",
    "delivery.backoffInitialSeconds": "backoff_initial_seconds",
    "delivery.backoffMaxSeconds": "backoff_max_seconds",
    "delivery.maxInFlight": "max_in_flight",
    "delivery.prefetch": "prefetch",
    "stream.maxAgeSeconds": "max_age_seconds",
    "stream.duplicateWindowSeconds": "duplicate_window_seconds",
    "stream.maxEventBytes": "max_event_bytes",
}


def _events_config(helm: Path, values: dict[str, Any] | None = None) -> dict[str, str]:
    events = {"enabled": True, **(values or {})}
    data: dict[str, str] = only(
        render(helm, {"events": events}), "ConfigMap", "rel-vivified-events"
    )["data"]
    return data


def test_the_chart_defaults_are_the_cores_defaults(helm: Path) -> None:
    """Left alone, the chart changes nothing: every tunable it renders equals the default the
    core would use without it."""
    rendered = EventLaneSettings.from_env(_events_config(helm))
    defaults = EventLaneSettings()
    for value, setting in TUNABLES.items():
        assert getattr(rendered, setting) == getattr(defaults, setting), value


def test_the_tunables_reach_the_core(helm: Path) -> None:
    values = {
        "maxAttempts": 9,
        "delivery": {
            "timeoutSeconds": 2.5,
            "backoffInitialSeconds": 0.1,
            "backoffMaxSeconds": 5,
            "maxInFlight": 16,
            "prefetch": 256,
        },
        "stream": {"maxAgeSeconds": 86400, "duplicateWindowSeconds": 30, "maxEventBytes": 262144},
    }
    s = EventLaneSettings.from_env(_events_config(helm, values))
    assert (s.max_attempts, s.delivery_timeout_seconds, s.backoff_initial_seconds) == (9, 2.5, 0.1)
    assert (s.backoff_max_seconds, s.max_in_flight, s.prefetch) == (5, 16, 256)
    assert (s.max_age_seconds, s.duplicate_window_seconds, s.max_event_bytes) == (86400, 30, 262144)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"delivery": {"timeoutSeconds": 60}}, "timeoutSeconds"),  # past the ack wait
        ({"delivery": {"maxInFlight": 0}}, "maxInFlight"),
        ({"delivery": {"prefetch": 1.5}}, "prefetch"),
        ({"delivery": {"retries": 3}}, "retries"),
        ({"stream": {"maxEventBytes": 2 * 1024 * 1024}}, "maxEventBytes"),
        ({"stream": {"maxAgeSeconds": 1}}, "maxAgeSeconds"),
    ],
)
def test_tunables_out_of_bounds_are_refused(
    helm: Path, values: dict[str, object], field: str
) -> None:
    with pytest.raises(RenderError, match=field):
        render(helm, {"events": {"enabled": True, **values}})
