"""The plugin SDK: token file rotation, authenticated core calls, cached verification."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from vivified import tokens
from vivified.manifest import PluginManifest
from vivified.sdk import (
    CoreClient,
    JwksCache,
    RevocationFile,
    RevocationUrl,
    StaticRevocations,
    TokenAuth,
    TokenFile,
    TokenFileError,
    TokenInvalid,
    TokenVerifier,
)

NOW = datetime.now(UTC).replace(microsecond=0)
ISS, AUD = "vivified-operator", "vivified-platform"
MANIFEST = PluginManifest.model_validate(
    {
        "id": "billing",
        "name": "Billing",
        "version": "1.0.0",
        "contracts": ["StoragePlugin"],
        "traits": ["audit_required"],
        "security": {"authentication_required": True, "data_classification": ["internal"]},
        "compliance": {"audit_level": "basic"},
    }
)


def ring() -> tokens.KeyRing:
    return tokens.KeyRing(active=tokens.generate_signing_key(NOW))


def mint(keyring: tokens.KeyRing, **kwargs: Any) -> tokens.MintedToken:
    options: dict[str, Any] = {"issuer": ISS, "audience": AUD, "ttl_seconds": 600, "now": NOW}
    options.update(kwargs)
    return tokens.mint_plugin_token(keyring, MANIFEST, **options)


class KubeletMount:
    """A Secret volume as the kubelet writes it: files are symlinks into ``..data``, which
    is itself a symlink swapped atomically to a new timestamped directory on update."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.generation = 0

    def write(self, files: dict[str, str]) -> None:
        self.generation += 1
        target = self.root / f"..2025_{self.generation:04d}"
        target.mkdir()
        for name, text in files.items():
            (target / name).write_text(text)
        tmp = self.root / "..data_tmp"
        tmp.symlink_to(target.name)
        os.replace(tmp, self.root / "..data")
        for name in files:
            link = self.root / name
            if not link.is_symlink():
                link.symlink_to(f"..data/{name}")


# --------------------------------------------------------------------------------------------
# TokenFile
# --------------------------------------------------------------------------------------------


def test_token_file_follows_the_kubelet_swap(tmp_path: Path) -> None:
    mount = KubeletMount(tmp_path)
    mount.write({"token": "first-token"})
    token_file = TokenFile(tmp_path / "token")
    assert token_file.read() == "first-token"
    assert token_file.read() == "first-token"
    mount.write({"token": "second-token\n"})
    assert token_file.read() == "second-token"


def test_token_file_does_not_reread_an_unchanged_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "token"
    path.write_text("abc")
    token_file = TokenFile(path)
    assert token_file.read() == "abc"
    opened: list[Path] = []
    original = Path.open

    def spy(self: Path, *args: Any, **kwargs: Any) -> Any:
        opened.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", spy)
    for _ in range(5):
        assert token_file.read() == "abc"
    assert opened == []
    assert token_file.read(force=True) == "abc"
    assert opened == [path]


def test_token_file_errors_never_show_the_token(tmp_path: Path) -> None:
    path = tmp_path / "token"
    with pytest.raises(TokenFileError, match="cannot read"):
        TokenFile(path).read()
    path.write_text("  \n")
    with pytest.raises(TokenFileError, match="empty"):
        TokenFile(path).read()
    path.write_text("secret-token-value")
    token_file = TokenFile(path)
    token_file.read()
    assert "secret-token-value" not in repr(token_file)
    path.write_text("x" * 20_000)
    with pytest.raises(TokenFileError, match="too large"):
        TokenFile(path).read()


def test_token_file_keeps_the_last_token_while_the_file_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("abc")
    token_file = TokenFile(path)
    token_file.read()
    path.unlink()
    assert token_file.read() == "abc"
    with pytest.raises(TokenFileError):
        token_file.read(force=True)


def test_token_file_from_env(tmp_path: Path) -> None:
    assert TokenFile.from_env({}).path == Path("/var/run/vivified/token")
    assert TokenFile.from_env({"PLUGIN_TOKEN_FILE": str(tmp_path / "t")}).path == tmp_path / "t"


