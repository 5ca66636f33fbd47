"""The pinned kubectl and helm (fixtures `kubectl`, `helm`) work against the cluster."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cluster_support import KubeCluster

pytestmark = pytest.mark.cluster

CHART_YAML = """\
apiVersion: v2
name: tiny
version: 0.1.0
kubeVersion: ">=1.36.0-0"
"""
DEPLOYMENT_YAML = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  replicas: 1
  selector:
    matchLabels: {app: tiny}
  template:
    metadata:
      labels: {app: tiny}
    spec:
      containers:
      - name: tiny
        image: registry.invalid/tiny:{{ .Capabilities.KubeVersion.Minor }}
"""


def run(*argv: str | Path) -> str:
    result = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, f"{argv}: {result.stderr}"
    return result.stdout


@pytest.fixture
def tiny_chart(tmp_path: Path) -> Path:
    """A chart that only installs on Kubernetes >= 1.36."""
    chart = tmp_path / "tiny"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(CHART_YAML)
    (chart / "templates" / "deployment.yaml").write_text(DEPLOYMENT_YAML)
    return chart


def test_kubectl_reports_its_and_the_servers_version(
    kubectl: Path, kubeconfig_path: Path, kube_cluster: KubeCluster
) -> None:
    versions = json.loads(run(kubectl, "--kubeconfig", kubeconfig_path, "version", "-o", "json"))
    assert versions["clientVersion"]["gitVersion"].startswith("v1.36.")
    if kube_cluster.local:
        assert versions["serverVersion"]["gitVersion"] == versions["clientVersion"]["gitVersion"]


def test_helm_templates_for_the_pinned_kubernetes_version_offline(
    helm: Path, tiny_chart: Path
) -> None:
    """Without a cluster helm assumes its built-in Kubernetes version (stamped 1.36)."""
    assert run(helm, "version", "--short").startswith("v3.21.")
    rendered = run(helm, "template", "demo", tiny_chart)
    assert "image: registry.invalid/tiny:36" in rendered


def test_helm_installs_a_chart_and_waits_for_it(
    helm: Path, kubeconfig_path: Path, namespace: str, tiny_chart: Path
) -> None:
    run(
        helm,
        "--kubeconfig",
        kubeconfig_path,
        "install",
        "demo",
        tiny_chart,
        "--namespace",
        namespace,
        "--wait",
        "--timeout",
        "90s",
    )
    status = json.loads(
        run(helm, "--kubeconfig", kubeconfig_path, "status", "demo", "-n", namespace, "-o", "json")
    )
    assert status["info"]["status"] == "deployed"
