"""The operator and the SDK agree on every name of the operator<->plugin contract.

``vivified_sdk.contract`` is the single home of these names. Two kinds of proof:

* nothing under ``operator/`` spells a contract value again (an AST scan of every string
  constant that is not a docstring);
* renaming names in the contract changes what the operator renders, and the SDK's own
  ``from_env`` readers, fed the rendered environment, find exactly the files the rendered
  Secret mount provides (run in a subprocess, so the rename happens before any import).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vivified.settings import OperatorSettings
from vivified_sdk import contract

OPERATOR = Path(__file__).resolve().parents[2] / "operator" / "vivified"

#: Values too generic to grep for (``token``, ``plugin``, ``operator``, ``http``, ``ES256`` are
#: words found in messages; the issuer equals the operator's component name; ``VIVIFIED_`` is
#: also the operator's own settings prefix): covered by the rename test and by
#: ``test_settings_defaults_are_the_contract``.
GENERIC = {
    contract.TOKEN_FILE_NAME,
    contract.TOKEN_TYPE,
    contract.CALL_TOKEN_TYPE,
    contract.OPERATOR_TOKEN_TYPE,
    contract.DEFAULT_ISSUER,
    contract.ENV_PLUGIN_ID,
    contract.CORE_HTTP_PORT_NAME,
    contract.CORE_PROXY_PORT_NAME,
    contract.SUBJECT_PREFIX,
    contract.SIGNING_ALGORITHM,
    contract.RESERVED_ENV_PREFIX,
}
CLAIMS = {getattr(contract, n) for n in contract.__all__ if n.startswith("CLAIM_")}


def _distinctive() -> set[str]:
    values = {getattr(contract, name) for name in contract.__all__}
    strings = {v for v in values if isinstance(v, str) and len(v) > 3}
    return strings - GENERIC - CLAIMS - {contract.PROTOCOL_VERSION, contract.API_PREFIX}


def _string_constants(path: Path) -> list[tuple[int, str]]:
    """Every string constant in ``path`` except docstrings and bare expression strings."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_no_contract_value_is_spelled_in_the_operator() -> None:
    needles = _distinctive()
    assert {contract.ENV_CORE_URL, contract.MOUNT_DIR, contract.CORE_HEARTBEAT_PATH} <= needles
    found = [
        f"{path.relative_to(OPERATOR.parent)}:{line}: {value!r} contains {needle!r}"
        for path in sorted(OPERATOR.rglob("*.py"))
        for line, value in _string_constants(path)
        for needle in needles
        if needle in value
    ]
    assert found == [], "import these from vivified_sdk.contract instead"


def test_no_claim_name_is_spelled_in_the_token_code() -> None:
    found = [
        f"{path.name}:{line}: {value!r}"
        for path in [OPERATOR / "tokens" / "plugin_token.py"]
        for line, value in _string_constants(path)
        if value in CLAIMS
    ]
    assert found == []


def test_settings_defaults_are_the_contract() -> None:
    settings = OperatorSettings()
    assert settings.token_issuer == contract.DEFAULT_ISSUER
    assert settings.token_audience == contract.DEFAULT_AUDIENCE
    assert settings.token_mount_dir == contract.MOUNT_DIR
    assert settings.token_file == contract.DEFAULT_TOKEN_FILE
    assert settings.jwks_file == contract.DEFAULT_JWKS_FILE
    assert settings.core_url.startswith(f"http://{contract.CORE_SERVICE_NAME}.")
    assert settings.resolved_core_port == contract.CORE_HTTP_PORT


# The probe: render a plugin's Deployment and token Secret, then read the rendered environment
# with the SDK's own from_env readers. ``RENAMES`` is applied to the contract first.
_PROBE = textwrap.dedent(
    """
    import json, sys
    import vivified_sdk.contract as c
    renames = json.loads(sys.argv[1])
    for name, value in renames.items():
        setattr(c, name, value)
    if renames:
        c.DEFAULT_TOKEN_FILE = c.MOUNT_DIR + "/" + c.TOKEN_FILE_NAME
        c.DEFAULT_JWKS_FILE = c.MOUNT_DIR + "/" + c.JWKS_FILE_NAME
    from datetime import UTC, datetime
    from tests.seed import user_management_manifest
    from vivified import tokens
    from vivified.render import PluginInstance, render_deployment, render_token_secret
    from vivified.resource import PluginSpec
    from vivified.settings import OperatorSettings
    from vivified_sdk import CoreClient, TokenFile, TokenVerifier
    import jwt

    def minted_iss(token):
        return jwt.decode(token, options={"verify_signature": False})["iss"]

    spec = PluginSpec.model_validate(
        {"manifest": user_management_manifest(), "image": "registry.test/um:1"}
    )
    plugin = PluginInstance(
        name=spec.manifest.id, namespace="plugins", uid="u", generation=1, spec=spec,
        run=True, enabled=True, token_secret_name=spec.manifest.id + "-token",
    )
    settings = OperatorSettings()
    pod = render_deployment(plugin, settings)["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    mount = next(m["mountPath"] for m in container["volumeMounts"] if m.get("readOnly"))
    now = datetime.now(UTC)
    ring = tokens.KeyRing(active=tokens.generate_signing_key(now))
    minted = tokens.mint_plugin_token(
        ring, spec.manifest, issuer=settings.token_issuer, audience=settings.token_audience,
        ttl_seconds=600, now=now,
    )
    secret = render_token_secret(plugin, minted, settings, jwks=tokens.jwks(ring))
    verifier = TokenVerifier.from_env(env)
    print(json.dumps({
        "env": env,
        "mount": mount,
        "files": sorted(mount + "/" + key for key in secret["data"]),
        "sdk_token_file": str(TokenFile.from_env(env).path),
        "sdk_jwks_file": str(verifier.jwks.parts[0].path),
        "sdk_jwks_url": verifier.jwks.parts[1].url,
        "sdk_revocations_url": verifier.revocations.url,
        "sdk_core_url": str(CoreClient.from_env(env).http.base_url).rstrip("/"),
        "issuer": [verifier.issuer, settings.token_issuer, minted_iss(minted.token)],
    }))
    """
)

