"""Pure parts of the test ground's real node (hack/cluster): the runc wrapper, the egress
guard's node ranges, the DNS zone of the test hosts."""

from __future__ import annotations

import ipaddress
import json
import os
import resource
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

HACK = Path(__file__).resolve().parents[2] / "hack" / "cluster"
sys.path.insert(0, str(HACK))

import egress_guard  # noqa: E402
import images  # noqa: E402
import node  # noqa: E402
import runc_wrapper  # noqa: E402


def test_the_runc_wrapper_clamps_oom_score_and_rlimits(tmp_path: Path) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    config = {
        "process": {
            "oomScoreAdj": -998,
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1 << 30, "soft": 1 << 30}],
        }
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    runc_wrapper.clamp_file(str(path), bundle=True)
    process = json.loads(path.read_text())["process"]
    assert process["oomScoreAdj"] == 0
    if hard != resource.RLIM_INFINITY:
        assert process["rlimits"][0] == {"type": "RLIMIT_NOFILE", "hard": hard, "soft": hard}


def test_the_runc_wrapper_leaves_a_fitting_config_alone(tmp_path: Path) -> None:
    config = {
        "process": {
            "oomScoreAdj": 100,
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 64, "soft": 64}],
        }
    }
    path = tmp_path / "config.json"
    text = json.dumps(config)
    path.write_text(text)
    runc_wrapper.clamp_file(str(path), bundle=True)
    assert path.read_text() == text


def test_the_runc_wrapper_clamps_an_exec_process_file(tmp_path: Path) -> None:
    path = tmp_path / "process.json"
    path.write_text(json.dumps({"oomScoreAdj": -5, "args": ["sh"]}))
    runc_wrapper.clamp_file(str(path), bundle=False)
    assert json.loads(path.read_text())["oomScoreAdj"] == 0


def test_runc_options_are_found_in_either_spelling() -> None:
    assert runc_wrapper.option(["create", "--bundle", "/b", "id"], "--bundle", "-b") == "/b"
    assert runc_wrapper.option(["create", "--bundle=/c", "id"], "--bundle", "-b") == "/c"
    assert runc_wrapper.option(["create", "id"], "--bundle", "-b") is None


@pytest.mark.parametrize(
    ("host", "inside"),
    [
        ("10.245.0.7", True),
        ("10.96.0.10", True),
        ("10.245.255.1", True),
        ("10.244.0.7", False),  # kwok's fake pod IPs: never dialled
        ("8.8.8.8", False),
        ("example.com", False),
        ("127.0.0.1", False),
    ],
)
def test_the_egress_guard_dials_only_the_real_nodes_ranges(host: str, inside: bool) -> None:
    egress_guard.NODE_RANGES = [
        ipaddress.IPv4Network(c) for c in (node.POD_SUBNET, "10.96.0.0/16", f"{node.NODE_IP}/32")
    ]
    assert (egress_guard.node_address(host) is not None) is inside


def test_the_test_zone_names_every_test_host(tmp_path: Path) -> None:
    zone = node.RealNode(tmp_path).dns_zone()
    for host in node.TEST_HOSTS:
        for name in host.names:
            relative = name.removesuffix(".test")
            assert f"{relative} 60 IN A {host.address()}" in zone
            for extra in host.extra_addresses:
                assert f"{relative} 60 IN A {extra}" in zone
    assert zone.startswith("$ORIGIN test.\n")


def test_test_host_addresses_stay_inside_the_test_ranges() -> None:
    test_net = ipaddress.IPv4Network(node.TEST_NET)
    internet = ipaddress.IPv4Network(node.INTERNET_NET)
    for host in node.TEST_HOSTS:
        assert ipaddress.IPv4Address(host.address()) in test_net
        assert all(ipaddress.IPv4Address(a) in internet for a in host.extra_addresses)


