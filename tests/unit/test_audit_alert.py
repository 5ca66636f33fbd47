"""Outage alerts (log + Kubernetes Event seam), metrics text, settings from the environment."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from tests.proxy_ground import LoopbackCA
from tests.unit.core_fakes import World

from vivified.audit import NullAuditor
from vivified.dataplane.app import build_app
from vivified.dataplane.audit.alert import EventAlert, in_cluster_poster, kube_poster
from vivified.dataplane.audit.auditor import ChainAuditor
from vivified.dataplane.audit.file import FileSink
from vivified.dataplane.audit.jetstream import connect_options
from vivified.dataplane.audit.metrics import AuditMetrics
from vivified.dataplane.audit.setup import AuditSettings, AuditSettingsError, open_auditor


async def test_event_alert_posts_and_never_raises() -> None:
    posted: list[tuple[str, str, str]] = []

    async def post(kind: str, reason: str, message: str) -> None:
        posted.append((kind, reason, message))
        if reason == "AuditSinkRecovered":
            raise RuntimeError("API server away")

    alert = EventAlert(post)
    await alert.outage_started("no answer within 1.0s")
    await alert.outage_ended(12)
    assert posted == [
        ("Warning", "AuditSinkDown", "audit sink down: no answer within 1.0s"),
        ("Normal", "AuditSinkRecovered", "12 held records written"),
    ]


def test_in_cluster_poster_only_in_a_cluster(tmp_path: Path) -> None:
    assert in_cluster_poster({}, tmp_path) is None
    assert in_cluster_poster({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, tmp_path) is None
    (tmp_path / "token").write_text("t")
    (tmp_path / "namespace").write_text("vivified")
    assert in_cluster_poster({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, tmp_path) is not None


def test_metrics_text() -> None:
    metrics = AuditMetrics(records_written_total=3, sink_up=0)
    text = metrics.prometheus()
    assert "# TYPE vivified_audit_records_written_total counter" in text
    assert "vivified_audit_records_written_total 3" in text
    assert "# TYPE vivified_audit_sink_up gauge\nvivified_audit_sink_up 0" in text


def test_settings_from_env() -> None:
    settings = AuditSettings.from_env(
        {
            "VIVIFIED_AUDIT_SINK": "nats://nats:4222",
            "HOSTNAME": "vivified-core-5d8f.x2k4q",
            "VIVIFIED_AUDIT_REPLICAS": "3",
        }
    )
    assert settings.writer == "core-vivified-core-5d8f-x2k4q"
    assert settings.stream.url == "nats://nats:4222"
    assert settings.stream.replicas == 3
    assert settings.stream.max_age_days >= 6 * 365.25
    assert "user_credentials" not in connect_options(settings.stream)
    with pytest.raises(AuditSettingsError):
        AuditSettings.from_env({"VIVIFIED_AUDIT_REPLICAS": "2"})


def test_the_trail_authenticates_to_the_event_lanes_nats_like_the_lane(tmp_path: Path) -> None:
    """One NATS, one way in: the lane's credentials file and CA bundle serve the trail too."""
    ca = tmp_path / "ca.crt"
    ca.write_bytes(LoopbackCA.create(["nats"]).ca_pem)
    settings = AuditSettings.from_env(
        {
            "VIVIFIED_AUDIT_SINK": "tls://nats:4222",
            "VIVIFIED_NATS_CREDS": "/etc/vivified/nats/creds/nats.creds",
            "VIVIFIED_NATS_TLS_CA": str(ca),
        }
    )
    options = connect_options(settings.stream)
    assert options["user_credentials"] == "/etc/vivified/nats/creds/nats.creds"
    assert isinstance(options["tls"], ssl.SSLContext)
    with pytest.raises(AuditSettingsError):
        AuditSettings.from_env({"VIVIFIED_AUDIT_MAX_AGE_DAYS": "0"})


async def test_open_auditor_off_and_unknown() -> None:
    assert isinstance(await open_auditor(AuditSettings.from_env({})), NullAuditor)
    with pytest.raises(AuditSettingsError):
        await open_auditor(AuditSettings.from_env({"VIVIFIED_AUDIT_SINK": "s3://x"}))


async def test_web_setup_opens_and_closes_the_auditor(tmp_path: Path) -> None:
    from aiohttp import web  # noqa: PLC0415
    from aiohttp.test_utils import TestServer  # noqa: PLC0415

    from vivified.audit import AuditEntry  # noqa: PLC0415
    from vivified.dataplane.audit.web import AUDITOR, metrics_text, setup  # noqa: PLC0415

    app = web.Application()
    setup(app, {"VIVIFIED_AUDIT_SINK": f"file:{tmp_path / 'trail'}", "HOSTNAME": "c1"})
    async with TestServer(app):
        await app[AUDITOR].record(AuditEntry(action="heartbeat", agent="p", outcome="allowed"))
        assert "vivified_audit_records_written_total 1" in metrics_text(app)
    assert '"writer":"core-c1"' in (tmp_path / "trail").read_text()


async def test_kube_poster_posts_about_the_pod_through_the_given_client() -> None:
    posted: list[tuple[str, str, Any]] = []

    class Kube:
        async def request(self, method: str, path: str, *, body: object = None) -> object:
            posted.append((method, path, body))
            return {}

    post = kube_poster(Kube(), "vivified-system", "vivified-core-0")
    await EventAlert(post).outage_started("not connected to NATS")
    [(method, path, event)] = posted
    assert (method, path) == ("POST", "/api/v1/namespaces/vivified-system/events")
    assert event["reason"] == "AuditSinkDown"
    assert event["type"] == "Warning"
    assert event["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "vivified-core-0",
        "namespace": "vivified-system",
    }


async def test_the_core_s_metrics_include_the_trail_s(tmp_path: Path) -> None:
    """An outage must be visible where the core is scraped, not only in the auditor."""
    world = World()
    auditor = ChainAuditor(FileSink(tmp_path / "trail.jsonl"), "core-0")
    await auditor.start()
    auditor.metrics.outages_total = 2
    world.ctx.auditor = auditor
    try:
        async with TestClient(TestServer(build_app(world.ctx))) as client:
            text = await (await client.get("/metrics")).text()
    finally:
        await auditor.close()
    assert "vivified_core_requests_total" in text
    assert "vivified_audit_outages_total 2" in text
    assert "vivified_audit_sink_up 1" in text
