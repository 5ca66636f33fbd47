"""Core writes a heartbeat Lease; the operator reads each new renewal as one heartbeat."""

from __future__ import annotations

from datetime import timedelta

from tests.unit.core_fakes import NOW, manifest, record

from vivified.dataplane.heartbeats import LeaseHeartbeats, render_heartbeat_lease
from vivified.dataplane.settings import CoreSettings
from vivified.health import Health, Heartbeat
from vivified.health.lease import heartbeat_from_lease
from vivified.shell.leases import LeaseWatcher

A = record(manifest("a"))
SETTINGS = CoreSettings(heartbeat_lease_seconds=90)


def test_round_trip_core_lease_to_operator_heartbeat() -> None:
    beat = Heartbeat(health=Health.DEGRADED, message="slow disk", metrics={"queue": 3})
    lease = render_heartbeat_lease(A, beat, NOW, SETTINGS)
    assert lease["metadata"]["namespace"] == "team-a"
    found = heartbeat_from_lease(lease, NOW + timedelta(seconds=1))
    assert found is not None
    namespace, plugin_id, _, parsed = found
    assert (namespace, plugin_id, parsed.health, parsed.message) == (
        "team-a",
        "a",
        Health.DEGRADED,
        "slow disk",
    )


def test_stale_or_foreign_leases_prove_nothing() -> None:
    lease = render_heartbeat_lease(A, Heartbeat(), NOW, SETTINGS)
    assert heartbeat_from_lease(lease, NOW + timedelta(seconds=91)) is None
    lease["spec"]["holderIdentity"] = "someone-else"
    assert heartbeat_from_lease(lease, NOW) is None


class Sink:
    def __init__(self) -> None:
        self.beats: list[tuple[tuple[str, str], Heartbeat]] = []

    def record_heartbeat(self, key: tuple[str, str], beat: Heartbeat) -> Health | None:
        self.beats.append((key, beat))
        return beat.health


def test_each_renewal_counts_once() -> None:
    sink = Sink()
    watcher = LeaseWatcher(kube=None, sink=sink, namespaces=[None], clock=lambda: NOW)  # type: ignore[arg-type]
    lease = render_heartbeat_lease(A, Heartbeat(), NOW, SETTINGS)
    watcher.observe(lease)
    watcher.observe(lease)  # relist: same renewTime
    assert len(sink.beats) == 1
    watcher.observe(render_heartbeat_lease(A, Heartbeat(), NOW + timedelta(seconds=5), SETTINGS))
    assert [key for key, _ in sink.beats] == [("team-a", "a"), ("team-a", "a")]


class RecordingKube:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def request(self, method: str, path: str, **kwargs: object) -> dict[str, object]:
        self.calls.append((method, path))
        return {}


async def test_core_throttles_unchanged_beats() -> None:
    kube = RecordingKube()
    sink = LeaseHeartbeats(kube, SETTINGS)
    await sink.record(A, Heartbeat(), NOW)
    await sink.record(A, Heartbeat(), NOW + timedelta(seconds=10))  # same body, too soon
    await sink.record(A, Heartbeat(health=Health.DEGRADED), NOW + timedelta(seconds=11))
    await sink.record(A, Heartbeat(health=Health.DEGRADED), NOW + timedelta(seconds=45))
    assert len(kube.calls) == 3
    assert kube.calls[0] == (
        "PATCH",
        "/apis/coordination.k8s.io/v1/namespaces/team-a/leases/a-heartbeat",
    )
