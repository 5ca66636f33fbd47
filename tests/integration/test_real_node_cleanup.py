"""`cluster.py down` leaves nothing of the real node behind.

A second cluster with its own state directory is started, a pod runs on its real node, and
the test lists what the node made on the machine (processes, mounts, network namespaces,
veths/bridges, iptables chains, cgroups) while it is up, and what is there before and after.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cluster_support import CLUSTER_SCRIPT

sys.path.insert(0, str(Path(CLUSTER_SCRIPT).parent))
import node as real_node

pytestmark = [pytest.mark.cluster, pytest.mark.real_node, pytest.mark.timeout(1200)]


def sh(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout


def host_links() -> set[str]:
    return {
        line.split(":")[1].strip().split("@")[0] for line in sh("ip", "-o", "link").splitlines()
    }


def host_chains() -> set[str]:
    return {line.split()[0] for line in sh("iptables-save").splitlines() if line.startswith(":")}


def mounts() -> list[str]:
    return [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]


def netns_names() -> set[str]:
    return {line.split()[0] for line in sh("ip", "netns", "list").splitlines() if line}


def test_cluster_down_removes_everything_the_real_node_made(tmp_path: Path) -> None:
    if (why := real_node.available()) is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI runs the real-node tier, but {why}")
        pytest.skip(why)
    state = tmp_path / "cluster"
    node = real_node.RealNode(state.resolve())
    before = {"links": host_links(), "chains": host_chains()}

    def cluster(*args: str) -> None:
        result = subprocess.run(
            [sys.executable, str(CLUSTER_SCRIPT), *args, "--dir", str(state)],
            capture_output=True, text=True, check=False, timeout=900,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]

    cluster("up")
    try:
        kubectl = [str(state / "bin" / "kubectl"), "--kubeconfig", str(state / "kubeconfig")]
        images = json.loads((state / "images.json").read_text())
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "probe", "namespace": "default"},
            "spec": {
                "nodeSelector": {real_node.NODE_LABEL[0]: real_node.NODE_LABEL[1]},
                "tolerations": [{"key": real_node.TAINT["key"], "operator": "Exists"}],
                "containers": [{"name": "c", "image": images["user-management"],
                                "imagePullPolicy": "Never", "command": ["sleep", "3600"]}],
            },
        }  # fmt: skip
        subprocess.run([*kubectl, "apply", "-f", "-"], input=json.dumps(pod), text=True, check=True)
        subprocess.run(
            [*kubectl, "wait", "pod/probe", "--for=condition=Ready", "--timeout=120s"], check=True
        )
        # What exists while it is up: it is all this node's.
        during = {
            "netns": sorted(
                netns_names() & {node.netns, *map(node.host_netns, real_node.TEST_HOSTS)}
            ),
            "pod_netns": node.pod_netns_paths(),
            "cni_results": [str(p) for p in node.cni_results(node.container_ids())],
            "mounts": node.mounts(),
            "cgroups": node.leftovers()["cgroups"],
            "links in the node's netns": sh("ip", "-n", node.netns, "-o", "link"),
            "chains in the node's netns": sh("ip", "netns", "exec", node.netns, "iptables-save"),
        }
        print(json.dumps(during, indent=1)[:4000])
        assert len(during["netns"]) == 1 + len(real_node.TEST_HOSTS)
        assert during["pod_netns"], "a pod's network namespace"
        assert any("cni-loopback-" in r for r in during["cni_results"]), "CNI's cached results"
        assert any("/kubelet/pods/" in m for m in during["mounts"]), "the pod's volume mounts"
        assert "cni0" in during["links in the node's netns"]
        assert "KUBE-SERVICES" in during["chains in the node's netns"]
        assert "KUBE-ROUTER-FORWARD" in during["chains in the node's netns"]
        assert "VIVIFIED-FORWARD" in during["chains in the node's netns"]
    finally:
        cluster("down")

    after_processes = [
        p.name
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and str(state).encode() in _cmdline(p)
    ]
    assert after_processes == []
    assert netns_names() & {node.netns, *map(node.host_netns, real_node.TEST_HOSTS)} == set()
    for path in during["pod_netns"]:
        assert not Path(path).exists(), path
        assert path not in mounts()
    assert node.mounts() == []
    assert [r for r in during["cni_results"] if Path(r).exists()] == [], "CNI results left"
    assert node.leftovers() == {"netns": [], "mounts": [], "cgroups": [], "files": []}
    assert host_links() - before["links"] == set(), "no veth or bridge left on the host"
    assert host_chains() - before["chains"] == set(), "no iptables chain left on the host"


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""
