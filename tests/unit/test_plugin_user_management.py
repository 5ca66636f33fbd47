"""The user-management example plugin: its API, its auth, its store, its manifest."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from vivified import tokens
from vivified.manifest import PluginManifest
from vivified.policy import validate_manifest
from vivified_sdk import JwksFile, RevocationFile, TokenVerifier

REPO = Path(__file__).resolve().parents[2]
PLUGIN_DIR = REPO / "plugins" / "user-management"
ISS, AUD = "vivified-operator", "vivified-platform"


@pytest.fixture(scope="module", autouse=True)
def _plugin_on_path() -> Iterator[None]:
    sys.path.insert(0, str(PLUGIN_DIR))
    try:
        yield
    finally:
        sys.path.remove(str(PLUGIN_DIR))


def _manifest(plugin_id: str = "user-management", traits: list[str] | None = None) -> Any:
    return PluginManifest.model_validate(
        {
            "id": plugin_id,
            "name": "Caller",
            "version": "1.0.0",
            "contracts": ["IdentityPlugin"],
            "traits": traits if traits is not None else ["handles_pii", "audit_required"],
            "security": {
                "authentication_required": True,
                "data_classification": ["pii", "internal"],
            },
            "compliance": {"audit_level": "detailed"},
        }
    )


@pytest.fixture(scope="module")
def ring() -> tokens.KeyRing:
    return tokens.KeyRing(active=tokens.generate_signing_key(datetime.now(UTC)))


@pytest.fixture
def env(tmp_path: Path, ring: tokens.KeyRing) -> dict[str, Path]:
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(tokens.jwks(ring)))
    revoked = tmp_path / "revoked.json"
    revoked.write_text(json.dumps({"revoked": {}, "version": 1}))
    return {"jwks": jwks_file, "revoked": revoked, "db": tmp_path / "users.db"}


def _client(env: dict[str, Path], **overrides: Any) -> TestClient:
    from user_management.app import Config, create_app  # noqa: PLC0415

    verifier = TokenVerifier(
        JwksFile(env["jwks"]),
        audience=AUD,
        issuer=ISS,
        revocations=RevocationFile(env["revoked"]),
    )
    config = Config(verifier=verifier, db_path=str(env["db"]), **overrides)
    return TestClient(create_app(config))


def mint(ring: tokens.KeyRing, *, manifest: Any = None, **kwargs: Any) -> tokens.MintedToken:
    options: dict[str, Any] = {
        "issuer": ISS,
        "audience": AUD,
        "ttl_seconds": 600,
        "now": datetime.now(UTC),
    }
    options.update(kwargs)
    return tokens.mint_plugin_token(ring, manifest or _manifest(), **options)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(plugin_id: str = "user-management") -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": ISS,
        "aud": AUD,
        "sub": f"plugin:{plugin_id}",
        "plugin_id": plugin_id,
        "type": "plugin",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "f" * 32,
        "traits": ["handles_pii", "audit_required"],
    }


# --------------------------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------------------------


def test_manifest_json_is_the_seed_manifest_plus_health_check() -> None:
    from user_management import MANIFEST  # noqa: PLC0415

    on_disk = json.loads((PLUGIN_DIR / "manifest.json").read_text())
    assert on_disk == MANIFEST
    assert on_disk["health_check"] == {"type": "http", "port": 8000, "path": "/health"}
    seed = {k: v for k, v in on_disk.items() if k != "health_check"}
    assert seed["endpoints"] == {"health": "/health", "user_info": "/api/users/{id}"}
    assert seed["traits"] == ["handles_pii", "audit_required"]
    assert validate_manifest(on_disk).valid


def test_example_resource_embeds_the_same_manifest() -> None:
    example = yaml.safe_load((REPO / "manifests" / "examples" / "user-management.yaml").read_text())
    assert example["spec"]["manifest"] == json.loads((PLUGIN_DIR / "manifest.json").read_text())


def test_requirements_are_pinned() -> None:
    lines = [
        line.strip()
        for line in (PLUGIN_DIR / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines
    assert all("==" in line for line in lines)


def test_image_installs_the_sdk_and_no_operator_code() -> None:
    text = (PLUGIN_DIR / "Dockerfile").read_text()
    copies = [line for line in text.splitlines() if line.startswith(("COPY", "ADD"))]
    assert not [line for line in copies if "operator/" in line]
    assert any("sdk/python/" in line for line in copies)
    requirements = (PLUGIN_DIR / "requirements.txt").read_text()
    assert "vivified-operator" not in requirements
    sources = "".join(p.read_text() for p in (PLUGIN_DIR / "user_management").glob("*.py"))
    assert "from vivified." not in sources
    assert "import vivified." not in sources


def test_dockerfile_is_multi_stage_non_root_without_caches() -> None:
    text = (PLUGIN_DIR / "Dockerfile").read_text()
    assert text.count("FROM ") >= 2
    assert "USER 65532:65532" in text
    assert "--no-cache-dir" in text
    assert "PIP_NO_CACHE_DIR=1" in text


# --------------------------------------------------------------------------------------------
# Health
# --------------------------------------------------------------------------------------------


def test_health_is_open_and_reports_metrics(env: dict[str, Path]) -> None:
    client = _client(env)
    reply = client.get("/health")
    assert reply.status_code == 200
    body = reply.json()
    assert body["status"] == "healthy"
    assert body["plugin"] == "user-management"
    assert body["version"] == "1.0.0"
    assert isinstance(body["uptime_seconds"], float)
    assert body["uptime_seconds"] >= 0
    assert isinstance(body["memory_usage"], int)
    assert body["memory_usage"] > 1_000_000  # an interpreter is at least a few MB


def test_health_is_503_when_the_store_is_unusable(env: dict[str, Path], tmp_path: Path) -> None:
    env = {**env, "db": tmp_path / "missing-dir" / "users.db"}
    reply = _client(env).get("/health")
    assert reply.status_code == 503
    assert reply.json()["status"] == "unhealthy"


def test_memory_usage_falls_back_to_getrusage(monkeypatch: pytest.MonkeyPatch) -> None:
    from user_management import app as module  # noqa: PLC0415

    real_open = open

    def no_proc(path: Any, *args: Any, **kwargs: Any) -> Any:
        if str(path) == "/proc/self/status":
            raise OSError("no /proc")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", no_proc)
    assert module.memory_usage() > 0


def test_no_unauthenticated_docs_or_schema(env: dict[str, Path]) -> None:
    client = _client(env)
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert client.get(path).status_code == 404


# --------------------------------------------------------------------------------------------
# Authentication: every way to get in without a valid token fails
# --------------------------------------------------------------------------------------------


def _hs256_with_public_key(ring: tokens.KeyRing) -> str:
    """The classic algorithm-confusion attack: HMAC keyed with the public key."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    public = ring.active.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": ring.active.kid}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(_claims()).encode())}"
    signature = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _alg_none(ring: tokens.KeyRing) -> str:
    header = {"alg": "none", "typ": "JWT", "kid": ring.active.kid}
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(_claims()).encode())}."


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "not-bearer",
        "empty-bearer",
        "garbage",
        "expired",
        "not-yet-valid",
        "wrong-audience",
        "wrong-issuer",
        "other-key",
        "alg-none",
        "hs256-public-key",
        "tampered",
        "huge",
    ],
)
def test_bad_tokens_get_401(env: dict[str, Path], ring: tokens.KeyRing, case: str) -> None:
    client = _client(env)
    now = datetime.now(UTC)
    headers: dict[str, str]
    if case == "missing":
        headers = {}
    elif case == "not-bearer":
        headers = {"Authorization": f"Basic {mint(ring).token}"}
    elif case == "empty-bearer":
        headers = {"Authorization": "Bearer "}
    elif case == "garbage":
        headers = bearer("not.a.jwt")
    elif case == "expired":
        headers = bearer(mint(ring, now=now - timedelta(hours=2), ttl_seconds=60).token)
    elif case == "not-yet-valid":
        headers = bearer(mint(ring, now=now + timedelta(hours=1)).token)
    elif case == "wrong-audience":
        headers = bearer(mint(ring, audience="someone-else").token)
    elif case == "wrong-issuer":
        headers = bearer(mint(ring, issuer="evil").token)
    elif case == "other-key":
        other = tokens.KeyRing(active=tokens.generate_signing_key(now))
        headers = bearer(mint(other).token)
    elif case == "alg-none":
        headers = bearer(_alg_none(ring))
    elif case == "hs256-public-key":
        headers = bearer(_hs256_with_public_key(ring))
    elif case == "tampered":
        head, body, sig = mint(ring).token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        claims["plugin_id"] = claims["sub"] = "plugin:admin"
        headers = bearer(f"{head}.{_b64(json.dumps(claims).encode())}.{sig}")
    else:
        headers = bearer("a" * 20_000)
    for method in ("GET", "PUT"):
        reply = client.request(method, "/api/users/alice", headers=headers, json={"a": 1})
        assert reply.status_code == 401, (case, method, reply.text)
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")
        assert "token" in reply.json()["error"]


