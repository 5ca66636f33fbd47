"""`vivified create-plugin`: the scaffold validates, is safe to build, and never clobbers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import vivified_sdk
from vivified.cli import main
from vivified.scaffold import ScaffoldError, build_manifest, create_plugin, render_files

EXPECTED_FILES = {
    "manifest.json",
    "plugin.yaml",
    "app/__init__.py",
    "app/main.py",
    "tests/__init__.py",
    "tests/test_app.py",
    "requirements.txt",
    "Dockerfile",
    "README.md",
    ".dockerignore",
}


@pytest.fixture
def billing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    assert main(["create-plugin", "billing", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"Created plugin 'billing' in {tmp_path / 'billing'}" in out
    return tmp_path / "billing"


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_creates_the_expected_files(billing: Path) -> None:
    assert _files(billing) == EXPECTED_FILES


def test_manifest_and_plugin_yaml_pass_validate(
    billing: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["validate", "-o", "json", str(billing / "manifest.json"), str(billing / "plugin.yaml")]
    )
    result = json.loads(capsys.readouterr().out)
    assert code == 0, result
    assert [(r["id"], r["valid"]) for r in result] == [("billing", True), ("billing", True)]


def test_plugin_yaml_embeds_manifest_json(billing: Path) -> None:
    manifest = json.loads((billing / "manifest.json").read_text(encoding="utf-8"))
    resource = yaml.safe_load((billing / "plugin.yaml").read_text(encoding="utf-8"))
    assert resource["apiVersion"] == "vivified.dev/v1alpha1"
    assert resource["kind"] == "VivifiedPlugin"
    assert resource["metadata"]["name"] == "billing"
    assert resource["spec"]["manifest"] == manifest
    assert resource["spec"]["image"] == "registry.example.com/billing:0.1.0"


def test_manifest_defaults(billing: Path) -> None:
    manifest = json.loads((billing / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["version"] == "0.1.0"
    assert manifest["security"] == {
        "authentication_required": True,
        "data_classification": ["internal"],
    }
    assert manifest["health_check"] == {"type": "http", "port": 8000, "path": "/health"}
    assert manifest["endpoints"]["health"] == "/health"
    assert set(manifest["resources"]) == {"memory_limit", "cpu_limit"}


def test_rendered_plugin_yaml_probes_the_app_health_endpoint(
    billing: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["render", str(billing / "plugin.yaml")]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {
        "path": "/health",
        "port": 8000,
        "scheme": "HTTP",
    }


def test_no_placeholder_left_unsubstituted(billing: Path) -> None:
    for rel in EXPECTED_FILES:
        text = (billing / rel).read_text(encoding="utf-8")
        assert "${" not in text, rel
        assert "$plugin" not in text, rel


def test_app_is_python_with_health_and_example_endpoint(billing: Path) -> None:
    source = (billing / "app" / "main.py").read_text(encoding="utf-8")
    compile(source, "app/main.py", "exec")  # syntactically valid after substitution
    assert '@app.get("/health")' in source
    assert '@app.get("/api/hello")' in source
    assert '"plugin": PLUGIN_ID' in source
    assert '"uptime"' in source
    assert 'os.environ.get(contract.ENV_PLUGIN_ID, "billing")' in source
    # the example endpoint is authenticated, as the manifest promises
    assert "Depends(require_caller)" in source
    # verification is the SDK's (ES256 only, JWKS, issuer, audience, expiry, revocation)
    assert "from vivified_sdk import" in source
    assert "TokenVerifier.from_env()" in source
    assert "async with VERIFIER:" in source  # background refresh while the app serves


def test_requirements_include_the_sdk(billing: Path) -> None:
    text = (billing / "requirements.txt").read_text(encoding="utf-8")
    assert re.search(rf"^vivified-sdk=={re.escape(vivified_sdk.__version__)}$", text, re.MULTILINE)
    # the SDK alone: never the operator distribution (kopf, the Kubernetes client, ...)
    assert "vivified-operator" not in text
    assert not re.search(r"^(kopf|kubernetes|pyyaml|pydantic)\b", text, re.MULTILINE | re.I)


def test_requirements_are_pinned(billing: Path) -> None:
    lines = [
        line.strip()
        for line in (billing / "requirements.txt").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][0-9A-Za-z.]*", line) for line in lines)
    assert any(line.startswith("fastapi==") for line in lines)


def test_dockerfile_is_slim_non_root_numeric_and_cacheless(billing: Path) -> None:
    dockerfile = (billing / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.\d+-slim$", dockerfile, re.MULTILINE)
    users = re.findall(r"^USER (\S+)$", dockerfile, re.MULTILINE)
    assert len(users) == 1
    uid, _, gid = users[0].partition(":")
    assert uid.isdigit()
    assert int(uid) > 0
    assert gid.isdigit()
    assert int(gid) > 0
    assert "--no-cache-dir" in dockerfile
    assert "EXPOSE 8000" in dockerfile
    # USER comes after every RUN: nothing runs as root at container start
    assert dockerfile.rindex("RUN ") < dockerfile.index("USER ")


def test_contract_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["create-plugin", "files", "--dir", str(tmp_path), "--contract", "StoragePlugin"]) == 0
    )
    manifest = json.loads((tmp_path / "files" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["contracts"] == ["StoragePlugin"]
    assert main(["create-plugin", "x", "--dir", str(tmp_path), "--contract", "Nope"]) == 2
    capsys.readouterr()


def test_refuses_to_overwrite_a_non_empty_directory(
    billing: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (billing / "manifest.json").write_text("{}\n", encoding="utf-8")
    assert main(["create-plugin", "billing", "--dir", str(billing.parent)]) == 2
    err = capsys.readouterr().err
    assert "already exists and is not empty (use --force" in err
    assert (billing / "manifest.json").read_text(encoding="utf-8") == "{}\n"


def test_force_overwrites_scaffold_files_and_keeps_others(
    billing: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (billing / "manifest.json").write_text("{}\n", encoding="utf-8")
    (billing / "notes.txt").write_text("mine\n", encoding="utf-8")
    assert main(["create-plugin", "billing", "--dir", str(billing.parent), "--force"]) == 0
    assert json.loads((billing / "manifest.json").read_text(encoding="utf-8"))["id"] == "billing"
    assert (billing / "notes.txt").read_text(encoding="utf-8") == "mine\n"
    capsys.readouterr()


def test_existing_empty_directory_is_fine(tmp_path: Path) -> None:
    (tmp_path / "billing").mkdir()
    assert create_plugin("billing", tmp_path) == tmp_path / "billing"
    assert _files(tmp_path / "billing") == EXPECTED_FILES


def test_target_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "billing").write_text("x", encoding="utf-8")
    with pytest.raises(ScaffoldError, match="not a directory"):
        create_plugin("billing", tmp_path)


@pytest.mark.parametrize(
    "name",
    [
        "Billing",
        "1billing",
        "-billing",
        "billing-",
        "bill_ing",
        "bill--ing",
        "../evil",
        "a" * 51,
        "bill ing",
        "",
    ],
)
def test_rejects_bad_names(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    assert main(["create-plugin", "--dir", str(tmp_path), "--", name]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vivified: error: invalid plugin name")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["billing", "user-management", "a1", "x" * 50, "crm-v2-sync"])
def test_every_valid_name_yields_a_valid_manifest(name: str) -> None:
    from vivified.policy import validate_manifest  # noqa: PLC0415

    generated = {f.path: f.text for f in render_files(name)}
    assert validate_manifest(json.loads(generated["manifest.json"])).valid
    assert build_manifest(name)["id"] == name


def test_the_scaffolds_own_tests_pass(billing: Path) -> None:
    """The generated app, run by the generated tests (FastAPI, the SDK and pytest are here;
    tests/integration/test_sdk_distribution.py runs them in a venv with nothing else)."""
    pytest.importorskip("fastapi")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=billing,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
