"""Start-up checks: one clear line instead of a retry loop; no ``*.svc`` look-ups from outside."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.fake_cluster import FakeCluster

from vivified.settings import OperatorSettings
from vivified.shell.startup import StartupError, check_namespace, in_cluster, probe_settings


async def test_a_missing_operator_namespace_fails_fast_saying_what_to_do() -> None:
    with pytest.raises(StartupError) as caught:
        await check_namespace(FakeCluster(), OperatorSettings())
    message = str(caught.value)
    assert "kubectl create namespace vivified-system" in message
    assert "VIVIFIED_OPERATOR_NAMESPACE" in message
    assert "\n" not in message


async def test_an_existing_operator_namespace_passes() -> None:
    cluster = FakeCluster()
    cluster.put("Namespace", {"metadata": {"name": "vivified-system"}})
    await check_namespace(cluster, OperatorSettings())


@pytest.mark.parametrize(
    ("reason", "mode", "environ", "inside", "expected"),
    [
        ("in a pod, direct uses cluster DNS", "direct", {}, True, "direct"),
        (
            "outside, the default becomes the API server proxy",
            "direct",
            {},
            False,
            "apiserver-proxy",
        ),
        ("outside, an explicit proxy mode stays", "apiserver-proxy", {}, False, "apiserver-proxy"),
        ("outside, overrides stay", "overrides", {}, False, "overrides"),
    ],
)
def test_probe_mode_out_of_cluster(
    reason: str, mode: str, environ: dict[str, str], inside: bool, expected: str
) -> None:
    settings = OperatorSettings(probe_mode=mode)
    assert probe_settings(settings, environ, inside=inside).probe_mode == expected, reason


def test_an_explicit_direct_mode_out_of_cluster_is_refused_clearly() -> None:
    settings = OperatorSettings(probe_mode="direct")
    with pytest.raises(StartupError, match="VIVIFIED_PROBE_MODE=apiserver-proxy"):
        probe_settings(settings, {"VIVIFIED_PROBE_MODE": "direct"}, inside=False)


def test_in_cluster_needs_the_service_host_and_a_mounted_token(tmp_path: Path) -> None:
    token = tmp_path / "token"
    assert not in_cluster({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, token)
    token.write_text("t")
    assert in_cluster({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, token)
    assert not in_cluster({}, token)
