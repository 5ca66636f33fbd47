"""The token Secret, the annotations read back from it, and the operator-wide objects."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vivified.manifest import PluginManifest
from vivified.render import (
    ANNOTATION_TOKEN_EXPIRES_AT,
    ANNOTATION_TOKEN_ISSUED_AT,
    ANNOTATION_TOKEN_JTI,
    ANNOTATION_TOKEN_KID,
    PluginInstance,
    TokenSecretState,
    read_token_secret_state,
    render_jwks_configmap,
    render_revocations_configmap,
    render_signing_key_secret,
    render_token_secret,
)
from vivified.resource import PluginSpec
from vivified.settings import OperatorSettings
from vivified.shell.informer import MANAGED_SELECTOR
from vivified.tokens import (
    KeyRing,
    MintedToken,
    RevocationList,
    generate_signing_key,
    jwks,
    keyring_from_secret_data,
    mint_plugin_token,
    revoke,
    verify_plugin_token,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SETTINGS = OperatorSettings()

MANIFEST: dict[str, Any] = {
    "id": "user-management",
    "name": "User Management Plugin",
    "version": "1.0.0",
    "contracts": ["IdentityPlugin"],
    "traits": ["handles_pii", "audit_required"],
    "security": {"authentication_required": True, "data_classification": ["pii"]},
    "compliance": {"audit_level": "detailed"},
}


@pytest.fixture(scope="module")
def ring() -> KeyRing:
    return KeyRing(active=generate_signing_key(NOW))


@pytest.fixture(scope="module")
def minted(ring: KeyRing) -> MintedToken:
    return mint_plugin_token(
        ring,
        PluginManifest.model_validate(MANIFEST),
        issuer=SETTINGS.token_issuer,
        audience=SETTINGS.token_audience,
        ttl_seconds=SETTINGS.token_ttl_seconds,
        now=NOW,
        jti="0123456789abcdef0123456789abcdef",
    )


def plugin(uid: str = "uid-1") -> PluginInstance:
    spec = PluginSpec.model_validate({"manifest": MANIFEST, "image": "ghcr.io/acme/um:1.0.0"})
    return PluginInstance(
        name="user-management",
        namespace="plugins",
        uid=uid,
        generation=1,
        spec=spec,
        run=True,
        enabled=True,
        token_secret_name="user-management-token",
    )


def decode(value: str) -> str:
    return base64.b64decode(value).decode()


def test_token_secret_shape(ring: KeyRing, minted: MintedToken) -> None:
    secret = render_token_secret(plugin(), minted, SETTINGS, jwks=jwks(ring))
    assert secret["apiVersion"] == "v1"
    assert secret["kind"] == "Secret"
    assert secret["type"] == "Opaque"
    assert secret["metadata"]["name"] == "user-management-token"
    assert secret["metadata"]["namespace"] == "plugins"
    assert secret["metadata"]["labels"]["vivified.dev/plugin"] == "user-management"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert "stringData" not in secret
    assert sorted(secret["data"]) == ["jwks.json", "token"]


def test_token_secret_holds_the_token_and_the_public_jwks(
    ring: KeyRing, minted: MintedToken
) -> None:
    secret = render_token_secret(plugin(), minted, SETTINGS, jwks=jwks(ring))
    token = decode(secret["data"]["token"])
    published = json.loads(decode(secret["data"]["jwks.json"]))
    assert token == minted.token
    assert published == jwks(ring)
    # A plugin can verify tokens with nothing but the mounted files.
    verified = verify_plugin_token(
        token,
        published,
        audience=SETTINGS.token_audience,
        issuer=SETTINGS.token_issuer,
        revoked_jtis=(),
        now=NOW,
    )
    assert verified.plugin_id == "user-management"


def test_token_secret_annotations_describe_the_token(ring: KeyRing, minted: MintedToken) -> None:
    secret = render_token_secret(plugin(), minted, SETTINGS, jwks=jwks(ring))
    assert secret["metadata"]["annotations"] == {
        ANNOTATION_TOKEN_EXPIRES_AT: "2025-03-02T12:00:00Z",
        ANNOTATION_TOKEN_ISSUED_AT: "2025-03-01T12:00:00Z",
        ANNOTATION_TOKEN_JTI: "0123456789abcdef0123456789abcdef",
        ANNOTATION_TOKEN_KID: ring.active.kid,
    }
    assert ANNOTATION_TOKEN_JTI == "vivified.dev/token-jti"
    assert ANNOTATION_TOKEN_KID == "vivified.dev/token-kid"
    assert ANNOTATION_TOKEN_EXPIRES_AT == "vivified.dev/token-expires-at"


def test_annotations_contain_no_token_material(ring: KeyRing, minted: MintedToken) -> None:
    secret = render_token_secret(plugin(), minted, SETTINGS, jwks=jwks(ring))
    text = json.dumps(secret["metadata"])
    assert minted.token not in text
    for part in minted.token.split("."):
        assert part not in text


def test_token_secret_is_deterministic(ring: KeyRing, minted: MintedToken) -> None:
    a = render_token_secret(plugin(), minted, SETTINGS, jwks=jwks(ring))
    b = render_token_secret(plugin(), minted, SETTINGS, jwks=jwks(ring))
    assert json.dumps(a) == json.dumps(b)


def test_annotations_read_back_into_state(ring: KeyRing, minted: MintedToken) -> None:
    secret = render_token_secret(plugin(), minted, SETTINGS, jwks=jwks(ring))
    state = read_token_secret_state(secret["metadata"]["annotations"])
    assert state == TokenSecretState(
        jti=minted.jti, kid=minted.kid, issued_at=minted.issued_at, expires_at=minted.expires_at
    )


def full_annotations() -> dict[str, str]:
    return {
        ANNOTATION_TOKEN_JTI: "j",
        ANNOTATION_TOKEN_KID: "k",
        ANNOTATION_TOKEN_ISSUED_AT: "2025-03-01T12:00:00Z",
        ANNOTATION_TOKEN_EXPIRES_AT: "2025-03-02T12:00:00Z",
    }


@pytest.mark.parametrize(
    "broken",
    [
        None,
        {},
        {ANNOTATION_TOKEN_JTI: None},
        {ANNOTATION_TOKEN_KID: None},
        {ANNOTATION_TOKEN_ISSUED_AT: None},
        {ANNOTATION_TOKEN_EXPIRES_AT: None},
        {ANNOTATION_TOKEN_EXPIRES_AT: "tomorrow"},
        {ANNOTATION_TOKEN_ISSUED_AT: "2025-03-01T12:00:00"},  # no timezone
        {ANNOTATION_TOKEN_JTI: ""},
    ],
)
def test_missing_or_malformed_annotations_mean_no_state(broken: dict[str, Any] | None) -> None:
    if broken is None:
        assert read_token_secret_state(None) is None
        return
    annotations = full_annotations() if broken else {}
    for key, value in broken.items():
        if value is None:
            annotations.pop(key)
        else:
            annotations[key] = value
    assert read_token_secret_state(annotations) is None


def test_state_tolerates_unrelated_annotations() -> None:
    state = read_token_secret_state({**full_annotations(), "other": "x"})
    assert state is not None
    assert state.expires_at - state.issued_at == timedelta(days=1)


# --------------------------------------------------------------------------------------------
# Operator-wide objects
# --------------------------------------------------------------------------------------------


def test_signing_key_secret_round_trips_through_base64(ring: KeyRing) -> None:
    secret = render_signing_key_secret(ring, SETTINGS)
    assert secret["kind"] == "Secret"
    assert secret["metadata"]["name"] == "vivified-signing-key"
    assert secret["metadata"]["namespace"] == "vivified-system"
    assert "ownerReferences" not in secret["metadata"]
    data = {k: decode(v) for k, v in secret["data"].items()}
    assert keyring_from_secret_data(data) == ring


def test_jwks_configmap(ring: KeyRing) -> None:
    cm = render_jwks_configmap(jwks(ring), SETTINGS)
    assert cm["kind"] == "ConfigMap"
    assert cm["metadata"]["name"] == "vivified-jwks"
    assert cm["metadata"]["namespace"] == "vivified-system"
    assert json.loads(cm["data"]["jwks.json"]) == jwks(ring)


def test_revocations_configmap() -> None:
    revocations = revoke(RevocationList(), "j1", NOW)
    cm = render_revocations_configmap(revocations, SETTINGS)
    assert cm["metadata"]["name"] == "vivified-revoked-tokens"
    assert json.loads(cm["data"]["revoked.json"]) == {
        "revoked": {"j1": "2025-03-01T12:00:00Z"},
        "version": 1,
    }


def test_operator_objects_follow_settings(ring: KeyRing) -> None:
    settings = OperatorSettings(
        operator_namespace="platform",
        signing_key_secret="keys",
        jwks_configmap="pub",
        revocations_configmap="revoked",
    )
    objs = [
        render_signing_key_secret(ring, settings),
        render_jwks_configmap(jwks(ring), settings),
        render_revocations_configmap(RevocationList(), settings),
    ]
    assert [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in objs] == [
        ("platform", "keys"),
        ("platform", "pub"),
        ("platform", "revoked"),
    ]


def test_operator_objects_are_not_selected_as_plugin_children(ring: KeyRing) -> None:
    # The informer lists children by this label; the signing key must never be cached there.
    key, value = MANAGED_SELECTOR.split("=")
    for obj in (
        render_signing_key_secret(ring, SETTINGS),
        render_jwks_configmap(jwks(ring), SETTINGS),
        render_revocations_configmap(RevocationList(), SETTINGS),
    ):
        assert obj["metadata"]["labels"].get(key) != value