def test_revoked_token_gets_401(env: dict[str, Path], ring: tokens.KeyRing) -> None:
    client = _client(env)
    minted = mint(ring)
    assert client.get("/api/users/alice", headers=bearer(minted.token)).status_code == 404
    listed = tokens.revoke(tokens.RevocationList(), minted.jti, minted.expires_at)
    env["revoked"].write_text(
        tokens.revocations_to_configmap_data(listed)[tokens.REVOCATIONS_CONFIGMAP_KEY]
    )
    reply = client.get("/api/users/alice", headers=bearer(minted.token))
    assert reply.status_code == 401


def test_unreadable_revocation_list_fails_closed(
    env: dict[str, Path], ring: tokens.KeyRing, tmp_path: Path
) -> None:
    env = {**env, "revoked": tmp_path / "does-not-exist.json"}
    reply = _client(env).get("/api/users/alice", headers=bearer(mint(ring).token))
    assert reply.status_code == 401


@pytest.fixture
def revocations_server() -> Iterator[tuple[str, list[str]]]:
    """The core's ``GET /v1/revocations`` on 127.0.0.1, serving ``revoked``."""
    revoked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            listed = tokens.RevocationList(
                {j: datetime.now(UTC) + timedelta(hours=1) for j in revoked}
            )
            body = tokens.revocations_to_configmap_data(listed)[tokens.REVOCATIONS_CONFIGMAP_KEY]
            self.send_response(200 if self.path == "/v1/revocations" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/revocations", revoked
    finally:
        server.shutdown()
        server.server_close()


def _client_from_env(env: dict[str, Path], **variables: str) -> TestClient:
    """The app configured the way its container is: ``Config.from_env``."""
    from user_management.app import Config, create_app  # noqa: PLC0415

    config = Config.from_env(
        {
            "VIVIFIED_JWKS_FILE": str(env["jwks"]),
            "USER_MANAGEMENT_DB": str(env["db"]),
            "PLUGIN_TOKEN_FILE": str(env["db"].parent / "token"),
            **variables,
        }
    )
    return TestClient(create_app(config))


def test_revocations_url_from_the_operator_is_honoured(
    env: dict[str, Path], ring: tokens.KeyRing, revocations_server: tuple[str, list[str]]
) -> None:
    url, revoked = revocations_server
    minted, fine = mint(ring), mint(ring)
    revoked.append(minted.jti)
    # Entering the client runs the app's lifespan: the verifier's background refresh.
    with _client_from_env(env, VIVIFIED_REVOCATIONS_URL=url) as client:
        assert client.get("/api/users/alice", headers=bearer(minted.token)).status_code == 401
        assert client.get("/api/users/alice", headers=bearer(fine.token)).status_code == 404


def test_unreachable_revocations_url_fails_closed(
    env: dict[str, Path], ring: tokens.KeyRing, revocations_server: tuple[str, list[str]]
) -> None:
    url, _ = revocations_server
    nope = url.replace("/revocations", "/nope")
    with _client_from_env(env, VIVIFIED_REVOCATIONS_URL=nope) as client:
        assert client.get("/api/users/alice", headers=bearer(mint(ring).token)).status_code == 401


def test_caller_without_pii_trait_is_forbidden(env: dict[str, Path], ring: tokens.KeyRing) -> None:
    client = _client(env)
    manifest = PluginManifest.model_validate(
        {
            "id": "reporting",
            "name": "Reporting",
            "version": "1.0.0",
            "contracts": ["StoragePlugin"],
            "traits": ["audit_required"],
            "security": {"authentication_required": True, "data_classification": ["internal"]},
            "compliance": {"audit_level": "basic"},
        }
    )
    token = mint(ring, manifest=manifest).token
    assert client.get("/api/users/alice", headers=bearer(token)).status_code == 403
    # The requirement can be switched off for installations that authorise elsewhere.
    open_client = _client(env, required_trait=None)
    assert open_client.get("/api/users/alice", headers=bearer(token)).status_code == 404


# --------------------------------------------------------------------------------------------
# The API and its store
# --------------------------------------------------------------------------------------------


def test_put_then_get_round_trips(env: dict[str, Path], ring: tokens.KeyRing) -> None:
    client = _client(env)
    auth = bearer(mint(ring).token)
    attributes = {"department": "Engineering", "manager": "bob", "level": 3, "remote": True}
    created = client.put("/api/users/alice@example.com", headers=auth, json=attributes)
    assert created.status_code == 201, created.text
    assert created.json()["attributes"] == attributes
    assert created.json()["updated_by"] == "plugin:user-management"
    fetched = client.get("/api/users/alice@example.com", headers=auth)
    assert fetched.status_code == 200
    assert fetched.json()["user_id"] == "alice@example.com"
    assert fetched.json()["attributes"] == attributes
    replaced = client.put("/api/users/alice@example.com", headers=auth, json={"department": "HR"})
    assert replaced.status_code == 200
    assert client.get("/api/users/alice@example.com", headers=auth).json()["attributes"] == {
        "department": "HR"
    }
    assert client.get("/api/users/nobody", headers=auth).status_code == 404


def test_data_survives_a_restart(env: dict[str, Path], ring: tokens.KeyRing) -> None:
    auth = bearer(mint(ring).token)
    first = _client(env)
    assert first.put("/api/users/u1", headers=auth, json={"title": "CTO"}).status_code == 201
    second = _client(env)  # a new app instance over the same SQLite file
    reply = second.get("/api/users/u1", headers=auth)
    assert reply.status_code == 200
    assert reply.json()["attributes"] == {"title": "CTO"}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b'{"a": NaN}', 400),
        (b'{"a": Infinity}', 400),
        (b'{"a": 1, "a": 2}', 400),
        (b"[" * 5000 + b"]" * 5000, 400),
        (b"\xff\xfe", 400),
        (b"[1, 2]", 422),
        (b'"text"', 422),
        (b"null", 422),
        (b'{"a": null}', 422),
        (b'{"a": {"nested": 1}}', 422),
        (b'{"a": [1]}', 422),
        (b'{"Bad-Name": 1}', 422),
        (b'{"": 1}', 422),
        (b'{"' + b"a" * 65 + b'": 1}', 422),
        (b'{"a": 9007199254740993}', 422),
        (b'{"a": 1e400}', 422),
        (b'{"a": "' + b"x" * 1025 + b'"}', 422),
        (b'{"a": "bell\\u0007"}', 422),
        (json.dumps({f"k{i}": i for i in range(65)}).encode(), 422),
        (b'{"a": "' + b"x" * 17_000 + b'"}', 413),
    ],
)
def test_hostile_bodies_are_refused(
    env: dict[str, Path], ring: tokens.KeyRing, body: bytes, status: int
) -> None:
    client = _client(env)
    headers = {**bearer(mint(ring).token), "Content-Type": "application/json"}
    reply = client.put("/api/users/alice", headers=headers, content=body)
    assert reply.status_code == status, reply.text
    assert client.get("/api/users/alice", headers=headers).status_code == 404