RENAMES = {
    "ENV_PLUGIN_ID": "X_PLUGIN_NAME",
    "ENV_PLUGIN_PORT": "VIVIFIED_X_PORT",
    "ENV_CORE_URL": "VIVIFIED_X_CORE",
    "ENV_HEARTBEAT_URL": "VIVIFIED_X_BEAT",
    "ENV_TOKEN_FILE": "X_TOKEN_PATH",
    "ENV_JWKS_FILE": "VIVIFIED_X_KEYS_FILE",
    "ENV_JWKS_URL": "VIVIFIED_X_KEYS_URL",
    "ENV_REVOCATIONS_URL": "VIVIFIED_X_REVOKED_URL",
    "MOUNT_DIR": "/run/x-identity",
    "TOKEN_FILE_NAME": "jwt",
    "JWKS_FILE_NAME": "keys.json",
    "CORE_HEARTBEAT_PATH": "/x/beat",
    "CORE_JWKS_PATH": "/x/keys",
    "CORE_REVOCATIONS_PATH": "/x/revoked",
    "CORE_SERVICE_NAME": "x-core",
    "CORE_HTTP_PORT": 18080,
    "DEFAULT_ISSUER": "x-issuer",
}


def _probe(renames: dict[str, object]) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(renames)],
        capture_output=True,
        text=True,
        check=True,
        cwd=OPERATOR.parents[1],
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def _assert_sdk_reads_what_the_operator_renders(seen: dict[str, object]) -> None:
    files = seen["files"]
    assert isinstance(files, list)
    assert seen["sdk_token_file"] in files
    assert seen["sdk_jwks_file"] in files
    issuers = seen["issuer"]
    assert isinstance(issuers, list)
    assert len(set(issuers)) == 1


@pytest.fixture(scope="module")
def as_shipped() -> dict[str, object]:
    return _probe({})


@pytest.fixture(scope="module")
def renamed() -> dict[str, object]:
    return _probe(RENAMES)


def test_the_sdk_reads_what_the_operator_renders(as_shipped: dict[str, object]) -> None:
    _assert_sdk_reads_what_the_operator_renders(as_shipped)
    env = as_shipped["env"]
    assert isinstance(env, dict)
    assert env[contract.ENV_PLUGIN_ID] == "user-management"
    assert as_shipped["mount"] == contract.MOUNT_DIR
    # The core serves plugins' revocations and keys; the operator accepts no plugin traffic.
    core = f"http://{contract.CORE_SERVICE_NAME}.vivified-system.svc:{contract.CORE_HTTP_PORT}"
    assert as_shipped["sdk_revocations_url"] == core + contract.CORE_REVOCATIONS_PATH
    assert env[contract.ENV_JWKS_URL] == core + contract.CORE_JWKS_PATH
    assert env[contract.ENV_HEARTBEAT_URL] == core + contract.CORE_HEARTBEAT_PATH


def test_renaming_the_contract_changes_the_rendered_deployment(
    as_shipped: dict[str, object], renamed: dict[str, object]
) -> None:
    _assert_sdk_reads_what_the_operator_renders(renamed)
    env = renamed["env"]
    assert isinstance(env, dict)
    env_renames = {v for k, v in RENAMES.items() if k.startswith("ENV_")}
    assert env_renames <= set(env)
    assert not set(env) & {getattr(contract, k) for k in RENAMES if k.startswith("ENV_")}
    assert renamed["mount"] == "/run/x-identity"
    assert renamed["files"] == ["/run/x-identity/jwt", "/run/x-identity/keys.json"]
    assert renamed["sdk_jwks_url"] == "http://x-core.vivified-system.svc:18080/x/keys"
    assert renamed["sdk_revocations_url"] == "http://x-core.vivified-system.svc:18080/x/revoked"
    assert env["VIVIFIED_X_BEAT"] == "http://x-core.vivified-system.svc:18080/x/beat"
    assert renamed["sdk_core_url"] == "http://x-core.vivified-system.svc:18080"
    assert renamed["issuer"] == ["x-issuer"] * 3
    assert renamed != as_shipped