# --------------------------------------------------------------------------------------------
# CoreClient / TokenAuth
# --------------------------------------------------------------------------------------------


async def test_core_client_sends_the_current_token(tmp_path: Path) -> None:
    mount = KubeletMount(tmp_path)
    mount.write({"token": "t1"})
    seen: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((str(request.url), request.headers["Authorization"]))
        return httpx.Response(200, json={"ok": True})

    client = CoreClient(
        "http://core.test",
        token_file=TokenFile(tmp_path / "token"),
        transport=httpx.MockTransport(handler),
    )
    async with client:
        await client.get("/api/a")
        mount.write({"token": "t2"})
        await client.post("/api/b", json={})
    assert seen == [
        ("http://core.test/api/a", "Bearer t1"),
        ("http://core.test/api/b", "Bearer t2"),
    ]


async def test_a_401_during_rotation_is_retried_with_the_new_token(tmp_path: Path) -> None:
    mount = KubeletMount(tmp_path)
    mount.write({"token": "old"})
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        if request.headers["Authorization"] == "Bearer old":
            mount.write({"token": "new"})  # rotated just as the request went out
            return httpx.Response(401)
        return httpx.Response(200)

    async with CoreClient(
        "http://core.test",
        token_file=TokenFile(tmp_path / "token"),
        transport=httpx.MockTransport(handler),
    ) as client:
        assert (await client.get("/x")).status_code == 200
    assert seen == ["Bearer old", "Bearer new"]


