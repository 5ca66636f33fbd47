"""The real node of the test cluster: real containers, Services, DNS, NetworkPolicy.

Next to the kwok node(s), `cluster.py up` starts one real node, `vivified-node`:

* its own **network namespace** (``viv<id>-node``, id from the state directory), so several
  clusters on one machine never share a bridge, an iptables chain or an address, and nothing
  in it has a route off the machine: its only interfaces are loopback (holding the node
  address), the pods' bridge and the veths of the test hosts;
* **containerd** (Debian's package) with **runc** through ``runc_wrapper.py`` (this VM's
  limits) and the **CNI** bridge + host-local plugins (Debian's), all state in the state dir;
* **kubelet** and **kube-proxy** (built from the same k8s module as the control plane),
  **kube-router** with only its NetworkPolicy firewall, **CoreDNS** as a pod in kube-system;
* ``netns_forward.py``: the node's only way to the control plane, the API server port on the
  node address forwarded to the host's loopback;
* **test hosts**: "external" machines, each in its own namespace with its own address, an
  HTTP (80) and HTTPS (443, certificate of the test CA) server; names in the DNS zone
  ``test.`` that the cluster DNS serves. One of them also holds an "internet" address.

Which pods run here: the node is tainted ``vivified.dev/real-node=true:NoSchedule`` and
labelled ``vivified.dev/node=real``. A namespace annotated with ``REAL_NAMESPACE_ANNOTATIONS``
sends all its pods here (the API server's PodNodeSelector and PodTolerationRestriction
admission plugins add the selector and toleration); other pods keep landing on kwok nodes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pki import write_kubeconfig

HERE = Path(__file__).resolve().parent

NODE_NAME = "vivified-node"
NODE_IP = "10.245.255.1"  # on the loopback of the node's namespace
POD_SUBNET = "10.245.0.0/24"  # the real node's pods (kwok's fake pod IPs: 10.244.0.0/16)
POD_GATEWAY = "10.245.0.1"
CLUSTER_CIDR = "10.244.0.0/15"
SERVICE_CIDR = "10.96.0.0/16"  # cluster.SERVICE_CIDR
DNS_IP = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"
TEST_ZONE = "test"  # RFC 2606: never a real name
#: Fixed paths other programs share: CNI's result cache, the kubelet's device-plugin sockets.
CNI_RESULTS = "/var/lib/cni/results"
DEVICE_PLUGINS = "/var/lib/kubelet/device-plugins"
TEST_NET = "10.250.0.0/16"  # test hosts: 10.250.<i>.2, their gateway 10.250.<i>.1
INTERNET_NET = "203.0.113.0/24"  # TEST-NET-3: "internet" addresses held by test hosts
TAINT = {"key": "vivified.dev/real-node", "value": "true", "effect": "NoSchedule"}
NODE_LABEL = ("vivified.dev/node", "real")
#: kube-router's identity (its client certificate's CN, no group); ClusterRole
#: `vivified-test-ground:kube-router` in node-addons.yaml: read-only, least privilege.
KUBE_ROUTER_USER = "vivified-test-ground:kube-router"
REAL_NAMESPACE_ANNOTATIONS = {
    "scheduler.alpha.kubernetes.io/node-selector": f"{NODE_LABEL[0]}={NODE_LABEL[1]}",
    "scheduler.alpha.kubernetes.io/defaultTolerations": json.dumps(
        [{"key": TAINT["key"], "operator": "Equal", "value": "true", "effect": "NoSchedule"}]
    ),
}
#: Debian packages the real node needs; the harness installs missing ones.
PACKAGES = (
    "containerd",
    "runc",
    "containernetworking-plugins",
    "iptables",
    "ipset",
    "conntrack",
    "docker.io",
    "debootstrap",
)
START_TIMEOUT = 180.0


@dataclass(frozen=True)
class TestHost:
    """An "external" host. To add one: append here; it gets 10.250.<index>.2, a certificate
    of the test CA for its names and an A record for each name in the ``test.`` zone."""

    name: str
    names: tuple[str, ...]
    extra_addresses: tuple[str, ...] = ()

    def index(self) -> int:
        return TEST_HOSTS.index(self) + 1

    def address(self) -> str:
        return f"10.250.{self.index()}.2"

    def gateway(self) -> str:
        return f"10.250.{self.index()}.1"


TEST_HOSTS: list[TestHost] = [
    # A partner API a plugin may be allowed to reach (the proxy lane's allowlist tests).
    TestHost("partner", ("api.partner.test",)),
    # Another host, never allowed.
    TestHost("other", ("other.test",)),
    # Stands in for the internet: also holds 203.0.113.10.
    TestHost("internet", ("www.internet.test",), extra_addresses=("203.0.113.10",)),
]


def cgroup_tree(root: Path) -> list[Path]:
    """ROOT and every cgroup under it, parents first. A container's cgroup is removed while
    the tree is walked (its processes exited): os.walk skips a directory that is gone, where
    Path.rglob raised FileNotFoundError and failed the node's stop (seen in CI)."""
    return [Path(directory) for directory, _dirs, _files in os.walk(root)]