def test_a_real_namespace_selects_the_real_node_and_tolerates_its_taint() -> None:
    annotations = node.REAL_NAMESPACE_ANNOTATIONS
    key, value = node.NODE_LABEL
    assert annotations["scheduler.alpha.kubernetes.io/node-selector"] == f"{key}={value}"
    (toleration,) = json.loads(annotations["scheduler.alpha.kubernetes.io/defaultTolerations"])
    assert toleration["key"] == node.TAINT["key"]
    assert toleration["effect"] == node.TAINT["effect"]


# -- images.py: cache keys and the build base ----------------------------------------------------


def test_an_images_cache_key_reads_only_its_dockerfiles_copy_sources() -> None:
    assert images.copy_sources("Dockerfile") == ["README.md", "operator", "pyproject.toml",
                                                 "sdk/python"]  # fmt: skip
    plugin = images.copy_sources("plugins/user-management/Dockerfile")
    assert "operator" not in plugin
    assert "sdk/python" in plugin
    assert all(p == "sdk/python" or p.startswith("plugins/user-management/") for p in plugin)


def test_copy_sources_skips_other_stages_and_refuses_patterns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(images, "REPO", tmp_path)
    (tmp_path / "Dockerfile").write_text(
        "FROM x AS build\nCOPY --chown=1:1 a.txt \\\n  b/ /dst/\nCOPY --from=build /opt /opt\n"
    )
    assert images.copy_sources("Dockerfile") == ["a.txt", "b"]
    (tmp_path / "Dockerfile").write_text("FROM x\nCOPY *.txt /dst/\n")
    with pytest.raises(ValueError, match="pattern"):
        images.copy_sources("Dockerfile")


def test_the_build_base_is_looked_up_in_a_running_dockerd() -> None:
    """Asked before dockerd ran, `has` always said no and every miss re-ran pip wheel."""
    calls: list[str] = []

    class FakeDocker:
        running = False

        def start(self) -> None:
            calls.append("start")
            self.running = True

        def has(self, ref: str) -> bool:
            calls.append("has")
            return self.running

    builder = images.Builder(FakeDocker())  # type: ignore[arg-type]
    builder.ensure_build_base()  # found: nothing built
    assert calls == ["start", "has"]


def test_build_leftovers_do_not_change_an_images_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pip wheel sdk/python` on the host writes sdk/python/build/; .dockerignore drops it."""
    monkeypatch.setattr(images, "REPO", tmp_path)
    sdk = tmp_path / "sdk" / "python"
    (sdk / "src").mkdir(parents=True)
    (sdk / "src" / "a.py").write_text("x = 1\n")
    before = images.tree_digest([sdk])
    for junk in ("build/lib/a.py", "src/__pycache__/a.pyc", ".pytest_cache/v", "x.egg-info/PKG"):
        (sdk / junk).parent.mkdir(parents=True, exist_ok=True)
        (sdk / junk).write_text("junk")
    assert images.tree_digest([sdk]) == before
    (sdk / "src" / "a.py").write_text("x = 2\n")
    assert images.tree_digest([sdk]) != before
    dockerignore = (Path(__file__).resolve().parents[2] / ".dockerignore").read_text()
    for part in images.IGNORED_PARTS:
        assert f"**/{part}" in dockerignore


def test_a_cgroup_removed_while_the_tree_is_walked_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node's stop walks its cgroups while containers exit and theirs vanish; rglob raised
    FileNotFoundError there and failed `cluster down` in CI. The vanished one is skipped."""
    root = tmp_path / "vivified-x"
    for cgroup, pids in (("", "1"), ("kubepods/pod-a", "2 3"), ("kubepods/pod-b/ctr", "4")):
        (root / cgroup).mkdir(parents=True, exist_ok=True)
        (root / cgroup / "cgroup.procs").write_text(pids)
    vanishing = root / "kubepods" / "pod-b"
    real_scandir = os.scandir

    def scandir_as_it_exits(path: Any) -> Any:
        if isinstance(path, str | os.PathLike) and Path(path) == vanishing:
            shutil.rmtree(vanishing)  # the container exited just before its cgroup was read
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir_as_it_exits)
    assert node.cgroup_pids(root) == {1, 2, 3}
    assert vanishing not in node.cgroup_tree(root)
    assert node.cgroup_tree(tmp_path / "gone") == []
