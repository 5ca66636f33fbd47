"""What a user sees through kubectl: explain text, short names, columns and `kubectl wait`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.e2e.conftest import StartOperator
from tests.e2e.kube import Cluster, plugin_body

pytestmark = pytest.mark.cluster


def run(kubectl: Path, kubeconfig: Path, *args: str) -> str:
    return subprocess.run(
        [str(kubectl), "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


@pytest.mark.parametrize(
    ("path", "phrase"),
    [
        ("vivifiedplugins.spec.manifest.traits", "trait"),
        ("vivifiedplugins.spec.manifest.allowed_domains", "domain"),
        ("vivifiedplugins.spec.manifest.compliance.data_retention_days", "2555"),
        ("vivifiedplugins.spec.manifest.resources.memory_limit", "MB"),
        ("vp.spec.enabled", "revoked"),
    ],
)
def test_kubectl_explain_shows_the_field_descriptions(
    crd_installed: None, kubectl: Path, kubeconfig_path: Path, path: str, phrase: str
) -> None:
    text = run(kubectl, kubeconfig_path, "explain", path)
    assert "DESCRIPTION" in text
    assert phrase.lower() in text.lower()


def test_short_names_columns_and_wait(
    cluster: Cluster,
    namespace: str,
    start_operator: StartOperator,
    kubectl: Path,
    kubeconfig_path: Path,
) -> None:
    start_operator(namespace)
    cluster.apply_plugin(namespace, plugin_body("seen"))
    run(
        kubectl,
        kubeconfig_path,
        "wait",
        "-n",
        namespace,
        "--for=condition=Ready",
        "vp/seen",
        "--timeout=20s",
    )
    for name in ("vivifiedplugins", "vp", "vplugin"):
        table = run(kubectl, kubeconfig_path, "get", name, "-n", namespace)
        header, row = table.strip().splitlines()
        assert header.split() == ["NAME", "VERSION", "PHASE", "HEALTH", "READY", "AGE"]
        assert row.split()[:5] == ["seen", "1.0.0", "Active", "unknown", "1/1"]
    assert "seen" in run(kubectl, kubeconfig_path, "get", "vivified", "-n", namespace)