def test_limits_are_inclusive(env: dict[str, Path], ring: tokens.KeyRing) -> None:
    client = _client(env)
    auth = bearer(mint(ring).token)
    attributes: dict[str, Any] = {f"k{i}": i for i in range(60)}
    attributes["bio"] = "x" * 1024
    attributes["a" * 64] = 2**53
    attributes["ratio"] = 0.5
    attributes["notes"] = "line one\nline two\ttabbed"
    reply = client.put("/api/users/alice", headers=auth, json=attributes)
    assert reply.status_code == 201, reply.text
    assert client.get("/api/users/alice", headers=auth).json()["attributes"] == attributes


def test_wrong_content_type_is_415(env: dict[str, Path], ring: tokens.KeyRing) -> None:
    client = _client(env)
    headers = {**bearer(mint(ring).token), "Content-Type": "text/plain"}
    assert client.put("/api/users/a", headers=headers, content=b"{}").status_code == 415


@pytest.mark.parametrize(
    "user_id",
    ["-leading-dash", ".hidden", "a" * 129, "has space", "semi;colon", "quote'", "ünïcode"],
)
def test_bad_user_ids_are_refused(env: dict[str, Path], ring: tokens.KeyRing, user_id: str) -> None:
    client = _client(env)
    auth = bearer(mint(ring).token)
    assert client.get(f"/api/users/{user_id}", headers=auth).status_code == 422
    assert client.put(f"/api/users/{user_id}", headers=auth, json={"a": 1}).status_code == 422


def test_sql_looking_ids_are_just_data(env: dict[str, Path], ring: tokens.KeyRing) -> None:
    client = _client(env)
    auth = bearer(mint(ring).token)
    assert client.put("/api/users/x--1", headers=auth, json={"a": "'; DROP TABLE profiles;--"})
    assert client.get("/api/users/x--1", headers=auth).json()["attributes"] == {
        "a": "'; DROP TABLE profiles;--"
    }


def test_audit_log_names_caller_but_never_values(
    env: dict[str, Path], ring: tokens.KeyRing, caplog: pytest.LogCaptureFixture
) -> None:
    client = _client(env)
    minted = mint(ring)
    with caplog.at_level("INFO", logger="user_management.audit"):
        client.put("/api/users/alice", headers=bearer(minted.token), json={"ssn": "123-45-6789"})
        client.get("/api/users/alice")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert '"event": "user.write"' in text
    assert minted.jti in text
    assert '"caller": "user-management"' in text
    assert "auth.denied" in text
    assert "123-45-6789" not in text
    assert minted.token not in text
