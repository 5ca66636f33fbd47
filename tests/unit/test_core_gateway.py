"""The operator lane end to end in one process: core app + a real upstream target server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from tests.audit_support import SwitchableSink
from tests.unit.core_fakes import NOW, World, manifest

from vivified import tokens
from vivified.audit.hook import AuditEntry, AuditUnavailable
from vivified.dataplane import forward
from vivified.dataplane.app import build_app
from vivified.dataplane.audit.auditor import ChainAuditor
from vivified.dataplane.settings import CoreSettings
from vivified.manifest import PluginManifest

B_ENDPOINTS = {
    "health": "/health",
    "user_info": "/api/users/{id}",
    "slow": "/slow",
    "big": "/big",
    "echo": "/echo",
}
A = manifest("a", dependencies=["b"], traits=["handles_pii"])
B = manifest("b", endpoints=B_ENDPOINTS, data_classification=["pii"])
C = manifest("c", dependencies=[])
A_NO_PII = manifest("d", dependencies=["b"])


@dataclass
class Target:
    """Plugin B: records what reaches it."""

    seen: list[web.Request] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()

        async def any_path(request: web.Request) -> web.StreamResponse:
            self.seen.append(request)
            self.headers.append(dict(request.headers))
            if request.path == "/slow":
                await asyncio.sleep(2)
            if request.path == "/big":
                return web.Response(body=b"x" * 5000)
            body = await request.read()
            return web.json_response(
                {"path": request.raw_path, "method": request.method, "body": body.decode()},
                headers={"Connection": "keep-alive, X-Secret", "X-Secret": "hop", "X-Kept": "1"},
            )

        app.router.add_route("*", "/{tail:.*}", any_path)
        return app


@dataclass
class Lane:
    world: World
    target: Target
    client: TestClient[web.Request, web.Application]


class FailingAuditor:
    async def record(self, entry: AuditEntry) -> None:
        raise AuditUnavailable("down")


@pytest.fixture
async def lane() -> AsyncIterator[Lane]:
    target = Target()
    async with TestServer(target.app()) as upstream:
        settings = CoreSettings(
            address_map={"b": f"127.0.0.1:{upstream.port}"},
            upstream_timeout_seconds=0.5,
            max_response_bytes=4096,
            max_request_bytes=4096,
        )
        world = World(settings=settings, now=datetime.now(UTC))
        for m in (A, B, C, A_NO_PII):
            world.add(m)
        async with TestClient(TestServer(build_app(world.ctx))) as client:
            yield Lane(world, target, client)


async def test_allowed_call_reaches_target_with_a_call_token(lane: Lane) -> None:
    caller_token = lane.world.token(A).token
    response = await lane.client.get(
        "/v1/invoke/b/user_info/42?fields=name",
        headers={
            "Authorization": f"Bearer {caller_token}",
            "X-Vivified-Caller": "spoofed",
            "Connection": "X-Drop-Me",
            "X-Drop-Me": "1",
            "Cookie": "session=1",
        },
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["path"] == "/api/users/42?fields=name"
    seen = lane.target.headers[0]
    assert caller_token not in json.dumps(seen)
    assert seen["X-Vivified-Caller"] == "a"
    assert "X-Drop-Me" not in seen
    assert "Cookie" not in seen
    call = tokens.verify_call_token(
        seen["Authorization"].removeprefix("Bearer "),
        json.loads(lane.world.trust.published_jwks()),
        audience="b",
        issuer="vivified-core",
        now=datetime.now(UTC),
    )
    assert (call.caller, call.operation, call.actor) == ("a", "user_info", "vivified-core")
    assert "X-Secret" not in response.headers
    assert response.headers["X-Kept"] == "1"
    entries = lane.world.auditor.entries
    assert [(e.agent, e.outcome, e.entity["target"]) for e in entries] == [("a", "allowed", "b")]


async def test_call_token_is_not_valid_for_another_target(lane: Lane) -> None:
    await lane.client.get("/v1/invoke/b/health", headers=lane.world.bearer(A))
    token = lane.target.headers[0]["Authorization"].removeprefix("Bearer ")
    jwks = json.loads(lane.world.trust.published_jwks())
    with pytest.raises(tokens.TokenInvalid):
        tokens.verify_call_token(token, jwks, audience="c", issuer="vivified-core", now=NOW)
    # nor as a plugin token anywhere
    with pytest.raises(tokens.TokenInvalid):
        tokens.verify_plugin_token(
            token,
            jwks,
            audience="vivified-platform",
            issuer="vivified-operator",
            revoked_jtis=(),
            now=datetime.now(UTC),
        )


async def test_body_is_streamed_through(lane: Lane) -> None:
    response = await lane.client.post(
        "/v1/invoke/b/echo", data=b"hello", headers=lane.world.bearer(A)
    )
    assert (await response.json())["body"] == "hello"


@pytest.mark.parametrize(
    ("who", "path", "status", "reason"),
    [
        (C, "/v1/invoke/b/user_info/1", 403, "not_a_dependency"),
        (A, "/v1/invoke/b/nope", 404, "undeclared_operation"),
        (A_NO_PII, "/v1/invoke/b/user_info/1", 403, "missing_handles_pii"),
        (A, "/v1/invoke/b/user_info/a%2Fb", 400, "invalid_path_segment"),
        (A, "/v1/invoke/b/user_info/1/2", 400, "path_mismatch"),
        (A, "/v1/invoke/B/user_info/1", 400, "invalid_path"),
        (A, "/v1/invoke/b/user_info//evil.example", 400, "invalid_path_segment"),
    ],
)
async def test_refusals_never_reach_the_target(
    lane: Lane, who: object, path: str, status: int, reason: str
) -> None:
    response = await lane.client.get(path, headers=lane.world.bearer(who))  # type: ignore[arg-type]
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    assert (await response.json())["reason"] == reason
    assert lane.target.seen == []
    assert len(lane.world.auditor.entries) == 1
    assert lane.world.auditor.entries[0].reason == reason
    metrics = await (await lane.client.get("/metrics")).text()
    assert f'reason="{reason}"' in metrics


@pytest.mark.parametrize(
    ("raw_path", "reason"),
    [
        ("/v1/invoke/b/user_info/..", "path_traversal"),
        ("/v1/invoke/b/user_info/%2e%2e", "path_traversal"),
        ("/v1/invoke/b/user_info/%2E.", "path_traversal"),
        ("/v1/invoke/b/../b/user_info/1", "invalid_path"),
        ("/v1/invoke/b/user_info/../../admin", "path_traversal"),
        ("/v1/invoke/b/user_info/%2e%2e%2fadmin", "invalid_path_segment"),
        ("/v1/invoke/b/user_info/http:%2F%2Fevil", "invalid_path_segment"),
    ],
)
async def test_traversal_is_seen_raw_and_refused(lane: Lane, raw_path: str, reason: str) -> None:
    """Sent byte for byte (a normal client would normalise ``..`` away before sending)."""
    port = lane.client.port
    assert port is not None
    token = lane.world.token(A).token
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET {raw_path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        "Connection: close\r\n\r\n".encode()
    )
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert answer.split(b" ", 2)[1] == b"400", answer[:300]
    assert f'"reason":"{reason}"'.encode() in answer
    assert lane.target.seen == []


async def test_unhealthy_target_is_503(lane: Lane) -> None:
    lane.world.add(B, health="unhealthy")
    response = await lane.client.get("/v1/invoke/b/health", headers=lane.world.bearer(A))
    assert response.status == 503
    assert (await response.json())["reason"] == "target_unhealthy"
    assert lane.target.seen == []


async def test_unauthenticated_is_401_and_audited(lane: Lane) -> None:
    response = await lane.client.get("/v1/invoke/b/health")
    assert response.status == 401
    assert lane.world.auditor.entries[0].agent == "anonymous"
    assert lane.target.seen == []


async def test_timeout_is_504(lane: Lane) -> None:
    response = await lane.client.get("/v1/invoke/b/slow", headers=lane.world.bearer(A))
    assert response.status == 504
    assert (await response.json())["reason"] == "upstream_timeout"


async def test_size_limits(lane: Lane) -> None:
    big = await lane.client.get("/v1/invoke/b/big", headers=lane.world.bearer(A))
    assert big.status == 502
    assert (await big.json())["reason"] == "response_too_large"
    upload = await lane.client.post(
        "/v1/invoke/b/echo", data=b"x" * 5000, headers=lane.world.bearer(A)
    )
    assert upload.status == 413


async def test_unreachable_target_is_503() -> None:
    world = World(settings=CoreSettings(address_map={"b": "127.0.0.1:1"}), now=datetime.now(UTC))
    world.add(A)
    world.add(B)
    async with TestClient(TestServer(build_app(world.ctx))) as client:
        response = await client.get("/v1/invoke/b/health", headers=world.bearer(A))
        assert response.status == 503
        assert (await response.json())["reason"] == "target_unreachable"


async def test_audit_outage_fails_closed(lane: Lane) -> None:
    lane.world.ctx.auditor = FailingAuditor()
    response = await lane.client.get("/v1/invoke/b/health", headers=lane.world.bearer(A))
    assert response.status == 503
    assert (await response.json())["reason"] == "audit_unavailable"
    assert lane.target.seen == []


def _at(m: PluginManifest, level: str) -> PluginManifest:
    return m.model_copy(
        update={"compliance": m.compliance.model_copy(update={"audit_level": level})}
    )


PLAIN_CALLER = manifest("p", dependencies=["q"], traits=["stateless"])
PLAIN_TARGET = manifest("q", traits=["stateless"])


@pytest.mark.parametrize(
    ("reason", "caller", "target", "expected"),
    [
        ("both plain: basic, not required", PLAIN_CALLER, PLAIN_TARGET, ("basic", False)),
        (
            "a complete (PHI) target is not lowered by a basic caller",
            PLAIN_CALLER,
            _at(PLAIN_TARGET, "complete"),
            ("complete", False),
        ),
        (
            "a detailed caller keeps its level towards a basic target",
            _at(PLAIN_CALLER, "detailed"),
            PLAIN_TARGET,
            ("detailed", False),
        ),
        (
            "audit_required on the target makes the entry required",
            PLAIN_CALLER,
            manifest("q", traits=["audit_required"]),
            ("basic", True),
        ),
        (
            "audit_required on the caller makes the entry required",
            manifest("p", dependencies=["q"], traits=["audit_required"]),
            PLAIN_TARGET,
            ("basic", True),
        ),
    ],
)
async def test_a_call_is_audited_at_the_stricter_of_caller_and_target(
    lane: Lane,
    reason: str,
    caller: PluginManifest,
    target: PluginManifest,
    expected: tuple[str, bool],
) -> None:
    world = lane.world
    world.add(caller)
    world.add(target)
    await lane.client.get("/v1/invoke/q/health", headers=world.bearer(caller))
    entry = world.auditor.entries[-1]
    assert (entry.audit_level, entry.audit_required) == expected, reason


async def test_a_basic_call_passes_an_outage_a_required_one_does_not(
    lane: Lane, tmp_path: Path
) -> None:
    """The real chained trail through an outage: a ``basic`` entry is held (in order, counted)
    and the call goes on; an entry that must be on record first (the target is
    ``audit_required``) fails closed with 503 and never reaches the target."""
    world = lane.world
    world.add(PLAIN_CALLER)
    world.add(PLAIN_TARGET)
    path = tmp_path / "audit.jsonl"
    sink = SwitchableSink(path)
    auditor = ChainAuditor(sink, "core-test")
    await auditor.start()
    world.ctx.auditor = auditor
    routes = dict(world.settings.address_map)
    object.__setattr__(world.settings, "address_map", {**routes, "q": routes["b"]})
    plain = world.bearer(PLAIN_CALLER)
    try:
        assert (await lane.client.get("/v1/invoke/q/health", headers=plain)).status == 200
        sink.down = True
        seen = len(lane.target.seen)
        held = await lane.client.get("/v1/invoke/q/health", headers=plain)
        refused = await lane.client.get("/v1/invoke/b/health", headers=world.bearer(A))
        assert (refused.status, (await refused.json())["reason"]) == (503, "audit_unavailable")
        assert held.status == 200
        assert len(lane.target.seen) == seen + 1  # only the held call reached the server
        assert auditor.metrics.records_held_total >= 1
        assert auditor.metrics.refused_unavailable_total == 1
        sink.down = False
    finally:
        await auditor.close()  # writes what was held
    agents = [json.loads(line)["agent"]["id"] for line in path.read_text().splitlines()]
    assert agents == ["p", "p"]  # nothing lost; the refused call has no allowed record


@pytest.mark.parametrize(
    ("reason", "buffered_bytes"),
    [
        ("a small answer of known size is relayed in one write", forward.BUFFERED_BYTES),
        ("anything larger is streamed", 0),
    ],
)
async def test_answer_relayed_alike_buffered_or_streamed(
    lane: Lane, monkeypatch: pytest.MonkeyPatch, reason: str, buffered_bytes: int
) -> None:
    monkeypatch.setattr(forward, "BUFFERED_BYTES", buffered_bytes)
    response = await lane.client.get("/v1/invoke/b/user_info/7", headers=lane.world.bearer(A))
    assert response.status == 200, reason
    assert response.headers.getall("Content-Type") == ["application/json; charset=utf-8"], reason
    assert response.headers["X-Kept"] == "1", reason
    assert "X-Secret" not in response.headers, reason
    assert (await response.json())["path"] == "/api/users/7", reason
    head = await lane.client.head("/v1/invoke/b/user_info/7", headers=lane.world.bearer(A))
    assert head.status == 200, reason
    assert await head.read() == b"", reason
