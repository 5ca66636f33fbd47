"""`vivified validate`: verdicts, exit codes, the JSON contract and hostile input."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.seed import user_management_manifest

from vivified.cli import Streams, main

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "manifests" / "examples"
VALID_EXAMPLES = sorted(EXAMPLES.glob("*.yaml"))
INVALID_EXAMPLES = sorted((EXAMPLES / "invalid").glob("*.yaml"))

#: The seed's user-management manifest, verbatim ("Manifest Details" section).
SEED_MANIFEST: dict[str, Any] = user_management_manifest()


def _cr(manifest: dict[str, Any], name: str | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "vivified.dev/v1alpha1",
        "kind": "VivifiedPlugin",
        "metadata": {"name": name if name is not None else manifest["id"]},
        "spec": {"image": "registry.example.com/x/y:1.0.0", "manifest": manifest, **spec},
    }


class _NoAliasDumper(yaml.SafeDumper):
    """Writes shared sub-objects out in full: the loader (rightly) refuses YAML aliases."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def _dump_all(docs: list[Any]) -> str:
    return yaml.dump_all(docs, Dumper=_NoAliasDumper, sort_keys=False)


def _write(tmp_path: Path, name: str, content: object) -> str:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    elif name.endswith(".json"):
        path.write_text(json.dumps(content), encoding="utf-8")
    else:
        path.write_text(_dump_all([content]), encoding="utf-8")
    return str(path)


def _json_run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
    code = main(["validate", "--output", "json", *args])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def _assert_shape(item: Any) -> None:
    """The DESIGN contract, exactly: four keys with these types, errors are {field, message}."""
    assert isinstance(item, dict)
    assert set(item) == {"source", "id", "valid", "errors"}
    assert isinstance(item["source"], str)
    assert item["id"] is None or isinstance(item["id"], str)
    assert isinstance(item["valid"], bool)
    assert isinstance(item["errors"], list)
    for error in item["errors"]:
        assert set(error) == {"field", "message"}
        assert isinstance(error["field"], str)
        assert isinstance(error["message"], str)
        assert error["message"]
    assert item["valid"] == (item["errors"] == [])


# --------------------------------------------------------------------------------------------
# Valid input
# --------------------------------------------------------------------------------------------


def test_seed_manifest_json_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "user-management.json", SEED_MANIFEST)
    assert main(["validate", path]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"✓ {path} (user-management) valid\n"
    assert captured.err == ""


def test_seed_manifest_as_yaml_manifest_is_valid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "um.yaml", SEED_MANIFEST)
    code, result, _ = _json_run(capsys, path)
    assert code == 0
    assert result == [{"source": path, "id": "user-management", "valid": True, "errors": []}]


def test_seed_manifest_in_a_vivifiedplugin_is_valid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "um-cr.yaml", _cr(SEED_MANIFEST))
    code, result, _ = _json_run(capsys, path)
    assert code == 0
    assert result[0]["valid"] is True


# --------------------------------------------------------------------------------------------
# Invalid input and the JSON contract
# --------------------------------------------------------------------------------------------


def test_invalid_manifest_exit_1_and_text_lists_every_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = {**SEED_MANIFEST, "traits": ["admin"], "security": {"authentication_required": False}}
    path = _write(tmp_path, "bad.json", bad)
    assert main(["validate", path]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"✗ {path} (user-management): ")
    count = int(out[0].rsplit(": ", 1)[1].split()[0])
    assert count == len(out) - 1 >= 3
    fields = [line.strip().split(":", 1)[0] for line in out[1:]]
    assert "traits[0]" in fields
    assert "security.authentication_required" in fields
    assert "security.data_classification" in fields


def test_json_output_shape_is_exact_for_valid_and_invalid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _write(tmp_path, "good.json", SEED_MANIFEST)
    bad = _write(tmp_path, "bad.yaml", _cr({**SEED_MANIFEST, "traits": ["root"]}, name="other"))
    code, result, err = _json_run(capsys, good, bad)
    assert code == 1
    assert err == ""
    assert isinstance(result, list)
    assert len(result) == 2
    for item in result:
        _assert_shape(item)
    assert [r["valid"] for r in result] == [True, False]
    fields = {e["field"] for e in result[1]["errors"]}
    assert {"metadata.name", "spec.manifest.traits[0]"} <= fields


