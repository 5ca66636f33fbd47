"""The proxy lane as the core mounts it: ``core_lanes()`` → ``build_app`` → its own listener.

Everything on loopback: the core's app (aiohttp test server), the proxy listener the lane
starts on app start-up, a test HTTPS upstream with a throw-away CA, names from the TEST-ONLY
static map. What the lane shares with the core is checked through the core's own objects:
tokens through ``ctx.authenticator`` (a revocation in ``ctx.trust`` applies at once), plugins
through ``ctx.directory``, every decision in ``ctx.auditor``, counters on ``/metrics``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aiohttp.test_utils import TestClient, TestServer
from tests.proxy_ground import LoopbackCA, Upstream, raw_request
from tests.unit.core_fakes import World
from tests.unit.egress_fixtures import egress_manifest, egress_record

from vivified.dataplane.app import build_app
from vivified.dataplane.lanes import core_lanes, proxy_setup
from vivified.dataplane.proxy.lane import PROXY
from vivified.dataplane.settings import CoreSettings
from vivified_sdk import TokenFile, async_egress_client, contract

pytestmark = pytest.mark.timeout(60)

PARTNER = "api.partner.test"
OTHER = "other.partner.test"


@dataclass
class Core:
    world: World
    client: TestClient
    https: Upstream
    ca: LoopbackCA

    @property
    def proxy_port(self) -> int:
        return self.client.app[PROXY].port

    def token(self, plugin_id: str, traits: tuple[str, ...] = ("external_service",)) -> str:
        return self.world.token(egress_manifest(plugin_id, traits=traits)).token

    async def connect(self, target: str, token: str | None) -> tuple[int, dict[str, str]]:
        auth = f"Proxy-Authorization: Bearer {token}\r\n" if token else ""
        request = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{auth}\r\n".encode()
        status, headers, _, _, writer = await raw_request(self.proxy_port, request)
        writer.close()
        return status, headers


def _env(port: int) -> dict[str, str]:
    return {
        "VIVIFIED_UI": "off",
        "VIVIFIED_PROXY_HOST": "127.0.0.1",
        "VIVIFIED_PROXY_PORT": "0",
        "VIVIFIED_PROXY_ALLOWED_PORTS": str(port),
        "VIVIFIED_PROXY_TEST_STATIC_HOSTS": json.dumps(
            {PARTNER: ["127.0.0.1"], OTHER: ["127.0.0.1"]}
        ),
        "VIVIFIED_PROXY_TEST_ALLOW_NETWORKS": "127.0.0.0/8",
    }


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[Core]:
    ca = LoopbackCA.create([PARTNER, OTHER])
    https = Upstream("http", tls=ca.server_context(tmp_path))
    port = await https.start()
    world = World(settings=CoreSettings(host="127.0.0.1"))
    world.directory.put(egress_record("billing"))
    world.directory.put(egress_record("notes", traits=("audit_required",), domains=()))
    app = build_app(world.ctx, core_lanes(_env(port)))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield Core(world, client, https, ca)
    await https.close()


def test_core_lanes_has_the_proxy_unless_turned_off() -> None:
    assert proxy_setup({"VIVIFIED_PROXY": "off"}) is None
    assert proxy_setup({}) is not None
    with_proxy = core_lanes({"VIVIFIED_UI": "off"})
    without = core_lanes({"VIVIFIED_UI": "off", "VIVIFIED_PROXY": "off"})
    assert len(with_proxy) == len(without) + 1  # the event lane is always mounted (or refuses)


async def test_the_core_runs_the_proxy_and_shares_its_context(core: Core) -> None:
    token = core.token("billing")
    target = f"{PARTNER}:{core.https.port}"
    assert (await core.connect(target, token))[0] == 200
    status, headers = await core.connect(f"{OTHER}:{core.https.port}", token)
    assert (status, headers[contract.PROXY_REASON_HEADER.lower()]) == (403, "domain_not_allowed")
    status, headers = await core.connect(target, core.token("notes", traits=("audit_required",)))
    assert (status, headers[contract.PROXY_REASON_HEADER.lower()]) == (403, "trait_missing")
    status, headers = await core.connect(target, None)
    assert status == 407
    assert headers["proxy-authenticate"] == 'Basic realm="vivified"'
    # Every decision went to the core's auditor, with its reason.
    decisions = [e for e in core.world.auditor.entries if e.action == "egress.decision"]
    assert [(e.agent, e.outcome, e.reason) for e in decisions] == [
        ("billing", "allowed", ""),
        ("billing", "refused", "domain_not_allowed"),
        ("notes", "refused", "trait_missing"),
    ]
    await asyncio.sleep(0.05)  # the allowed tunnel's close record
    assert any(e.action == "egress.close" for e in core.world.auditor.entries)
    metrics = await (await core.client.get("/metrics")).text()
    assert 'vivified_core_decisions_total{lane="proxy",outcome="allowed"' in metrics
    assert 'vivified_proxy_decisions_total{plugin="billing",outcome="refused"' in metrics
    assert "vivified_proxy_connections_open" in metrics


async def test_a_revocation_in_the_cores_trust_applies_to_the_next_tunnel(core: Core) -> None:
    minted = core.world.token(egress_manifest("billing"))
    target = f"{PARTNER}:{core.https.port}"
    assert (await core.connect(target, minted.token))[0] == 200
    core.world.revoke(minted)
    status, headers = await core.connect(target, minted.token)
    assert (status, headers[contract.PROXY_REASON_HEADER.lower()]) == (407, "token_revoked")


async def test_the_directory_is_live_for_the_proxy(core: Core) -> None:
    token = core.token("billing")
    target = f"{OTHER}:{core.https.port}"
    assert (await core.connect(target, token))[0] == 403
    widened = egress_record("billing", domains=(PARTNER, OTHER), generation=2)
    core.world.directory.put(widened)
    assert (await core.connect(target, token))[0] == 200
    allowlists = await (
        await core.client.get(
            contract.CORE_PROXY_ALLOWLISTS_PATH, headers=core.world.operator_bearer()
        )
    ).json()
    assert allowlists["mode"] == "enforce"
    assert allowlists["plugins"]["billing"]["generation"] == 2
    disabled = dataclasses.replace(widened, enabled=False, phase="Disabled")
    core.world.directory.put(disabled)
    status, headers = await core.connect(target, token)
    assert (status, headers[contract.PROXY_REASON_HEADER.lower()]) == (403, "plugin_disabled")


async def test_the_sdk_client_through_the_core(core: Core, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(core.token("billing"))
    async with async_egress_client(
        proxy_url=f"http://127.0.0.1:{core.proxy_port}",
        token_file=TokenFile(token_file),
        verify=core.ca.client_context(),
    ) as http:
        response = await http.get(f"https://{PARTNER}:{core.https.port}/")
        assert response.text == "hello from upstream"
        with pytest.raises(httpx.ProxyError, match="403"):
            await http.get(f"https://{OTHER}:{core.https.port}/")


async def test_cleanup_closes_the_listener(tmp_path: Path) -> None:
    world = World(settings=CoreSettings(host="127.0.0.1"))
    app = build_app(world.ctx, core_lanes(_env(443)))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        port = client.app[PROXY].port
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_report_mode_lets_the_allowlist_pass_and_says_so(tmp_path: Path) -> None:
    ca = LoopbackCA.create([PARTNER, OTHER])
    https = Upstream("http", tls=ca.server_context(tmp_path))
    port = await https.start()
    world = World(settings=CoreSettings(host="127.0.0.1"))
    world.directory.put(egress_record("billing"))
    app = build_app(world.ctx, core_lanes({**_env(port), "VIVIFIED_PROXY_MODE": "report"}))
    try:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            core = Core(world, client, https, ca)
            status, headers = await core.connect(f"{OTHER}:{port}", core.token("billing"))
            assert status == 200
            assert "would_deny=domain_not_allowed" in headers[contract.PROXY_REASON_HEADER.lower()]
            document = await (
                await client.get(
                    contract.CORE_PROXY_ALLOWLISTS_PATH, headers=world.operator_bearer()
                )
            ).json()
            assert document["mode"] == "report"
            decision = next(e for e in world.auditor.entries if e.action == "egress.decision")
            assert decision.details["would_deny"] == "domain_not_allowed"
    finally:
        await https.close()