async def test_a_401_with_the_same_token_is_not_retried(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t")
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(401)

    async with CoreClient(
        "http://core.test",
        token_file=TokenFile(tmp_path / "token"),
        transport=httpx.MockTransport(handler),
    ) as client:
        assert (await client.get("/x")).status_code == 401
    assert len(calls) == 1


def test_token_auth_works_with_sync_clients(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("sync-token")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=request.headers["Authorization"])

    with httpx.Client(
        auth=TokenAuth(TokenFile(tmp_path / "token")), transport=httpx.MockTransport(handler)
    ) as client:
        assert client.get("http://core.test/").text == "Bearer sync-token"


async def test_core_client_does_not_follow_redirects(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t")
    hosts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        return httpx.Response(302, headers={"Location": "http://evil.test/steal"})

    async with CoreClient(
        "http://core.test",
        token_file=TokenFile(tmp_path / "token"),
        transport=httpx.MockTransport(handler),
    ) as client:
        assert (await client.get("/x")).status_code == 302
    assert hosts == ["core.test"]


async def test_heartbeat(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t")
    bodies: list[tuple[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append((str(request.url), json.loads(request.content)))
        return httpx.Response(200, json={"health": "healthy"})

    env = {
        "VIVIFIED_CORE_URL": "http://core.test",
        "PLUGIN_TOKEN_FILE": str(tmp_path / "token"),
        "VIVIFIED_HEARTBEAT_URL": "http://operator.test:8081/plugins/heartbeat",
    }
    async with CoreClient.from_env(env, transport=httpx.MockTransport(handler)) as client:
        await client.heartbeat("degraded", metrics={"queue": 3}, message="slow disk")
    assert bodies == [
        (
            "http://operator.test:8081/plugins/heartbeat",
            {"status": "degraded", "metrics": {"queue": 3}, "message": "slow disk"},
        )
    ]
    async with CoreClient("http://core.test", token_file=TokenFile(tmp_path / "token")) as bare:
        with pytest.raises(RuntimeError, match="VIVIFIED_HEARTBEAT_URL"):
            await bare.heartbeat()


def test_core_client_needs_a_core_url() -> None:
    with pytest.raises(RuntimeError, match="VIVIFIED_CORE_URL"):
        CoreClient.from_env({})


# --------------------------------------------------------------------------------------------
# JwksCache and TokenVerifier
# --------------------------------------------------------------------------------------------


def write_jwks(path: Path, *rings: tokens.KeyRing) -> None:
    keys = [k for r in rings for k in tokens.jwks(r)["keys"]]
    path.write_text(json.dumps({"keys": keys}))


def verifier(cache: JwksCache, **kwargs: Any) -> TokenVerifier:
    return TokenVerifier(cache, audience=AUD, issuer=ISS, clock=lambda: NOW, **kwargs)


def test_verifier_accepts_a_minted_token(tmp_path: Path) -> None:
    keys = ring()
    write_jwks(tmp_path / "jwks.json", keys)
    v = verifier(JwksCache(file=tmp_path / "jwks.json"))
    verified = v.verify(mint(keys).token)
    assert verified.plugin_id == "billing"
    assert verified.traits == ("audit_required",)
    assert v.verify_authorization(f"Bearer {mint(keys).token}").plugin_id == "billing"
    assert v.verify_authorization(f"bearer   {mint(keys).token}").plugin_id == "billing"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Basic abc", "Token x"])
def test_verify_authorization_needs_a_bearer_token(tmp_path: Path, header: str | None) -> None:
    write_jwks(tmp_path / "jwks.json", ring())
    with pytest.raises(TokenInvalid):
        verifier(JwksCache(file=tmp_path / "jwks.json")).verify_authorization(header)


def test_verifier_rejects_what_verify_plugin_token_rejects(tmp_path: Path) -> None:
    keys = ring()
    write_jwks(tmp_path / "jwks.json", keys)
    v = verifier(JwksCache(file=tmp_path / "jwks.json"))
    for token, reason in [
        (mint(keys, audience="x").token, "wrong audience"),
        (mint(keys, now=NOW - timedelta(hours=1), ttl_seconds=60).token, "token expired"),
        (mint(ring()).token, "unknown key id"),
        ("", "malformed token"),
        ("a.b", "malformed token"),
        ("x" * 9000, "malformed token"),
    ]:
        with pytest.raises(TokenInvalid) as info:
            v.verify(token)
        assert info.value.reason == reason


def test_jwks_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    mount = KubeletMount(tmp_path)
    first, second = ring(), ring()
    mount.write({"jwks.json": json.dumps(tokens.jwks(first))})
    v = verifier(JwksCache(file=tmp_path / "jwks.json"))
    v.verify(mint(first).token)
    with pytest.raises(TokenInvalid, match="unknown key id"):
        v.verify(mint(second).token)
    mount.write(
        {
            "jwks.json": json.dumps(
                {"keys": [*tokens.jwks(first)["keys"], *tokens.jwks(second)["keys"]]}
            )
        }
    )
    v.verify(mint(second).token)


def test_a_broken_jwks_file_keeps_the_last_good_keys(tmp_path: Path) -> None:
    keys = ring()
    path = tmp_path / "jwks.json"
    write_jwks(path, keys)
    v = verifier(JwksCache(file=path))
    v.verify(mint(keys).token)
    path.write_text("{half")
    v.verify(mint(keys).token)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def jwks_server(documents: list[dict[str, Any]]) -> tuple[httpx.Client, list[int]]:
    hits: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hits.append(1)
        return httpx.Response(200, json=documents[min(len(hits), len(documents)) - 1])

    return httpx.Client(transport=httpx.MockTransport(handler)), hits


def test_unknown_kid_refreshes_the_url_with_a_rate_limit() -> None:
    first, second = ring(), ring()
    client, hits = jwks_server([tokens.jwks(first), tokens.jwks(second)])
    clock = Clock()
    cache = JwksCache(
        url="http://core.test/jwks", http=client, min_refresh_seconds=30, monotonic=clock
    )
    v = verifier(cache)
    v.verify(mint(first).token)
    assert len(hits) == 1
    # A token with an unknown kid right away: no refetch yet (rate limit)...
    with pytest.raises(TokenInvalid, match="unknown key id"):
        v.verify(mint(second).token)
    for _ in range(50):  # ...and a flood of them costs nothing
        with pytest.raises(TokenInvalid):
            v.verify(mint(ring()).token)
    assert len(hits) == 1
    clock.now += 30
    v.verify(mint(second).token)  # refreshed once the limit allows
    assert len(hits) == 2
    assert cache.fetches == 2


def test_url_keys_expire_after_max_age() -> None:
    keys = ring()
    client, hits = jwks_server([tokens.jwks(keys)])
    clock = Clock()
    v = verifier(
        JwksCache(url="http://core.test/jwks", http=client, max_age_seconds=300, monotonic=clock)
    )
    v.verify(mint(keys).token)
    v.verify(mint(keys).token)
    assert len(hits) == 1
    clock.now += 300
    v.verify(mint(keys).token)
    assert len(hits) == 2


def test_url_failures_keep_the_last_keys() -> None:
    keys = ring()
    answers = [httpx.Response(200, json=tokens.jwks(keys)), httpx.Response(500)]

    def handler(request: httpx.Request) -> httpx.Response:
        return answers.pop(0) if answers else httpx.Response(500)

    clock = Clock()
    cache = JwksCache(
        url="http://core.test/jwks",
        http=httpx.Client(transport=httpx.MockTransport(handler)),
        max_age_seconds=10,
        monotonic=clock,
    )
    v = verifier(cache)
    v.verify(mint(keys).token)
    clock.now += 10
    v.verify(mint(keys).token)


def test_jwks_cache_needs_a_source() -> None:
    with pytest.raises(ValueError, match="file, a URL"):
        JwksCache()


def test_static_revocations(tmp_path: Path) -> None:
    keys = ring()
    write_jwks(tmp_path / "jwks.json", keys)
    minted = mint(keys)
    v = verifier(
        JwksCache(file=tmp_path / "jwks.json"), revocations=StaticRevocations([minted.jti])
    )
    with pytest.raises(TokenInvalid, match="revoked"):
        v.verify(minted.token)
    v.verify(mint(keys).token)


@pytest.mark.parametrize("shape", ["configmap", "list"])
def test_revocation_file(tmp_path: Path, shape: str) -> None:
    keys = ring()
    write_jwks(tmp_path / "jwks.json", keys)
    revoked_path = tmp_path / "revoked.json"
    minted = mint(keys)
    write: Callable[[list[str]], None]
    if shape == "configmap":

        def write(jtis: list[str]) -> None:
            listed = tokens.RevocationList({j: NOW + timedelta(hours=1) for j in jtis})
            data = tokens.revocations_to_configmap_data(listed)
            revoked_path.write_text(data[tokens.REVOCATIONS_CONFIGMAP_KEY])
    else:

        def write(jtis: list[str]) -> None:
            revoked_path.write_text(json.dumps(jtis))

    write([])
    v = verifier(JwksCache(file=tmp_path / "jwks.json"), revocations=RevocationFile(revoked_path))
    v.verify(minted.token)
    write(["other", minted.jti])
    with pytest.raises(TokenInvalid, match="revoked"):
        v.verify(minted.token)
    revoked_path.write_text("{broken")  # a bad update keeps the last good list
    with pytest.raises(TokenInvalid, match="revoked"):
        v.verify(minted.token)


def test_revocation_file_fails_closed_until_read(tmp_path: Path) -> None:
    keys = ring()
    write_jwks(tmp_path / "jwks.json", keys)
    v = verifier(
        JwksCache(file=tmp_path / "jwks.json"),
        revocations=RevocationFile(tmp_path / "missing.json"),
    )
    with pytest.raises(TokenInvalid, match="revocation list unavailable"):
        v.verify(mint(keys).token)
    (tmp_path / "missing.json").write_text("[1, 2]")  # not strings: still unusable
    with pytest.raises(TokenInvalid, match="revocation list unavailable"):
        v.verify(mint(keys).token)


def test_verifier_from_env(tmp_path: Path) -> None:
    keys = ring()
    write_jwks(tmp_path / "jwks.json", keys)
    (tmp_path / "revoked.json").write_text("[]")
    env = {
        "VIVIFIED_JWKS_FILE": str(tmp_path / "jwks.json"),
        "VIVIFIED_REVOCATIONS_FILE": str(tmp_path / "revoked.json"),
        "TOKEN_AUDIENCE": "custom-audience",
    }
    v = TokenVerifier.from_env(env, clock=lambda: NOW)
    assert (v.issuer, v.audience) == (ISS, "custom-audience")
    v.verify(mint(keys, audience="custom-audience").token)
    env["VIVIFIED_TOKEN_AUDIENCE"] = "operator-set"
    assert TokenVerifier.from_env(env).audience == "operator-set"
    defaults = TokenVerifier.from_env({})
    assert (defaults.issuer, defaults.audience) == (ISS, AUD)
    assert defaults.revocations is None


# --------------------------------------------------------------------------------------------
# RevocationUrl (the operator's GET /plugins/revocations)
# --------------------------------------------------------------------------------------------

REVOCATIONS_URL = "http://vivified-heartbeat.test:8081/plugins/revocations"


def revocation_document(*jtis: str) -> str:
    listed = tokens.RevocationList({j: NOW + timedelta(hours=1) for j in jtis})
    return tokens.revocations_to_configmap_data(listed)[tokens.REVOCATIONS_CONFIGMAP_KEY]


class RevocationServer:
    """``httpx.MockTransport`` playing the operator: serves ``revoked`` or fails."""

    def __init__(self, *jtis: str) -> None:
        self.revoked = list(jtis)
        self.down = False
        self.status = 200
        self.hits = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.hits += 1
        assert request.url == REVOCATIONS_URL
        assert "Authorization" not in request.headers
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(self.status, text=revocation_document(*self.revoked))

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handler))


def url_verifier(
    tmp_path: Path, server: RevocationServer, clock: Clock, **kwargs: Any
) -> tuple[TokenVerifier, tokens.KeyRing]:
    keys = ring()
    write_jwks(tmp_path / "jwks.json", keys)
    source = RevocationUrl(REVOCATIONS_URL, http=server.client(), monotonic=clock, **kwargs)
    return verifier(JwksCache(file=tmp_path / "jwks.json"), revocations=source), keys


def test_revocation_url_rejects_a_revoked_jti(tmp_path: Path) -> None:
    server = RevocationServer("other")
    v, keys = url_verifier(tmp_path, server, Clock())
    revoked, fine = mint(keys), mint(keys)
    server.revoked.append(revoked.jti)
    with pytest.raises(TokenInvalid, match="revoked"):
        v.verify(revoked.token)
    assert v.verify(fine.token).jti == fine.jti
    assert server.hits == 1  # cached between refreshes


def test_revocation_url_accepts_a_plain_list_of_jtis(tmp_path: Path) -> None:
    keys = ring()
    write_jwks(tmp_path / "jwks.json", keys)
    minted = mint(keys)
    client = httpx.Client(
        transport=httpx.MockTransport(lambda _: httpx.Response(200, json=[minted.jti]))
    )
    v = verifier(
        JwksCache(file=tmp_path / "jwks.json"),
        revocations=RevocationUrl(REVOCATIONS_URL, http=client),
    )
    with pytest.raises(TokenInvalid, match="revoked"):
        v.verify(minted.token)


@pytest.mark.parametrize("failure", ["down", "500", "garbage", "too-large"])
def test_revocation_url_never_loaded_refuses_every_token(tmp_path: Path, failure: str) -> None:
    server = RevocationServer()
    if failure == "down":
        server.down = True
    elif failure == "500":
        server.status = 500
    v, keys = url_verifier(tmp_path, server, Clock())
    if failure == "garbage":
        v.revocations = RevocationUrl(
            REVOCATIONS_URL,
            http=httpx.Client(transport=httpx.MockTransport(lambda _: httpx.Response(200))),
        )
    elif failure == "too-large":
        big = json.dumps([f"jti-{i:08d}" for i in range(20000)])
        v.revocations = RevocationUrl(
            REVOCATIONS_URL,
            http=httpx.Client(
                transport=httpx.MockTransport(lambda _: httpx.Response(200, text=big))
            ),
        )
    with pytest.raises(TokenInvalid, match="revocation list unavailable"):
        v.verify(mint(keys).token)


def test_revocation_url_unreachable_for_real_refuses(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    keys = ring()
    write_jwks(tmp_path / "jwks.json", keys)
    v = verifier(
        JwksCache(file=tmp_path / "jwks.json"),
        revocations=RevocationUrl(f"http://127.0.0.1:{port}/plugins/revocations"),
    )
    with pytest.raises(TokenInvalid, match="revocation list unavailable"):
        v.verify(mint(keys).token)


def test_revocation_url_refresh_picks_up_new_revocations(tmp_path: Path) -> None:
    server = RevocationServer()
    clock = Clock()
    v, keys = url_verifier(tmp_path, server, clock, refresh_seconds=15)
    minted = mint(keys)
    v.verify(minted.token)
    server.revoked.append(minted.jti)
    clock.now += 14
    for _ in range(50):  # before the interval: the cached list, and no fetch per request
        v.verify(minted.token)
    assert server.hits == 1
    clock.now += 1
    with pytest.raises(TokenInvalid, match="revoked"):
        v.verify(minted.token)
    assert server.hits == 2


def test_revocation_url_keeps_the_last_list_until_it_is_stale(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = RevocationServer()
    clock = Clock()
    v, keys = url_verifier(
        tmp_path, server, clock, refresh_seconds=15, max_stale_seconds=300, retry_seconds=2
    )
    minted = mint(keys)
    v.verify(minted.token)
    server.down = True
    with caplog.at_level("INFO", logger="vivified.sdk"):
        clock.now += 15
        v.verify(minted.token)  # fetch failed; the list is 15 s old: still usable
        clock.now += 1
        v.verify(minted.token)
        assert server.hits == 2  # failures are retried after retry_seconds, not per request
        clock.now += 1
        v.verify(minted.token)
        assert server.hits == 3
        clock.now += 284  # last good fetch 301 s ago
        with pytest.raises(TokenInvalid, match="revocation list stale"):
            v.verify(minted.token)
        with pytest.raises(TokenInvalid, match="revocation list stale"):
            v.verify(mint(keys).token)
        server.down = False  # the operator is back: verification resumes at the next fetch
        clock.now += 2
        v.verify(minted.token)
    assert caplog.text.count("revocation list fetch from") == 2  # failing, then working again
    assert minted.token not in caplog.text


def test_revocation_url_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="needs a URL"):
        RevocationUrl("")
    with pytest.raises(ValueError, match="max_stale_seconds"):
        RevocationUrl(REVOCATIONS_URL, refresh_seconds=60, max_stale_seconds=30)


def test_verifier_from_env_reads_the_revocations_url(tmp_path: Path) -> None:
    keys = ring()
    write_jwks(tmp_path / "jwks.json", keys)
    revoked_by_url, revoked_by_file, fine = mint(keys), mint(keys), mint(keys)
    server = RevocationServer(revoked_by_url.jti)
    env = {
        "VIVIFIED_JWKS_FILE": str(tmp_path / "jwks.json"),
        "VIVIFIED_REVOCATIONS_URL": REVOCATIONS_URL,
    }
    v = TokenVerifier.from_env(env, clock=lambda: NOW, http=server.client())
    assert isinstance(v.revocations, RevocationUrl)
    assert v.revocations.url == REVOCATIONS_URL
    with pytest.raises(TokenInvalid, match="revoked"):
        v.verify(revoked_by_url.token)
    v.verify(fine.token)
    # File and URL together: revoked in either is revoked; either unusable refuses all.
    (tmp_path / "revoked.json").write_text(json.dumps([revoked_by_file.jti]))
    env["VIVIFIED_REVOCATIONS_FILE"] = str(tmp_path / "revoked.json")
    both = TokenVerifier.from_env(env, clock=lambda: NOW, http=server.client())
    for token in (revoked_by_url, revoked_by_file):
        with pytest.raises(TokenInvalid, match="revoked"):
            both.verify(token.token)
    both.verify(fine.token)
    server.down = True
    down = TokenVerifier.from_env(env, clock=lambda: NOW, http=server.client())
    with pytest.raises(TokenInvalid, match="revocation list unavailable"):
        down.verify(fine.token)


def test_sdk_does_not_import_the_operator_stack() -> None:
    code = (
        "import sys, vivified.sdk; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'kopf', 'kubernetes', 'aiohttp', 'pydantic', 'yaml'})); "
        "print(sorted(m for m in sys.modules if m.startswith('vivified.') "
        "and not m.startswith(('vivified.sdk', 'vivified.tokens'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == ["[]", "[]"]