def cgroup_pids(root: Path) -> set[int]:
    """The pids in ROOT's cgroup tree; a cgroup gone while it is read has none."""
    pids: set[int] = set()
    for directory in cgroup_tree(root):
        with contextlib.suppress(OSError, ValueError):
            pids |= {int(p) for p in (directory / "cgroup.procs").read_text().split()}
    return pids


def log(message: str) -> None:
    print(f"node: {message}", file=sys.stderr, flush=True)


class NodeError(Exception):
    pass


def run(*argv: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        list(argv),
        check=check,
        text=True,
        stdout=subprocess.PIPE if quiet else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def ensure_packages() -> None:
    """apt-get install what is missing (CI runs as root on a fresh machine)."""
    status = subprocess.run(  # noqa: S603
        ["/usr/bin/dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n", *PACKAGES],
        capture_output=True,
        text=True,
        check=False,
    )
    installed = {
        line.split()[0] for line in status.stdout.splitlines() if line.endswith(" installed")
    }
    missing = [p for p in PACKAGES if p not in installed]
    if not missing:
        return
    log(f"apt-get install {' '.join(missing)}")
    install = [
        "/usr/bin/apt-get",
        "-o",
        "DPkg::Lock::Timeout=900",
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        *missing,
    ]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(install, check=False, env=env).returncode != 0:  # noqa: S603
        subprocess.run(
            ["/usr/bin/apt-get", "-o", "DPkg::Lock::Timeout=900", "update", "-q"],
            check=True,
            env=env,
        )
        subprocess.run(install, check=True, env=env)  # noqa: S603


def available() -> str | None:
    """Why no real node can run here, or None."""
    if sys.platform != "linux":
        return "not Linux"
    if os.geteuid() != 0:
        return "not root"
    if os.environ.get("VIVIFIED_REAL_NODE", "1") == "0":
        return "VIVIFIED_REAL_NODE=0"
    return None


class RealNode:
    """Start/stop of the node; `cluster` is the owning cluster.Cluster (duck-typed)."""

    def __init__(self, state_dir: Path) -> None:
        self.state = state_dir
        self.dir = state_dir / "node"
        ident = hashlib.sha256(str(state_dir).encode()).hexdigest()[:8]
        self.id = ident
        self.netns = f"viv{ident}-node"
        self.cgroup_root = f"/vivified-{ident}"
        self.cni_network = f"viv{ident}"
        # Unix socket paths are limited to ~104 bytes: not under a deep state directory.
        self.run_dir = Path(f"/run/vivified-{ident}")
        self.containerd_sock = self.run_dir / "containerd.sock"

    def host_netns(self, host: TestHost) -> str:
        return f"viv{self.id}-{host.name}"

    # --- helpers ---------------------------------------------------------------------------

    def in_netns(self, netns: str, argv: list[str]) -> list[str]:
        return ["/usr/bin/nsenter", f"--net=/run/netns/{netns}", "--", *argv]

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("/usr/sbin/ip", "-n", self.netns, *args, check=check)

    def sh_in(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(*self.in_netns(self.netns, list(argv)), check=check, quiet=True)

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(
            "/usr/bin/ctr", "--address", str(self.containerd_sock), "-n", "k8s.io", *args,
            check=check, quiet=True,
        )  # fmt: skip

    # --- network ---------------------------------------------------------------------------

    def create_network(self) -> None:
        run("/usr/sbin/ip", "netns", "add", self.netns)
        self.ip("link", "set", "lo", "up")
        # The node address on the namespace's loopback (this kernel has no dummy links).
        self.ip("addr", "add", f"{NODE_IP}/32", "dev", "lo")
        # A route for ClusterIPs dialled from the node itself (the egress guard: webhooks by
        # Service); kube-proxy's OUTPUT DNAT then sends them to a pod.
        self.ip("route", "add", SERVICE_CIDR, "dev", "lo")
        for sysctl, value in (
            ("net/ipv4/ip_forward", "1"),
            ("net/bridge/bridge-nf-call-iptables", "1"),
        ):
            self.sh_in("/bin/sh", "-c", f"echo {value} > /proc/sys/{sysctl}", check=False)
        # Defence in depth: nothing from the pods to anything but the cluster's own ranges
        # and the test hosts (there is no route off the machine anyway).
        allowed = [POD_SUBNET, CLUSTER_CIDR, SERVICE_CIDR, f"{NODE_IP}/32", TEST_NET]
        allowed.append(INTERNET_NET)
        for chain in ("FORWARD", "OUTPUT"):
            self.sh_in("/usr/sbin/iptables", "-N", f"VIVIFIED-{chain}")
            for cidr in allowed:
                self.sh_in(
                    "/usr/sbin/iptables", "-A", f"VIVIFIED-{chain}", "-d", cidr, "-j", "RETURN"
                )
            self.sh_in(
                "/usr/sbin/iptables", "-A", f"VIVIFIED-{chain}", "-s", POD_SUBNET, "-j", "DROP"
            )
            self.sh_in("/usr/sbin/iptables", "-I", chain, "1", "-j", f"VIVIFIED-{chain}")
        for host in TEST_HOSTS:
            ns = self.host_netns(host)
            run("/usr/sbin/ip", "netns", "add", ns)
            veth = f"th{host.index()}"
            self.ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            self.ip("addr", "add", f"{host.gateway()}/24", "dev", veth)
            self.ip("link", "set", veth, "up")
            hip = ["/usr/sbin/ip", "-n", ns]
            run(*hip, "link", "set", "lo", "up")
            run(*hip, "addr", "add", f"{host.address()}/24", "dev", "eth0")
            for extra in host.extra_addresses:
                run(*hip, "addr", "add", f"{extra}/32", "dev", "eth0")
                self.ip("route", "add", f"{extra}/32", "via", host.address())
            run(*hip, "link", "set", "eth0", "up")
            run(*hip, "route", "add", "default", "via", host.gateway())

    def dns_zone(self) -> str:
        lines = [
            f"$ORIGIN {TEST_ZONE}.",
            f"@ 60 IN SOA ns.{TEST_ZONE}. admin.{TEST_ZONE}. 1 60 60 60 60",
            f"@ 60 IN NS ns.{TEST_ZONE}.",
            f"ns 60 IN A {DNS_IP}",
        ]
        for host in TEST_HOSTS:
            for name in host.names:
                relative = name.removesuffix(f".{TEST_ZONE}")
                lines.append(f"{relative} 60 IN A {host.address()}")
                lines += [f"{relative} 60 IN A {extra}" for extra in host.extra_addresses]
        return "\n".join(lines) + "\n"

    # --- configuration files ---------------------------------------------------------------

    def write_configs(self, pki: Any, bin_dir: Path, api_port: int, images: dict[str, str]) -> None:
        d = self.dir
        for sub in ("containerd", "kubelet", "cni/net.d", "cni-ipam", "pods-logs", "runc"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        server = f"https://{NODE_IP}:{api_port}"
        pki.issue("kubelet", f"system:node:{NODE_NAME}", organizations=("system:nodes",))
        pki.issue("kubelet-serving", NODE_NAME, dns=(NODE_NAME,), ips=(NODE_IP,), server=True)
        pki.issue("kube-proxy", "system:kube-proxy", organizations=("system:node-proxier",))
        # kube-router's own user, no group: node-addons.yaml grants it read-only access to
        # what its informers list and watch (KUBE_ROUTER_USER).
        pki.issue("kube-router", KUBE_ROUTER_USER)
        for name in ("kubelet", "kube-proxy", "kube-router"):
            write_kubeconfig(
                d / f"{name}.kubeconfig",
                server,
                ca_cert=pki.ca_cert_path,
                cert=pki.dir / f"{name}.crt",
                key=pki.dir / f"{name}.key",
                user=name,
            )
        wrapper = d / "runc"
        wrapper_bin = d / "runc-wrapper"
        shutil.copy2(HERE / "runc_wrapper.py", wrapper_bin)
        (d / "containerd" / "config.toml").write_text(
            f"""version = 2
root = "{d / "containerd" / "root"}"
state = "{d / "containerd" / "state"}"
oom_score = 0
[grpc]
  address = "{self.containerd_sock}"
[ttrpc]
  address = "{self.containerd_sock}.ttrpc"
[debug]
  level = "warn"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d / "containerd" / "opt"}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{images["pause"]}"
  enable_selinux = false
  disable_apparmor = true
  restrict_oom_score_adj = true
  max_container_log_line_size = 16384
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{wrapper_bin}"
        Root = "{wrapper}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d / "cni" / "net.d"}"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = ""
"""
        )
        cni = {
            "cniVersion": "1.0.0",
            "name": self.cni_network,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "cni0",
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": str(d / "cni-ipam"),
                        "ranges": [[{"subnet": POD_SUBNET, "gateway": POD_GATEWAY}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }
        (d / "cni" / "net.d" / "10-vivified.conflist").write_text(json.dumps(cni, indent=2))
        (d / "resolv.conf").write_text(
            "# no upstream resolver: the cluster DNS answers or nobody\n"
        )
        kubelet: dict[str, Any] = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # This VM: cgroup v1 (deprecated in 1.36, refused unless allowed) and no systemd.
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": self.cgroup_root,
            "cgroupsPerQOS": True,
            "enforceNodeAllocatable": ["pods"],
            "address": NODE_IP,
            "port": 10250,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": 10248,
            "tlsCertFile": str(pki.dir / "kubelet-serving.crt"),
            "tlsPrivateKeyFile": str(pki.dir / "kubelet-serving.key"),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(pki.ca_cert_path)},
            },
            "authorization": {"mode": "Webhook"},
            "clusterDNS": [DNS_IP],
            "clusterDomain": CLUSTER_DOMAIN,
            "resolvConf": str(d / "resolv.conf"),
            "containerRuntimeEndpoint": f"unix://{self.containerd_sock}",
            "podLogsDir": str(d / "pods-logs"),
            "failSwapOn": False,
            "registerWithTaints": [TAINT],
            "serializeImagePulls": False,
            "maxPods": 30,
            "nodeStatusUpdateFrequency": "5s",
            "syncFrequency": "10s",
            "fileCheckFrequency": "60s",
            "imageGCHighThresholdPercent": 100,
            "evictionHard": {
                "memory.available": "50Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "shutdownGracePeriod": "0s",
            "oomScoreAdj": 0,  # this machine refuses negative values
            "rotateCertificates": False,
            "serverTLSBootstrap": False,
            "localStorageCapacityIsolation": False,
        }
        (d / "kubelet.yaml").write_text(yaml.safe_dump(kubelet))
        proxy = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(d / "kube-proxy.kubeconfig")},
            "hostnameOverride": NODE_NAME,
            "bindAddress": NODE_IP,
            "clusterCIDR": CLUSTER_CIDR,
            "mode": "iptables",
            "oomScoreAdj": 0,
            # Global (init namespace) sysctls: never touched.
            "conntrack": {"maxPerCore": 0, "min": 0},
            "metricsBindAddress": "127.0.0.1:10249",
            "healthzBindAddress": "127.0.0.1:10256",
            "nodePortAddresses": [f"{NODE_IP}/32"],
        }
        (d / "kube-proxy.yaml").write_text(yaml.safe_dump(proxy))

    # --- start -----------------------------------------------------------------------------

    def start(
        self,
        cluster: Any,
        bin_dir: Path,
        api_port: int,
        images: dict[str, tuple[str, Path]],
    ) -> None:
        started = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for controller in self.cgroup_controllers():
            (controller / self.cgroup_root.lstrip("/")).mkdir(exist_ok=True)
        self.create_network()
        refs = {name: ref for name, (ref, _) in images.items()}
        self.write_configs(cluster.pki, bin_dir, api_port, refs)
        (self.state / "images.json").write_text(json.dumps(refs, indent=2) + "\n")
        env_path = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        cluster._start(
            "containerd",
            self.in_netns(
                self.netns,
                ["/usr/bin/containerd", "--config", str(self.dir / "containerd" / "config.toml")],
            ),
            extra_env=env_path,
        )
        cluster._wait("containerd", lambda: self.ctr("version", check=False).returncode == 0)
        for ref, tarball in images.values():
            if self.ctr("images", "check", f"name=={ref}").stdout.count(ref) == 0:
                self.ctr("images", "import", "--no-unpack=false", str(tarball))
            log(f"image {ref}")
        cluster._start(
            "apiserver-forward",
            [
                sys.executable,
                str(HERE / "netns_forward.py"),
                self.netns,
                NODE_IP,
                str(api_port),
                str(api_port),
                str(self.state),
            ],
        )
        cluster._start(
            "kubelet",
            self.in_netns(
                self.netns,
                [
                    str(bin_dir / "kubelet"),
                    f"--config={self.dir / 'kubelet.yaml'}",
                    f"--kubeconfig={self.dir / 'kubelet.kubeconfig'}",
                    # Short (it holds unix sockets): under /run/vivified-<id>, not the state dir.
                    f"--root-dir={self.run_dir / 'kubelet'}",
                    f"--cert-dir={self.run_dir / 'kubelet' / 'pki'}",
                    f"--hostname-override={NODE_NAME}",
                    f"--node-ip={NODE_IP}",
                    f"--node-labels={NODE_LABEL[0]}={NODE_LABEL[1]}",
                    "--v=1",
                ],
            ),
            extra_env=env_path,
        )
        cluster._wait(
            "kubelet registers the node", lambda: bool(cluster.get(f"/api/v1/nodes/{NODE_NAME}"))
        )
        cluster.request(
            "PATCH",
            cluster.url(f"/api/v1/nodes/{NODE_NAME}"),
            {"spec": {"podCIDR": POD_SUBNET, "podCIDRs": [POD_SUBNET]}},
            content_type="application/strategic-merge-patch+json",
        )
        # Before kube-router: its RBAC is among the addons (it has no other rights).
        self.apply_addons(cluster, bin_dir, api_port, refs)
        cluster._start(
            "kube-proxy",
            self.in_netns(
                self.netns,
                [str(bin_dir / "kube-proxy"), f"--config={self.dir / 'kube-proxy.yaml'}"],
            ),
            extra_env=env_path,
        )
        cluster._start(
            "kube-router",
            self.in_netns(
                self.netns,
                [
                    str(bin_dir / "kube-router"),
                    f"--kubeconfig={self.dir / 'kube-router.kubeconfig'}",
                    f"--hostname-override={NODE_NAME}",
                    "--run-firewall=true",
                    "--run-router=false",
                    "--run-service-proxy=false",
                    "--enable-cni=false",
                    "--enable-ipv4=true",
                    "--enable-ipv6=false",
                    "--metrics-port=0",
                    "--health-port=20244",
                    f"--service-cluster-ip-range={SERVICE_CIDR}",
                    "--iptables-sync-period=30s",
                    "--v=1",
                ],
            ),
            extra_env=env_path,
        )
        for host in TEST_HOSTS:
            cluster.pki.issue(
                f"test-host-{host.name}",
                host.names[0],
                dns=host.names,
                ips=(host.address(), *host.extra_addresses),
                server=True,
            )
            cluster._start(
                f"test-host-{host.name}",
                self.in_netns(
                    self.host_netns(host),
                    [
                        sys.executable,
                        str(HERE / "test_host.py"),
                        host.name,
                        str(cluster.pki_dir / f"test-host-{host.name}.crt"),
                        str(cluster.pki_dir / f"test-host-{host.name}.key"),
                        str(self.state),
                    ],
                ),
            )
        # The test CA (the same CA; its certificate is what pods trust for test hosts).
        shutil.copy2(cluster.pki_dir / "ca.crt", self.state / "test-ca.crt")
        cluster._wait("real node Ready", lambda: self.ready(cluster))
        cluster._wait("cluster DNS Ready", lambda: self.dns_ready(cluster))
        log(f"real node {NODE_NAME} up in {time.monotonic() - started:.1f}s")

    def ready(self, cluster: Any) -> bool:
        node = json.loads(cluster.get(f"/api/v1/nodes/{NODE_NAME}"))
        conditions = node.get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def dns_ready(self, cluster: Any) -> bool:
        pods = json.loads(
            cluster.get("/api/v1/namespaces/kube-system/pods?labelSelector=k8s-app%3Dkube-dns")
        )
        return any(
            c["type"] == "Ready" and c["status"] == "True"
            for p in pods["items"]
            for c in p.get("status", {}).get("conditions", [])
        )

    def apply_addons(
        self, cluster: Any, bin_dir: Path, api_port: int, refs: dict[str, str]
    ) -> None:
        corefile = f""".:53 {{
    errors
    health :8080
    ready :8181
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    file /etc/coredns/{TEST_ZONE}.db {TEST_ZONE}
    cache 5
}}
"""
        template = (HERE / "node-addons.yaml").read_text()
        manifest = (
            template.replace("@COREDNS_IMAGE@", refs["coredns"])
            .replace("@DNS_IP@", DNS_IP)
            .replace("@NODE_IP@", NODE_IP)
            .replace("@API_PORT@", str(api_port))
            .replace("@TAINT_KEY@", TAINT["key"])
            .replace("@NODE_LABEL_KEY@", NODE_LABEL[0])
            .replace("@NODE_LABEL_VALUE@", NODE_LABEL[1])
            .replace("@KUBE_ROUTER_USER@", KUBE_ROUTER_USER)
        )
        docs = list(yaml.safe_load_all(manifest))
        for doc in docs:
            if doc and doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "coredns":
                doc["data"] = {"Corefile": corefile, f"{TEST_ZONE}.db": self.dns_zone()}
        path = self.dir / "addons.yaml"
        path.write_text(yaml.safe_dump_all(docs))
        subprocess.run(  # noqa: S603
            [
                str(bin_dir / "kubectl"),
                f"--kubeconfig={cluster.pki_dir / 'admin.kubeconfig'}",
                "apply",
                "--server-side",
                "--force-conflicts",
                "-f",
                str(path),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    # --- stop ------------------------------------------------------------------------------

    @staticmethod
    def cgroup_controllers() -> list[Path]:
        root = Path("/sys/fs/cgroup")
        if (root / "cgroup.controllers").exists():  # v2: one hierarchy
            return [root]
        return [
            p
            for p in root.iterdir()
            if p.is_dir() and not p.is_symlink() and (p / "tasks").exists()
        ]

    def container_ids(self) -> list[str]:
        """Containers (pod sandboxes included) of this node's containerd."""
        if not self.containerd_sock.exists():
            return []
        return sorted(self.ctr("containers", "ls", "-q", check=False).stdout.split())

    def cni_results(self, container_ids: list[str]) -> list[Path]:
        """CNI's cached results for these containers: this node's network and containerd's
        loopback network (`cni-loopback-<sandbox>-lo`) both write one per pod sandbox."""
        results = Path(CNI_RESULTS)
        if not results.is_dir():
            return []
        ours = {f"{self.cni_network}-", *(f"cni-loopback-{cid}-" for cid in container_ids)}
        return sorted(p for p in results.iterdir() if p.name.startswith(tuple(ours)))

    def pod_netns_paths(self) -> list[str]:
        """Network namespaces containerd made for this node's pods (under /run/netns)."""
        listed = self.container_ids()
        paths = set()
        for cid in listed:
            info = self.ctr("containers", "info", cid, check=False).stdout
            with contextlib.suppress(ValueError, KeyError, TypeError):
                spec = json.loads(info)["Spec"]
                for ns in spec["linux"]["namespaces"]:
                    if ns.get("type") == "network" and ns.get("path", "").startswith(
                        "/var/run/netns/"
                    ):
                        paths.add(ns["path"])
        return sorted(paths)

    def stop(self, stop_process: Callable[[str], None]) -> None:
        """Stops the node's processes (STOP_PROCESS(name) for each recorded one), kills every
        container, then removes every mount, namespace, cgroup and file it made."""
        pod_netns = self.pod_netns_paths()
        (self.dir / "pod-netns.json").parent.mkdir(parents=True, exist_ok=True)
        known = []
        with contextlib.suppress(FileNotFoundError, ValueError):
            known = json.loads((self.dir / "pod-netns.json").read_text())
        pod_netns = sorted(set(pod_netns) | set(known))
        (self.dir / "pod-netns.json").write_text(json.dumps(pod_netns))
        containers = self.container_ids()
        with contextlib.suppress(FileNotFoundError, ValueError):
            containers = sorted(
                set(containers) | set(json.loads((self.dir / "containers.json").read_text()))
            )
        (self.dir / "containers.json").write_text(json.dumps(containers))
        for name in ("kubelet", "kube-router", "kube-proxy"):
            stop_process(name)
        if self.containerd_sock.exists():
            for task in self.ctr("tasks", "ls", "-q", check=False).stdout.split():
                self.ctr("tasks", "kill", "-s", "SIGKILL", task, check=False)
        self.kill_cgroup_processes()
        if self.containerd_sock.exists():
            for task in self.ctr("tasks", "ls", "-q", check=False).stdout.split():
                self.ctr("tasks", "delete", "-f", task, check=False)
        stop_process("containerd")
        for name in ("apiserver-forward", *(f"test-host-{h.name}" for h in TEST_HOSTS)):
            stop_process(name)
        self.kill_shims()
        self.unmount()
        for path in pod_netns:
            run("/bin/umount", "-l", path, check=False)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        for netns in (self.netns, *(self.host_netns(h) for h in TEST_HOSTS)):
            if (Path("/run/netns") / netns).exists():
                run("/usr/sbin/ip", "netns", "del", netns, check=False)
        self.remove_cgroups()
        for leftover in self.cni_results(containers):
            leftover.unlink()
        shutil.rmtree(self.run_dir, ignore_errors=True)
        self.remove_shared_dirs()

    def remove_shared_dirs(self) -> None:
        """The kubelet's device-plugin socket directory is fixed (/var/lib/kubelet/device-plugins,
        whatever --root-dir says) and CNI's result cache is machine-wide: both are removed when
        the last real node on the machine stops, and only what is empty or ours."""
        if any(Path("/run").glob("vivified-*")):
            return  # another worktree's node still runs and shares them
        with contextlib.suppress(FileNotFoundError):
            Path(DEVICE_PLUGINS, "kubelet.sock").unlink()
        for directory in (DEVICE_PLUGINS, Path(DEVICE_PLUGINS).parent, CNI_RESULTS,
                          Path(CNI_RESULTS).parent):  # fmt: skip
            with contextlib.suppress(OSError):
                Path(directory).rmdir()  # only when empty

    def kill_cgroup_processes(self) -> None:
        for _ in range(20):
            pids: set[int] = set()
            for controller in self.cgroup_controllers():
                pids |= cgroup_pids(controller / self.cgroup_root.lstrip("/"))
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)

    def kill_shims(self) -> None:
        markers = (str(self.containerd_sock).encode(), str(self.dir).encode())
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                cmdline = (proc / "cmdline").read_bytes()
                ours = any(marker in cmdline for marker in markers)
                if b"containerd-shim" in cmdline.split(b"\0")[0] and ours:
                    os.kill(int(proc.name), signal.SIGKILL)

    def mounts(self) -> list[str]:
        """Mount points of this node (under its state or run directory)."""
        prefixes = (str(self.dir), str(self.run_dir))
        points = []
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].encode().decode("unicode_escape")
            if any(point == p or point.startswith(p + "/") for p in prefixes):
                points.append(point)
        return points

    def unmount(self) -> None:
        for _ in range(3):
            points = self.mounts()
            if not points:
                return
            for point in sorted(points, key=len, reverse=True):
                run("/bin/umount", "-l", point, check=False)

    def remove_cgroups(self) -> None:
        for controller in self.cgroup_controllers():
            # Children before parents: a cgroup is removed only once it is empty.
            for directory in reversed(cgroup_tree(controller / self.cgroup_root.lstrip("/"))):
                with contextlib.suppress(OSError):
                    directory.rmdir()

    def leftovers(self) -> dict[str, list[str]]:
        """What of this node still exists on the machine (empty lists: nothing)."""
        netns = [
            n
            for n in (self.netns, *(self.host_netns(h) for h in TEST_HOSTS))
            if (Path("/run/netns") / n).exists()
        ]
        cgroups = [
            str(c / self.cgroup_root.lstrip("/"))
            for c in self.cgroup_controllers()
            if (c / self.cgroup_root.lstrip("/")).exists()
        ]
        files = [str(self.run_dir)] if self.run_dir.exists() else []
        return {"netns": netns, "mounts": self.mounts(), "cgroups": cgroups, "files": files}