def test_id_is_null_when_not_a_string(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "m.json", {**SEED_MANIFEST, "id": 42})
    code, result, _ = _json_run(capsys, path)
    assert code == 1
    _assert_shape(result[0])
    assert result[0]["id"] is None
    assert any(e["field"] == "id" for e in result[0]["errors"])


def test_warnings_are_shown_in_text_but_never_in_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # "pii" is a legacy alias of handles_pii: accepted, with a warning
    manifest = {**SEED_MANIFEST, "traits": ["pii", "audit_required"]}
    path = _write(tmp_path, "legacy.json", manifest)
    assert main(["validate", path]) == 0
    out = capsys.readouterr().out
    assert "valid, 1 warning" in out
    assert "  warning: traits[0]: " in out
    code, result, _ = _json_run(capsys, path)
    assert code == 0
    _assert_shape(result[0])


def test_multi_document_sources_are_numbered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = {**SEED_MANIFEST, "id": "other-plugin", "traits": ["admin"]}
    text = _dump_all([_cr(SEED_MANIFEST), _cr(other)])
    path = _write(tmp_path, "both.yaml", text)
    code, result, _ = _json_run(capsys, path)
    assert code == 1
    assert [(r["source"], r["id"], r["valid"]) for r in result] == [
        (f"{path}#1", "user-management", True),
        (f"{path}#2", "other-plugin", False),
    ]


