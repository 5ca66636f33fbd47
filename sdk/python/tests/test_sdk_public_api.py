"""The SDK's public surface, pinned (as httpx does): adding a name is a deliberate change here.

The lanes add their client functions in ``_invoke`` (operator lane), ``_events`` (event lane)
and ``_egress`` (proxy lane) and export them from ``vivified_sdk``; extend ``PUBLIC`` then.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import vivified_sdk
from vivified_sdk import contract

SDK_ROOT = Path(__file__).resolve().parents[1]

PUBLIC = {
    "PROTOCOL_VERSION",
    "AsyncEgressTransport",
    "EgressNotConfigured",
    "EgressTransport",
    "async_egress_client",
    "egress_client",
    "proxy_url_from_env",
    "refusal_reason",
    "CallIdentity",
    "CallVerifier",
    "CoreClient",
    "EventHandler",
    "EventReceiver",
    "JwksFile",
    "JwksSource",
    "JwksUrl",
    "PublishRefused",
    "RevocationFile",
    "RevocationListError",
    "RevocationSource",
    "RevocationUrl",
    "SeenEvents",
    "StaticJwks",
    "StaticRevocations",
    "StrictJSONError",
    "TokenAuth",
    "TokenFile",
    "TokenFileError",
    "TokenInvalid",
    "TokenVerifier",
    "VerifiedToken",
    "VerifierUnavailable",
    "__version__",
    "contract",
    "loads_strict",
    "parse_revocations",
    "publish",
    "subject_for",
    "verify_call_token",
    "verify_plugin_token",
}


def test_public_names_are_pinned() -> None:
    assert set(vivified_sdk.__all__) == PUBLIC
    for name in vivified_sdk.__all__:
        assert hasattr(vivified_sdk, name), name


def test_public_classes_claim_the_public_module() -> None:
    """Private modules stay private: nothing public asks to be imported from ``_x``."""
    public = {n for n in PUBLIC if isinstance(getattr(vivified_sdk, n), type)}
    assert public  # classes, protocols, exceptions
    for name in public:
        assert getattr(vivified_sdk, name).__module__.startswith("vivified_sdk")


def test_contract_names_are_pinned_and_all_constants() -> None:
    names = [n for n in vars(contract) if n.isupper()]
    assert sorted(names) == sorted(contract.__all__)
    for name in contract.__all__:
        assert isinstance(getattr(contract, name), str | int | tuple), name


def test_protocol_version_is_the_api_prefix() -> None:
    major = contract.PROTOCOL_VERSION.split(".")[0]
    assert f"/v{major}" == contract.API_PREFIX
    core_paths = [getattr(contract, n) for n in contract.__all__ if n.startswith("CORE_")]
    paths = [p for p in core_paths if isinstance(p, str) and p.startswith("/")]
    assert paths
    assert all(p.startswith(contract.API_PREFIX + "/") for p in paths)


def test_every_lane_is_implemented() -> None:
    invoke = importlib.import_module("vivified_sdk._invoke")
    egress = importlib.import_module("vivified_sdk._egress")
    events = importlib.import_module("vivified_sdk._events")
    for module in (invoke, egress, events):
        assert module.__doc__
        assert "Reserved for issue" not in module.__doc__
    assert vivified_sdk.CallVerifier is invoke.CallVerifier
    assert vivified_sdk.egress_client is egress.egress_client
    assert set(egress.__all__) <= PUBLIC
    assert vivified_sdk.EventReceiver is events.EventReceiver
    assert vivified_sdk.publish is events.publish
    assert set(events.__all__) <= PUBLIC


def test_version_matches_the_distribution() -> None:
    assert vivified_sdk.__version__ == importlib.metadata.version("vivified-sdk")
    requires = importlib.metadata.requires("vivified-sdk") or []
    names = sorted(re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0] for r in requires)
    assert names == ["httpx", "pyjwt"]
    assert any(r.startswith("pyjwt[crypto]") for r in requires)


def test_importing_the_sdk_loads_no_operator_stack() -> None:
    code = (
        "import sys, vivified_sdk, vivified_sdk.contract; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'kopf', 'kubernetes', 'aiohttp', 'pydantic', 'yaml', 'vivified'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_readme_is_docs_sdk() -> None:
    """The distribution's README and the repository's docs/sdk.md are one text."""
    readme = (SDK_ROOT / "README.md").read_text(encoding="utf-8")
    docs = SDK_ROOT.parents[1] / "docs" / "sdk.md"
    if docs.exists():  # absent when the SDK is tested from its own sdist
        assert docs.read_text(encoding="utf-8") == readme
    assert "Quick start" in readme
