"""The real-node tier's support: is there a real node, its images, the chart installed on it.

The local test cluster starts one real node (hack/cluster/node.py) next to the kwok node(s)
when it runs as root on Linux. Tests of this tier carry `@pytest.mark.real_node`; they skip
when the cluster has no real node, except in CI (`CI=true`), where a missing real node fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tests.e2e.kube import REPO, wait_for

from cluster_support import KubeCluster

sys.path.insert(0, str(REPO / "hack" / "cluster"))
import node as real_node

NODE_NAME = real_node.NODE_NAME
REAL_NAMESPACE_ANNOTATIONS = real_node.REAL_NAMESPACE_ANNOTATIONS
TEST_HOSTS = {h.name: h for h in real_node.TEST_HOSTS}

#: TEST ONLY settings of the real release's core (docs/proxy.md). The test hosts hold private
#: addresses (10.250.<i>.2 in TEST_NET), which the proxy refuses in every real installation;
#: on this test ground exactly those addresses count as public, so the proxy lane can reach
#: api.partner.test. The allowlist still decides (other.test stays refused), and neither the
#: hosts' gateways (the node's own addresses) nor the "internet" range are in it.
CORE_TEST_ENV = {
    "VIVIFIED_PROXY_TEST_ALLOW_NETWORKS": ",".join(
        f"{h.address()}/32" for h in real_node.TEST_HOSTS
    ),
}


def core_test_env_helm_args() -> list[str]:
    """``helm --set`` arguments that put CORE_TEST_ENV into the core's ``core.extraEnv``."""
    args: list[str] = []
    for i, (name, value) in enumerate(sorted(CORE_TEST_ENV.items())):
        escaped = value.replace(",", "\\,")  # --set splits on unescaped commas
        args += ["--set", f"core.extraEnv[{i}].name={name}"]
        args += ["--set-string", f"core.extraEnv[{i}].value={escaped}"]
    return args


@dataclass
class RealNode:
    state_dir: Path
    images: dict[str, str]
    kubeconfig: Path
    kubectl: Path

    def k(
        self, *args: str, check: bool = True, stdin: str | None = None, timeout: int = 180
    ) -> str:
        result = subprocess.run(
            [str(self.kubectl), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stdout}\n{result.stderr}")
        return result.stdout + (result.stderr if not check else "")

    def exec_python(self, namespace: str, pod: str, code: str, timeout: int = 120) -> Any:
        """Runs CODE with the pod's python; CODE prints one JSON document."""
        out = self.k(
            "exec", "-n", namespace, pod, "--", "python", "-c", textwrap.dedent(code),
            timeout=timeout,
        )  # fmt: skip
        return json.loads(out.strip().splitlines()[-1])


def find_real_node(kube_cluster: KubeCluster, k8s_api: client.ApiClient, kubectl: Path) -> RealNode:
    why = ""
    if not kube_cluster.local or kube_cluster.state_dir is None:
        why = "the real-node tier needs the local test cluster"
    else:
        images_file = kube_cluster.state_dir / "images.json"
        try:
            node = client.CoreV1Api(k8s_api).read_node(NODE_NAME)
            ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)
        except ApiException:
            ready = False
        if not ready or not images_file.exists():
            why = f"no real node in this cluster ({real_node.available() or 'not started'})"
    if why:
        if os.environ.get("CI") == "true" and kube_cluster.local:
            pytest.fail(f"CI runs the real-node tier, but {why}")
        pytest.skip(why)
    assert kube_cluster.state_dir is not None
    return RealNode(
        state_dir=kube_cluster.state_dir,
        images=json.loads((kube_cluster.state_dir / "images.json").read_text()),
        kubeconfig=kube_cluster.kubeconfig,
        kubectl=kubectl,
    )


