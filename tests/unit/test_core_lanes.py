"""What the core process mounts besides its own routes (``dataplane/lanes.py``), and which
trail the Admin UI's detail page reads (the one the core writes)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from tests.unit.core_fakes import World

from vivified.audit.hook import NullAuditor
from vivified.dataplane import events
from vivified.dataplane.app import build_app
from vivified.dataplane.audit.auditor import ChainAuditor
from vivified.dataplane.audit.file import FileSink
from vivified.dataplane.audit.reader import FileTrailReader, trail_reader
from vivified.dataplane.lanes import UI_PREFIX, core_lanes, ui_setup

KEY = base64.b64encode(b"k" * 32).decode()


def kubeconfig(tmp_path: Path, server: str = "https://127.0.0.1:6443") -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "current-context": "c",
                "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
                "clusters": [{"name": "k", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "never-used-by-the-ui"}}],
            }
        )
    )
    return str(path)


@pytest.mark.parametrize(
    ("reason", "env", "with_kubeconfig"),
    [
        ("turned off by the operator of the platform", {"VIVIFIED_UI": "off"}, True),
        ("'false' is off too", {"VIVIFIED_UI": "False"}, True),
        ("out of cluster without a kubeconfig there is no API server to point it at", {}, False),
    ],
)
def test_no_ui_lane(
    reason: str, env: dict[str, str], with_kubeconfig: bool, tmp_path: Path
) -> None:
    config = kubeconfig(tmp_path) if with_kubeconfig else None
    assert ui_setup({"VIVIFIED_UI_SESSION_KEY": KEY, **env}, config) is None, reason
    no_proxy = {"VIVIFIED_PROXY": "off"}  # the proxy lane (issue 9) is another lane
    # Only the event lane's refusal (no VIVIFIED_NATS_URL here): no UI.
    lanes = core_lanes({"VIVIFIED_UI_SESSION_KEY": KEY, **no_proxy, **env}, config)
    assert lanes == [events.off], reason


async def test_the_ui_is_served_under_ui_with_its_security_headers(tmp_path: Path) -> None:
    lanes = core_lanes(
        {"VIVIFIED_UI_SESSION_KEY": KEY, "VIVIFIED_PROXY": "off"}, kubeconfig(tmp_path)
    )
    assert len(lanes) == 2  # the event lane (off: no VIVIFIED_NATS_URL) and the UI
    world = World()
    async with TestClient(TestServer(build_app(world.ctx, lanes))) as client:
        page = await client.get(f"{UI_PREFIX}/login")
        assert page.status == 200
        assert "Sign in" in await page.text()
        assert "default-src" in page.headers["Content-Security-Policy"]
        assert (await client.get("/readyz")).status == 200  # the core's own routes still there


def test_a_plain_http_api_server_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="https"):
        ui_setup({"VIVIFIED_UI_SESSION_KEY": KEY}, kubeconfig(tmp_path, "http://127.0.0.1:8080"))


async def test_the_ui_reads_the_trail_the_core_writes(tmp_path: Path) -> None:
    assert trail_reader(NullAuditor()) is None
    path = tmp_path / "audit.jsonl"
    auditor = ChainAuditor(FileSink(path), "core-test")
    try:
        reader = trail_reader(auditor)
        assert isinstance(reader, FileTrailReader)
        assert reader.path == path
    finally:
        await auditor.close()
