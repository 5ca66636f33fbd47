#!/usr/bin/env python3
"""The local test cluster: a real control plane with kwok nodes, on loopback only.

    cluster.py up      build or reuse the binaries, start the cluster, wait until usable
    cluster.py down    stop every process of the cluster and remove its state
    cluster.py status  exit 0 if the cluster is up, 1 if not
    cluster.py prepare install the real node's Debian packages and build its images (cached)
    cluster.py restart NAME [--down S]   fault injection (tests/chaos): kill -9 one control-plane
                       process (etcd, kube-apiserver, ...), keep it down S seconds, start it
                       again with the same command line, wait until it serves; prints JSON

`--dir DIR` picks the state directory (default: .cluster in the repo). It holds
kubeconfig (admin), ports.json, logs/, pids/, pki/ and etcd's data.

Processes: etcd, egress-guard (see egress_guard.py), kube-apiserver,
kube-controller-manager, kube-scheduler and kwok. Each runs in its own process
group whose id is recorded in pids/, so `down` can stop it and all it spawned.

As root on Linux, `up` also starts one real node (node.py: kubelet, containerd, kube-proxy,
kube-router's firewall, CoreDNS, test hosts) with images built here (images.py);
`--no-real-node` or VIVIFIED_REAL_NODE=0 leaves it out.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import images as image_builder
import node as real_node
from pki import APISERVER_DNS, PKI, write_kubeconfig

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_DIR = REPO / ".cluster"

# Fixed ports, outside the defaults of every component and outside Linux's
# ephemeral range, so a developer's other clusters do not clash. Any port
# already taken is replaced by a free one; the choice is in ports.json.
PREFERRED_PORTS = {
    "etcd": 16379,
    "etcd-peer": 16380,
    "apiserver": 16443,
    "controller-manager": 16257,
    "scheduler": 16259,
    "kwok": 16250,
}
# Metadata of every write request (no bodies: Secrets must not land in a log); reads are not
# recorded. `.cluster/logs/audit.log`, JSON lines.
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    verbs: [create, update, patch, delete, deletecollection]
  - level: None
"""

# Start order; `down` stops them in reverse.
COMPONENTS = [
    "etcd",
    "egress-guard",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
]
# Control-plane processes `restart` may kill -9 and start again, with the ports.json key of
# their health endpoint.
RESTARTABLE = {
    "etcd": "etcd",
    "kube-apiserver": "apiserver",
    "kube-controller-manager": "controller-manager",
    "kube-scheduler": "scheduler",
    "kwok": "kwok",
}
# The real node's processes (node.py), started after the control plane.
NODE_COMPONENTS = [
    "containerd",
    "apiserver-forward",
    "kubelet",
    "kube-proxy",
    "kube-router",
    *(f"test-host-{h.name}" for h in real_node.TEST_HOSTS),
]
PROGRAMS = {*COMPONENTS, "containerd", "kubelet", "kube-proxy", "kube-router"}
SCRIPTS = {"egress_guard.py", "netns_forward.py", "test_host.py"}
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"  # the `kubernetes` Service's ClusterIP; nothing dials it
POD_CIDR = "10.244.0.1/16"  # kwok's fake pod IPs; never dialled
ISSUER = "https://kubernetes.default.svc.cluster.local"
START_TIMEOUT = 120.0  # seconds per wait; a whole warm start takes ~10 s
STOP_TIMEOUT = 10.0  # per process and signal
# Proxy settings would send component traffic off the machine.
PROXY_VARS = {"http_proxy", "https_proxy", "no_proxy", "all_proxy", "grpc_proxy"}


def log(message: str) -> None:
    print(f"cluster: {message}", file=sys.stderr, flush=True)


class ClusterError(Exception):
    pass


