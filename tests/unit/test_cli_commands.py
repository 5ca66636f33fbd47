"""`vivified crd`, `vivified render`, `vivified operator` and `--version`."""

from __future__ import annotations

import argparse
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import yaml

from vivified.cli import build_parser, main

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "manifests" / "examples"
CRD_FILE = REPO / "crds" / "vivified.dev_vivifiedplugins.yaml"
JWT_LIKE = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+")


def _render(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["render", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --------------------------------------------------------------------------------------------
# crd
# --------------------------------------------------------------------------------------------


def test_crd_output_equals_committed_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crd"]) == 0
    assert capsys.readouterr().out == CRD_FILE.read_text(encoding="utf-8")


def test_crd_output_is_the_vivifiedplugin_crd(capsys: pytest.CaptureFixture[str]) -> None:
    main(["crd"])
    docs = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    (crd,) = docs
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == "vivifiedplugins.vivified.dev"


# --------------------------------------------------------------------------------------------
# render
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["user-management", "phi-records", "external-crm"])
def test_render_prints_the_children_as_a_yaml_stream(
    capsys: pytest.CaptureFixture[str], name: str
) -> None:
    code, out, err = _render(capsys, str(EXAMPLES / f"{name}.yaml"))
    assert code == 0, err
    assert out.startswith("---\n")
    docs = list(yaml.safe_load_all(out))
    assert [d["kind"] for d in docs] == [
        "ServiceAccount",
        "NetworkPolicy",
        "Service",
        "Deployment",
    ]
    for doc in docs:
        assert doc["metadata"]["name"] == name
        assert doc["metadata"]["namespace"] == "default"
        assert doc["metadata"]["labels"]["vivified.dev/plugin"] == name
        # no cluster, no uid: previews carry no ownerReferences
        assert "ownerReferences" not in doc["metadata"]


def test_render_contains_no_token_or_secret_data(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _render(capsys, str(EXAMPLES / "phi-records.yaml"))
    assert code == 0
    docs = list(yaml.safe_load_all(out))
    assert all(d["kind"] != "Secret" for d in docs)
    assert "stringData" not in out
    assert "PRIVATE KEY" not in out
    assert not JWT_LIKE.search(out)
    # the Deployment mounts the token Secret by name, never by value
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    secret_volumes = [v["secret"]["secretName"] for v in volumes if "secret" in v]
    assert secret_volumes == ["phi-records-token"]


def test_render_uses_namespace_option_then_metadata_namespace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _render(capsys, "-n", "plugins", str(EXAMPLES / "user-management.yaml"))
    assert code == 0
    assert {d["metadata"]["namespace"] for d in yaml.safe_load_all(out)} == {"plugins"}

    doc = yaml.safe_load((EXAMPLES / "user-management.yaml").read_text(encoding="utf-8"))
    doc["metadata"]["namespace"] = "team-a"
    path = tmp_path / "um.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    code, out, _ = _render(capsys, "-n", "plugins", str(path))
    assert code == 0
    assert {d["metadata"]["namespace"] for d in yaml.safe_load_all(out)} == {"team-a"}


def test_render_disabled_plugin_runs_no_pods_and_mounts_no_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = yaml.safe_load((EXAMPLES / "user-management.yaml").read_text(encoding="utf-8"))
    doc["spec"]["enabled"] = False
    path = tmp_path / "off.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    code, out, _ = _render(capsys, str(path))
    assert code == 0
    deployment = next(d for d in yaml.safe_load_all(out) if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 0
    assert "user-management-token" not in out


def test_render_multi_document_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = "".join(
        (EXAMPLES / f"{n}.yaml").read_text(encoding="utf-8") + "\n---\n"
        for n in ("user-management", "external-crm")
    )
    path = tmp_path / "two.yaml"
    path.write_text(text, encoding="utf-8")
    code, out, _ = _render(capsys, str(path))
    assert code == 0
    names = {d["metadata"]["name"] for d in yaml.safe_load_all(out)}
    assert names == {"user-management", "external-crm"}
    assert len(list(yaml.safe_load_all(out))) == 8


def test_render_invalid_resource_exit_1_errors_on_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = _render(capsys, str(EXAMPLES / "invalid" / "bad-resources.yaml"))
    assert code == 1
    assert out == ""
    assert "bad-resources.yaml#1 (report-builder): 2 errors" in err
    assert "spec.manifest.resources.memory_limit" in err


def test_render_refuses_a_bare_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = yaml.safe_load((EXAMPLES / "user-management.yaml").read_text(encoding="utf-8"))
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(doc["spec"]["manifest"]), encoding="utf-8")
    code, out, err = _render(capsys, str(path))
    assert code == 1
    assert out == ""
    assert "render needs a VivifiedPlugin resource" in err


def test_render_unusable_input_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _render(capsys, str(tmp_path / "missing.yaml"))
    assert (code, out) == (2, "")
    assert "no such file" in err
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: [\n", encoding="utf-8")
    code, _, err = _render(capsys, str(broken))
    assert code == 2
    assert "Traceback" not in err
    assert "invalid YAML at line" in err


def test_render_bad_operator_settings_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VIVIFIED_DEFAULT_CPU_LIMIT", "lots")
    code, out, err = _render(capsys, str(EXAMPLES / "user-management.yaml"))
    assert (code, out) == (2, "")
    assert "VIVIFIED_DEFAULT_CPU_LIMIT" in err


def test_render_honours_operator_settings_from_env(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VIVIFIED_DEFAULT_MEMORY_LIMIT_MB", "384")
    code, out, _ = _render(capsys, str(EXAMPLES / "user-management.yaml"))
    assert code == 0
    deployment = next(d for d in yaml.safe_load_all(out) if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["memory"] == "384Mi"


# --------------------------------------------------------------------------------------------
# operator (dispatch only; the runtime is tested elsewhere)
# --------------------------------------------------------------------------------------------


def _fake_shell(monkeypatch: pytest.MonkeyPatch) -> list[argparse.Namespace]:
    calls: list[argparse.Namespace] = []

    def run_operator(args: argparse.Namespace) -> int:
        calls.append(args)
        return 0

    module: Any = types.ModuleType("vivified.shell.main")
    module.run_operator = run_operator
    monkeypatch.setitem(sys.modules, "vivified.shell.main", module)
    return calls


def test_operator_dispatches_with_namespaces(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_shell(monkeypatch)
    assert main(["operator", "--namespace", "a", "-n", "b", "--log-level", "debug"]) == 0
    (args,) = calls
    assert args.namespace == ["a", "b"]
    assert args.liveness is None
    assert args.log_level == "DEBUG"


def test_operator_defaults_to_all_namespaces(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_shell(monkeypatch)
    assert main(["operator", "--liveness", "http://0.0.0.0:8080/healthz"]) == 0
    assert calls[0].namespace == []
    assert calls[0].liveness == "http://0.0.0.0:8080/healthz"


def test_operator_runtime_missing_is_reported(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "vivified.shell.main", None)  # import raises
    assert main(["operator"]) == 1
    assert "operator runtime" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# misc
# --------------------------------------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert re.fullmatch(r"vivified \S+\n", capsys.readouterr().out)


def test_every_command_is_documented() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    commands = set(sub.choices)
    assert commands == {
        "validate",
        "create-plugin",
        "crd",
        "render",
        "operator",
        "print-settings",
        "audit",
        "core",
        "events",
    }
    docs = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    for command in commands:
        assert f"vivified {command}" in docs