def create_real_namespace(k8s_api: client.ApiClient, name: str, labels: dict[str, str]) -> None:
    """A namespace whose pods all land on the real node (annotations → admission plugins)."""
    core = client.CoreV1Api(k8s_api)
    core.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(
                name=name,
                labels={"vivified.dev/test": "true", **labels},
                annotations=dict(REAL_NAMESPACE_ANNOTATIONS),
            )
        )
    )

    def has_sa() -> bool:
        return bool(core.read_namespaced_service_account("default", name))

    wait_for(f"namespace {name}", has_sa, timeout=60)


def delete_namespace(k8s_api: client.ApiClient, name: str, wait: bool = False) -> None:
    core = client.CoreV1Api(k8s_api)
    try:
        core.delete_namespace(name)
    except ApiException as error:
        if error.status != 404:
            raise
        return
    if wait:

        def gone() -> bool:
            try:
                core.read_namespace(name)
            except ApiException as error:
                return error.status == 404
            return False

        wait_for(f"namespace {name} deleted", gone, timeout=120)


#: Connects to each (host, port) with a short timeout; prints {"host:port": "ok" | error}.
CONNECT_CODE = """
import json, socket, sys
targets = json.loads(sys.argv[1]) if len(sys.argv) > 1 else TARGETS
out = {}
for host, port in targets:
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((host, port))
        out[f"{host}:{port}"] = "ok"
    except OSError as e:
        out[f"{host}:{port}"] = type(e).__name__
    finally:
        s.close()
print(json.dumps(out))
"""


def connect_results(
    node: RealNode, namespace: str, pod: str, targets: list[tuple[str, int]]
) -> dict[str, str]:
    code = f"TARGETS = {json.dumps(targets)}\n" + CONNECT_CODE
    result: dict[str, str] = node.exec_python(namespace, pod, code)
    return result


# -- pods on the real node ------------------------------------------------------------------


def run_helm(
    helm: Path, kubeconfig: Path, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """helm against the test cluster; fails with its output unless CHECK is off."""
    result = subprocess.run(
        [str(helm), "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)}: {result.stdout}\n{result.stderr}")
    return result


def container_pid(node: RealNode, container_id: str) -> int:
    """Host PID of a running container's main process (containerd's task list): a test acts on
    it from the host (SIGSTOP, SIGKILL) as a crash or a hang would."""
    sock = real_node.RealNode(node.state_dir).containerd_sock
    out = subprocess.run(
        ["/usr/bin/ctr", "--address", str(sock), "-n", "k8s.io", "tasks", "ls"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == container_id and parts[2] == "RUNNING":
            return int(parts[1])
    raise AssertionError(f"no running task for {container_id}")


def pods(node: RealNode, namespace: str, selector: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(
        node.k("get", "pods", "-n", namespace, "-l", selector, "-o", "json")
    )["items"]
    return items


def running_pod(node: RealNode, namespace: str, selector: str, timeout: float = 180) -> str:
    def ready() -> str | None:
        for pod in pods(node, namespace, selector):
            conditions = pod.get("status", {}).get("conditions", [])
            if pod["metadata"].get("deletionTimestamp"):
                continue
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                return str(pod["metadata"]["name"])
        return None

    return wait_for(f"a Ready pod {selector} in {namespace}", ready, timeout=timeout)


def neighbour_pod(
    node: RealNode,
    namespace: str,
    name: str,
    labels: dict[str, str] | None = None,
    port: int = 8000,
) -> str:
    """A pod serving HTTP on PORT from the user-management image (restricted security)."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name, **(labels or {})}},
        "spec": {
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "app",
                    "image": node.images["user-management"],
                    "imagePullPolicy": "Never",
                    "command": [
                        "python",
                        "-m",
                        "http.server",
                        str(port),
                        "--directory",
                        "/opt/app",
                    ],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1},
                }
            ],
        },
    }
    node.k("apply", "-n", namespace, "-f", "-", stdin=json.dumps(pod))
    return running_pod(node, namespace, f"app={name}")


def pod_ip(node: RealNode, namespace: str, pod: str) -> str:
    return str(
        json.loads(node.k("get", "pod", "-n", namespace, pod, "-o", "json"))["status"]["podIP"]
    )