def test_kubectl_list_output_is_validated_item_by_item(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`kubectl get vp -o yaml | vivified validate -`: server fields and status are fine."""
    live = _cr(SEED_MANIFEST)
    live["metadata"].update(
        {"namespace": "plugins", "uid": "0b9c", "resourceVersion": "42", "generation": 3}
    )
    live["status"] = {"phase": "Active"}
    broken = _cr({**SEED_MANIFEST, "id": "second", "traits": ["system"]})
    listing = {"apiVersion": "v1", "kind": "List", "items": [live, broken]}
    path = _write(tmp_path, "live.yaml", listing)
    code, result, _ = _json_run(capsys, path)
    assert code == 1
    assert [(r["source"], r["valid"]) for r in result] == [
        (f"{path}/items[0]", True),
        (f"{path}/items[1]", False),
    ]


def test_metadata_name_must_equal_manifest_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "cr.yaml", _cr(SEED_MANIFEST, name="users"))
    code, result, _ = _json_run(capsys, path)
    assert code == 1
    assert result[0]["errors"] == [
        {
            "field": "metadata.name",
            "message": "must equal spec.manifest.id ('user-management'), got 'users'",
        }
    ]


def test_wrong_api_version_and_unknown_top_level_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cr = _cr(SEED_MANIFEST)
    cr["apiVersion"] = "vivified.dev/v1"
    cr["specs"] = {}
    path = _write(tmp_path, "cr.yaml", cr)
    code, result, _ = _json_run(capsys, path)
    assert code == 1
    fields = [e["field"] for e in result[0]["errors"]]
    assert fields == ["apiVersion", "specs"]


def test_cr_without_spec_is_invalid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cr = _cr(SEED_MANIFEST)
    del cr["spec"]
    code, result, _ = _json_run(capsys, _write(tmp_path, "cr.yaml", cr))
    assert code == 1
    assert result[0]["id"] is None
    assert [e["field"] for e in result[0]["errors"]] == ["spec"]


@pytest.mark.parametrize(
    ("content", "field", "fragment"),
    [
        ({"apiVersion": "apps/v1", "kind": "Deployment"}, "kind", "got 'Deployment'"),
        ("- a\n- b\n", "", "got a list"),
        ("just a string\n", "", "got a string"),
    ],
)
def test_documents_that_are_neither_manifest_nor_plugin(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: object,
    field: str,
    fragment: str,
) -> None:
    code, result, _ = _json_run(capsys, _write(tmp_path, "other.yaml", content))
    assert code == 1
    _assert_shape(result[0])
    (error,) = result[0]["errors"]
    assert error["field"] == field
    assert fragment in error["message"]


# --------------------------------------------------------------------------------------------
# Unusable input: exit 2, one clear line, never a traceback
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("broken.json", '{\n  "id": "x",\n  "name": "n",\n}', "invalid JSON at line 4, column 1"),
        ("broken.yaml", "id: x\ntraits: [a, b\nname: n\n", "invalid YAML at line"),
        ("empty.yaml", "", "empty input"),
        ("anchors.yaml", "a: &x [1]\nb: *x\n", "anchors (&name) are not allowed"),
        ("dupes.yaml", "id: x\ntraits: [a]\ntraits: [admin]\n", "duplicate key 'traits'"),
        ("dupes.json", '{"id": "x", "id": "y"}', "duplicate key 'id'"),
    ],
)
def test_unusable_input_exit_2_without_traceback(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: str,
    expected: str,
) -> None:
    path = _write(tmp_path, name, content)
    assert main(["validate", path]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Traceback" not in captured.err
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"vivified: error: {path}: ")
    assert expected in lines[0]


def test_unusable_file_still_reports_the_usable_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _write(tmp_path, "good.json", SEED_MANIFEST)
    missing = str(tmp_path / "missing.json")
    code, result, err = _json_run(capsys, missing, good)
    assert code == 2
    assert [r["source"] for r in result] == [good]
    assert err == f"vivified: error: {missing}: no such file\n"


def test_unusable_wins_over_invalid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _write(tmp_path, "bad.json", {"id": "x"})
    broken = _write(tmp_path, "broken.json", "{")
    assert main(["validate", bad, broken]) == 2
    assert "✗" in capsys.readouterr().out


def test_all_unusable_json_prints_an_empty_array(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, result, err = _json_run(capsys, str(tmp_path / "nope.yaml"))
    assert code == 2
    assert result == []
    assert "no such file" in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate"]) == 2
    assert main(["validate", "--output", "xml", "f.json"]) == 2
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    assert "Traceback" not in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Standard input
# --------------------------------------------------------------------------------------------


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_stdin_json(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _stdin(monkeypatch, json.dumps(SEED_MANIFEST).encode())
    code, result, _ = _json_run(capsys, "-")
    assert code == 0
    assert result == [{"source": "<stdin>", "id": "user-management", "valid": True, "errors": []}]


def test_stdin_multi_document_yaml(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = {**SEED_MANIFEST, "id": "second", "version": "1"}
    _stdin(monkeypatch, _dump_all([_cr(SEED_MANIFEST), _cr(bad)]).encode())
    assert main(["validate", "-"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "✓ <stdin>#1 (user-management) valid"
    assert out[1] == "✗ <stdin>#2 (second): 1 error"
    assert out[2].startswith("  spec.manifest.version: ")


def test_stdin_malformed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _stdin(monkeypatch, b'{"id": ')
    assert main(["validate", "-"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vivified: error: <stdin>: invalid JSON at line 1, column 8")


# --------------------------------------------------------------------------------------------
# The shipped examples
# --------------------------------------------------------------------------------------------


def test_example_directories_are_populated() -> None:
    assert len(VALID_EXAMPLES) >= 3
    assert len(INVALID_EXAMPLES) >= 5


@pytest.mark.parametrize("path", VALID_EXAMPLES, ids=lambda p: p.name)
def test_valid_examples_pass(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, result, _ = _json_run(capsys, str(path))
    assert code == 0, result
    for item in result:
        _assert_shape(item)
        assert item["valid"] is True
        assert item["id"] == path.stem


@pytest.mark.parametrize("path", INVALID_EXAMPLES, ids=lambda p: p.name)
def test_invalid_examples_fail(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, result, _ = _json_run(capsys, str(path))
    assert code == 1
    assert result
    for item in result:
        _assert_shape(item)
        assert item["valid"] is False


def test_user_management_example_embeds_the_seed_manifest_verbatim() -> None:
    doc = yaml.safe_load((EXAMPLES / "user-management.yaml").read_text(encoding="utf-8"))
    manifest = dict(doc["spec"]["manifest"])
    assert manifest.pop("health_check") == {"type": "http", "port": 8000, "path": "/health"}
    assert manifest.pop("events") == {"publishes": ["UserCreated"]}  # Vivified's extension
    assert manifest == SEED_MANIFEST


_README_BLOCK = re.compile(r"<!-- BEGIN output: (\S+) -->\n.*?<!-- END output -->\n", re.S)


def test_examples_readme_quotes_current_validator_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """manifests/examples/README.md quotes `vivified validate`; it must not drift from it.

    Set UPDATE_EXAMPLES_README=1 to rewrite the quoted blocks after a message change.
    """
    readme_path = EXAMPLES / "README.md"
    readme = readme_path.read_text(encoding="utf-8")
    monkeypatch.chdir(REPO)

    def block(match: re.Match[str]) -> str:
        pattern = match.group(1)
        files = sorted(str(p.relative_to(REPO)) for p in REPO.glob(pattern))
        out = io.StringIO()
        main(["validate", *files], Streams(out, io.StringIO()))
        return (
            f"<!-- BEGIN output: {pattern} -->\n```console\n$ vivified validate {pattern}\n"
            f"{out.getvalue()}```\n<!-- END output -->\n"
        )

    expected = _README_BLOCK.sub(block, readme)
    assert len(_README_BLOCK.findall(readme)) == 2
    if os.environ.get("UPDATE_EXAMPLES_README") == "1":
        readme_path.write_text(expected, encoding="utf-8")
    assert readme == expected, (
        "manifests/examples/README.md is stale: run "
        "UPDATE_EXAMPLES_README=1 pytest tests/unit/test_cli_validate.py -k readme"
    )


# --------------------------------------------------------------------------------------------
# The installed console script
# --------------------------------------------------------------------------------------------


def _script() -> str:
    script = Path(sys.executable).parent / "vivified"
    if not script.exists():  # pragma: no cover - package not installed into this interpreter
        pytest.skip("the vivified console script is not installed")
    return str(script)


def test_console_script_end_to_end(tmp_path: Path) -> None:
    good = _write(tmp_path, "good.json", SEED_MANIFEST)
    broken = _write(tmp_path, "broken.yaml", "a: [\n")
    ok = subprocess.run(
        [_script(), "validate", "-o", "json", good], capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)[0]["valid"] is True
    invalid = subprocess.run(
        [_script(), "validate", str(INVALID_EXAMPLES[0])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert invalid.returncode == 1
    unusable = subprocess.run(
        [_script(), "validate", broken], capture_output=True, text=True, check=False
    )
    assert unusable.returncode == 2
    assert "Traceback" not in unusable.stderr
    assert unusable.stderr.startswith(f"vivified: error: {broken}: invalid YAML at line")


def test_console_script_reads_stdin_and_prints_version() -> None:
    proc = subprocess.run(
        [_script(), "validate", "-"],
        input=json.dumps(SEED_MANIFEST),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("✓ <stdin> (user-management) valid") or proc.stdout.startswith(
        "OK <stdin>"
    )
    version = subprocess.run([_script(), "--version"], capture_output=True, text=True, check=False)
    assert version.returncode == 0
    assert version.stdout.startswith("vivified ")


def test_validate_does_not_import_the_operator_runtime(tmp_path: Path) -> None:
    """Fast start for pre-commit hooks: kopf and the Kubernetes client stay unloaded."""
    good = _write(tmp_path, "good.json", SEED_MANIFEST)
    code = (
        "import sys\n"
        "from vivified.cli import main\n"
        f"rc = main(['validate', {good!r}])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('kopf', 'kubernetes'))\n"
        "assert rc == 0 and not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