class Cluster:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir.resolve()
        self.pids = self.dir / "pids"
        self.logs = self.dir / "logs"
        self.pki_dir = self.dir / "pki"
        self.kubeconfig = self.dir / "kubeconfig"
        self.ports_file = self.dir / "ports.json"
        self.started: dict[str, subprocess.Popen[bytes]] = {}  # by this `up`
        self.node = real_node.RealNode(self.dir)
        self.pki: PKI | None = None

    # --- state -----------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Serialises up/down (make and a pytest session may race)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with (self.dir / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def ports(self) -> dict[str, int]:
        ports: dict[str, int] = json.loads(self.ports_file.read_text())
        return ports

    def recorded_pids(self) -> dict[str, int]:
        if not self.pids.is_dir():
            return {}
        return {p.stem: int(p.read_text()) for p in self.pids.glob("*.pid")}

    def is_ours(self, pid: int) -> bool:
        """True if PID is alive and is one of this cluster's processes.

        Every component gets a path inside the state directory on its command
        line, which guards against PIDs reused by unrelated processes.
        """
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            return False
        if state == "Z":  # a zombie has exited; only its parent's wait is missing
            return False
        program = os.path.basename(cmdline[0].decode(errors="replace"))
        script = os.path.basename(cmdline[1].decode(errors="replace")) if len(cmdline) > 1 else ""
        ours = program in PROGRAMS or script in SCRIPTS
        return ours and str(self.dir).encode() in b"\0".join(cmdline)

    def stray_processes(self) -> list[int]:
        """Processes of this cluster, whether or not their PID was recorded."""
        pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
        return [pid for pid in pids if pid != os.getpid() and self.is_ours(pid)]

    def is_up(self) -> bool:
        recorded = self.recorded_pids()
        if not set(COMPONENTS) <= set(recorded) or not self.kubeconfig.exists():
            return False
        if not all(self.is_ours(pid) for pid in recorded.values()):
            return False
        try:
            return self.get("/readyz") == b"ok"
        except (OSError, urllib.error.URLError):
            return False

    # --- HTTP helpers ------------------------------------------------------------

    def tls(self, client: bool = True) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki_dir / "ca.crt"))
        if client:
            context.load_cert_chain(self.pki_dir / "admin.crt", self.pki_dir / "admin.key")
        return context

    def request(
        self,
        method: str,
        url: str,
        body: dict[str, Any] | None = None,
        client: bool = True,
        content_type: str = "application/json",
    ) -> bytes:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (https only)
        req.add_header("Content-Type", content_type)
        with urllib.request.urlopen(req, context=self.tls(client), timeout=10) as response:  # noqa: S310
            result: bytes = response.read()
            return result

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.ports()['apiserver']}{path}"

    def get(self, path: str) -> bytes:
        return self.request("GET", self.url(path))

    # --- up ----------------------------------------------------------------------

    def up(self, nodes: int, real: bool = True) -> None:
        started = time.monotonic()
        with self.locked():
            if self.is_up():
                log(f"already up; kubeconfig: {self.kubeconfig}")
                return
            self._stop_all()  # leftovers of a crashed or half-done start
            self._clean()
            bin_dir = build_binaries()
            self._link_bin(bin_dir)
            images: dict[str, tuple[str, Path]] = {}
            if real and (why := real_node.available()) is None:
                real_node.ensure_packages()
                images = image_builder.build()
            elif real:
                log(f"no real node: {why}")
            for directory in (self.pids, self.logs, self.pki_dir):
                directory.mkdir(parents=True)
            ports = pick_ports()
            self.ports_file.write_text(json.dumps(ports, indent=2) + "\n")
            self._write_pki_and_configs(ports, real=bool(images))
            try:
                self._start_control_plane(bin_dir, ports, real=bool(images))
                self._start_nodes(bin_dir, ports, [f"kwok-node-{i}" for i in range(nodes)])
                self._wait_usable(nodes)
                if images:
                    self.node.start(self, bin_dir, ports["apiserver"], images)
            except BaseException:
                self._stop_all()  # keep the logs for a look; the next `up` cleans
                raise
            # Written last, and atomically: its presence means "usable".
            write_kubeconfig(
                self.kubeconfig,
                f"https://127.0.0.1:{ports['apiserver']}",
                ca_cert=self.pki_dir / "ca.crt",
                cert=self.pki_dir / "admin.crt",
                key=self.pki_dir / "admin.key",
                user="admin",
            )
        log(f"up in {time.monotonic() - started:.1f}s; kubeconfig: {self.kubeconfig}")

    def _link_bin(self, bin_dir: Path) -> None:
        """.cluster/bin -> the cached binaries, for people and scripts."""
        link = self.dir / "bin"
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        link.symlink_to(bin_dir)

    def _write_pki_and_configs(self, ports: dict[str, int], real: bool = False) -> None:
        pki = self.pki = PKI(self.pki_dir)
        # With a real node, pods and the kubelet reach the API server on the node address.
        node_ips = (real_node.NODE_IP,) if real else ()
        pki.issue(
            "apiserver",
            "kube-apiserver",
            dns=tuple(APISERVER_DNS),
            ips=("127.0.0.1", SERVICE_IP, *node_ips),
            server=True,
        )
        # Serving certificate of the other components' health/metrics ports and kwok's
        # kubelet-like endpoint; all listen on 127.0.0.1 only.
        pki.issue("serving", "localhost", dns=("localhost",), ips=("127.0.0.1",), server=True)
        pki.issue("admin", "vivified-admin", organizations=("system:masters",))
        pki.issue(
            "apiserver-kubelet-client",
            "kube-apiserver-kubelet-client",
            organizations=("system:masters",),
        )
        # The aggregation layer's client; with it the API server publishes the
        # request-header CA that the other components' authentication expects.
        pki.issue("front-proxy-client", "front-proxy-client")
        pki.issue("controller-manager", "system:kube-controller-manager")
        pki.issue("scheduler", "system:kube-scheduler")
        pki.service_account_keys()
        server = f"https://127.0.0.1:{ports['apiserver']}"
        for name in ("admin", "controller-manager", "scheduler"):
            write_kubeconfig(
                self.pki_dir / f"{name}.kubeconfig",
                server,
                ca_cert=self.pki_dir / "ca.crt",
                cert=self.pki_dir / f"{name}.crt",
                key=self.pki_dir / f"{name}.key",
                user=name,
            )
        # All of kube-apiserver's egress (webhooks by URL or by Service, the
        # pod/service/node proxy, logs/exec) goes through the egress guard.
        selections = [
            {
                "name": name,
                "connection": {
                    "proxyProtocol": "HTTPConnect",
                    "transport": {"uds": {"udsName": str(self.dir / "egress.sock")}},
                },
            }
            for name in ("controlplane", "cluster")
        ]
        egress = {
            "apiVersion": "apiserver.k8s.io/v1beta1",
            "kind": "EgressSelectorConfiguration",
            "egressSelections": selections,
        }
        (self.dir / "egress-selector.json").write_text(json.dumps(egress, indent=2))

    def _start(self, name: str, argv: list[str], extra_env: dict[str, str] | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARS}
        env.update(extra_env or {})
        with (self.logs / f"{name}.log").open("ab") as out:
            process = subprocess.Popen(  # noqa: S603 (our own binaries, fixed arguments)
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                env=env,
                start_new_session=True,  # own process group: `down` stops it whole
            )
        self.started[name] = process
        (self.pids / f"{name}.pid").write_text(str(process.pid))

    def _start_control_plane(
        self, bin_dir: Path, ports: dict[str, int], real: bool = False
    ) -> None:
        pki = self.pki_dir
        etcd_url = f"http://127.0.0.1:{ports['etcd']}"
        peer_url = f"http://127.0.0.1:{ports['etcd-peer']}"
        self._start(
            "etcd",
            [
                str(bin_dir / "etcd"),
                "--name=vivified",
                f"--data-dir={self.dir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=vivified={peer_url}",
                "--unsafe-no-fsync=true",  # throw-away data: speed over durability
                "--log-level=warn",
            ],
        )
        self._start(
            "egress-guard",
            [
                sys.executable,
                str(HERE / "egress_guard.py"),
                str(self.dir / "egress.sock"),
                # With a real node: its pods, Services and kubelet, dialled inside its netns.
                *(
                    [
                        self.node.netns,
                        real_node.POD_SUBNET,
                        SERVICE_CIDR,
                        f"{real_node.NODE_IP}/32",
                    ]
                    if real
                    else []
                ),
            ],
        )
        self._wait("etcd", lambda: b"true" in self.request("GET", f"{etcd_url}/health"))
        self._wait("egress-guard", (self.dir / "egress.sock").exists)

        # Write requests are audited so tests can prove what a client did or did not write.
        audit_policy = self.dir / "audit-policy.yaml"
        audit_policy.write_text(AUDIT_POLICY)
        self._start(
            "kube-apiserver",
            [
                str(bin_dir / "kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports['apiserver']}",
                # Loopback cannot be an Endpoints address, so the `kubernetes`
                # Service gets no endpoints; nothing in this cluster needs them.
                "--advertise-address=127.0.0.1",
                "--endpoint-reconciler-type=none",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--authorization-mode=Node,RBAC",
                # On top of the default plugins (which include ValidatingAdmissionWebhook,
                # MutatingAdmissionWebhook, ValidatingAdmissionPolicy, ServiceAccount, ...).
                # PodNodeSelector + PodTolerationRestriction: a namespace's annotations send
                # its pods to the real node (node.REAL_NAMESPACE_ANNOTATIONS).
                "--enable-admission-plugins=NodeRestriction,PodNodeSelector,"
                "PodTolerationRestriction",
                f"--service-account-issuer={ISSUER}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
                # kwok nodes' InternalIP is 127.0.0.1; a Hostname would need DNS.
                "--kubelet-preferred-address-types=InternalIP",
                f"--egress-selector-config-file={self.dir / 'egress-selector.json'}",
                f"--requestheader-client-ca-file={pki / 'ca.crt'}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
                f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
                "--allow-privileged=true",
                "--profiling=false",
                f"--audit-policy-file={audit_policy}",
                f"--audit-log-path={self.dir / 'logs' / 'audit.log'}",
                "--audit-log-format=json",
                "--audit-log-maxsize=200",
                "--audit-log-maxbackup=1",
            ],
        )
        self._wait("kube-apiserver", lambda: self.get("/readyz") == b"ok")

        def component_args(name: str, port: int) -> list[str]:
            kubeconfig = pki / f"{name}.kubeconfig"
            return [
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--tls-cert-file={pki / 'serving.crt'}",
                f"--tls-private-key-file={pki / 'serving.key'}",
                "--leader-elect=false",  # one instance; saves the lease wait
            ]

        self._start(
            "kube-controller-manager",
            [
                str(bin_dir / "kube-controller-manager"),
                *component_args("controller-manager", ports["controller-manager"]),
                "--use-service-account-credentials=true",  # each controller its own RBAC identity
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
                "--cluster-name=vivified-local",
                # Default is under /usr/libexec, which it would create.
                f"--flex-volume-plugin-dir={self.dir / 'flexvolume'}",
                # No cloud: nothing may provision load balancers or routes.
                "--controllers=*,-cloud-node-lifecycle-controller,-service-lb-controller,"
                "-node-route-controller",
            ],
        )
        self._start(
            "kube-scheduler",
            [
                str(bin_dir / "kube-scheduler"),
                *component_args("scheduler", ports["scheduler"]),
            ],
        )

    def _start_nodes(self, bin_dir: Path, ports: dict[str, int], names: list[str]) -> None:
        pki = self.pki_dir
        self._start(
            "kwok",
            [
                str(bin_dir / "kwok"),
                f"--kubeconfig={pki / 'admin.kubeconfig'}",
                f"--config={HERE / 'kwok-stages.yaml'}",
                # Only the fake nodes: never the real node's kubelet-registered Node.
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                # Every node's "kubelet" is kwok's server on loopback (logs, exec).
                "--node-ip=127.0.0.1",
                "--node-name=localhost",
                f"--node-port={ports['kwok']}",
                f"--server-address=127.0.0.1:{ports['kwok']}",
                f"--tls-cert-file={pki / 'serving.crt'}",
                f"--tls-private-key-file={pki / 'serving.key'}",
                "--node-lease-duration-seconds=40",
                f"--cidr={POD_CIDR}",
            ],
        )
        for name in names:
            with contextlib.suppress(urllib.error.HTTPError):  # 409: exists already
                self.request(
                    "POST", f"https://127.0.0.1:{ports['apiserver']}/api/v1/nodes", node(name)
                )

    def _wait_usable(self, nodes: int) -> None:
        ports = self.ports()

        def healthy(name: str) -> bool:
            url = f"https://127.0.0.1:{ports[name]}/healthz"
            return self.request("GET", url, client=False) == b"ok"

        for name in ("controller-manager", "scheduler", "kwok"):
            self._wait(name, functools.partial(healthy, name))

        def nodes_ready() -> bool:
            items = json.loads(self.get("/api/v1/nodes"))["items"]
            ready = [
                n
                for n in items
                for c in n.get("status", {}).get("conditions", [])
                if c["type"] == "Ready" and c["status"] == "True"
            ]
            return len(ready) >= nodes

        self._wait("kwok nodes Ready", nodes_ready)
        # Pods cannot be created before the ServiceAccount controller made the
        # namespace's `default` ServiceAccount.
        self._wait(
            "default ServiceAccount",
            lambda: bool(self.get("/api/v1/namespaces/default/serviceaccounts/default")),
        )

    def _wait(self, what: str, check: Callable[[], bool]) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            # poll(), not /proc: right after exec a process's cmdline reads empty.
            for name, process in self.started.items():
                if process.poll() is not None:
                    raise ClusterError(
                        f"{name} exited ({process.returncode}); see {self.logs / name}.log:\n"
                        + tail(self.logs / f"{name}.log")
                    )
            with contextlib.suppress(OSError, urllib.error.URLError, ValueError, KeyError):
                if check():
                    return
            if time.monotonic() > deadline:
                raise ClusterError(f"timed out waiting for {what}; logs in {self.logs}")
            time.sleep(0.25)

    # --- faults (tests/chaos) ------------------------------------------------------

    def restart(self, name: str, down_seconds: float = 0.0) -> dict[str, float]:
        """kill -9 NAME's process group, wait DOWN_SECONDS, start it again with the command
        line it had, and wait until it (and the API server) serves again.

        Returns ``{"down": seconds without the process, "ready": seconds from the new start
        until it serves}``. The state (etcd's data, certificates, ports) is kept, as after a
        crash of one process on a real control plane.
        """
        if name not in RESTARTABLE:
            raise ClusterError(f"cannot restart {name!r}; one of {', '.join(RESTARTABLE)}")
        with self.locked():
            if not self.is_up():
                raise ClusterError("the cluster is not up")
            pid = self.recorded_pids()[name]
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
            argv = [part.decode() for part in raw.split(b"\0") if part]
            killed = time.monotonic()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            deadline = killed + STOP_TIMEOUT
            while self.is_ours(pid):
                if time.monotonic() > deadline:
                    raise ClusterError(f"{name} (pid {pid}) survived SIGKILL")
                time.sleep(0.02)
            log(f"killed {name} (pid {pid}) with SIGKILL")
            time.sleep(max(0.0, down_seconds))
            started = time.monotonic()
            self._start(name, argv)
            log(f"started {name} again (pid {self.started[name].pid})")
            self._wait(name, functools.partial(self._serves, name))
            if name != "kube-apiserver":
                self._wait("kube-apiserver", functools.partial(self._serves, "kube-apiserver"))
            ready = time.monotonic()
        return {"down": started - killed, "ready": ready - started}

    def _serves(self, name: str) -> bool:
        ports = self.ports()
        if name == "etcd":
            return b"true" in self.request("GET", f"http://127.0.0.1:{ports['etcd']}/health")
        if name == "kube-apiserver":
            return self.get("/readyz") == b"ok"
        url = f"https://127.0.0.1:{ports[RESTARTABLE[name]]}/healthz"
        return self.request("GET", url, client=False) == b"ok"

    # --- down --------------------------------------------------------------------

    def down(self) -> None:
        with self.locked():
            self._stop_all()
            self._clean()
        log(f"down; no process of {self.dir} left")

    def _stop_all(self) -> None:
        # One by one in reverse start order: the API server shuts down in a
        # second while etcd is there, but waits long for an etcd that is gone.
        recorded = self.recorded_pids()

        def stop_process(name: str) -> None:
            pid = recorded.get(name)
            if pid is not None and self.is_ours(pid):
                stop_group(pid, functools.partial(self.is_ours, pid))

        # The real node first (while the API server is there), and all it left on the machine.
        if real_node.available() is None and (
            self.node.dir.exists() or self.node.leftovers()["netns"]
        ):
            self.node.stop(stop_process)
        for name in reversed(COMPONENTS):
            pid = recorded.get(name)
            if pid is not None and self.is_ours(pid):
                stop_group(pid, functools.partial(self.is_ours, pid))
        # Whatever is left was never recorded (e.g. a start killed half-way).
        for pid in self.stray_processes():
            stop_group(pid, functools.partial(self.is_ours, pid))
        if left := self.stray_processes():
            raise ClusterError(f"processes of the cluster still running: {left}")

    def _clean(self) -> None:
        if not self.dir.is_dir():
            return
        for entry in self.dir.iterdir():
            if entry.name == ".lock":
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def node(name: str) -> dict[str, Any]:
    """A kwok-managed Node; kwok's node-initialize Stage fills in its status."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/os": "linux",
                "kubernetes.io/hostname": name,
            },
        },
        # No taint: ordinary workloads (the operator's Deployments) schedule here.
        "spec": {},
    }


def stop_group(pid: int, alive: Callable[[], bool]) -> None:
    """SIGTERM to PID's process group (PID leads it), SIGKILL if still ALIVE later."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)  # in case it left its group
        deadline = time.monotonic() + STOP_TIMEOUT
        while alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not alive():
            return


def port_free(port: int) -> bool:
    with socket.socket() as s:
        # As Go's listeners do: connections of a stopped cluster in TIME_WAIT
        # do not make the port busy.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pick_ports() -> dict[str, int]:
    return {
        name: port if port_free(port) else free_port() for name, port in PREFERRED_PORTS.items()
    }


def build_binaries() -> Path:
    """hack/cluster/build.sh: builds once, then answers from the cache at once."""
    result = subprocess.run(  # noqa: S603
        [str(HERE / "build.sh")], check=True, stdout=subprocess.PIPE, text=True
    )
    return Path(result.stdout.strip().splitlines()[-1])


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["up", "down", "status", "prepare", "restart"])
    parser.add_argument("name", nargs="?", help="restart: the process (etcd, kube-apiserver, ...)")
    parser.add_argument("--down", type=float, default=0.0, help="restart: seconds kept down")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="state directory")
    parser.add_argument("--nodes", type=int, default=1, help="number of kwok nodes")
    parser.add_argument(
        "--no-real-node", action="store_true", help="kwok nodes only (no containers run)"
    )
    args = parser.parse_args()
    cluster = Cluster(args.dir)
    try:
        if args.command == "up":
            cluster.up(args.nodes, real=not args.no_real_node)
        elif args.command == "down":
            cluster.down()
        elif args.command == "restart":
            if not args.name:
                parser.error("restart needs the process name")
            print(json.dumps(cluster.restart(args.name, args.down)))
        elif args.command == "prepare":
            if (why := real_node.available()) is not None:
                log(f"no real node: {why}")
                return 0
            real_node.ensure_packages()
            image_builder.build()
        else:
            up = cluster.is_up()
            print("up" if up else "down")
            return 0 if up else 1
    except (ClusterError, real_node.NodeError, subprocess.CalledProcessError) as error:
        log(f"error: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
