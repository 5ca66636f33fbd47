"""Images for the real node, built on this machine: no registry, no network inside a build.

    images.py build   build (or reuse) every image; print {name: reference} as JSON

Chain (each step cached by a content hash under ${VIVIFIED_CACHE:-~/.cache/vivified}/images/):

1. **base**: `debootstrap --variant=minbase bookworm` with Debian's python3 (3.11), venv and
   `python` → `docker import` → ``localhost/vivified/base:<hash>``. It replaces the public
   ``python:*-slim`` image, which cannot be pulled here.
2. **wheels**: every Python dependency of the images, built on the host by the host's pip
   (`pip wheel`: the host reaches the package index, a container does not) →
   ``localhost/vivified/build-base:<hash>``: the base plus ``/wheels`` and
   ``PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels``, the Dockerfiles' build stage.
3. **project images** from the project's own Dockerfiles, `docker build --network none` with
   ``--build-arg PYTHON_IMAGE=<base> --build-arg BUILD_IMAGE=<build-base>``: the operator/core
   (`Dockerfile`) and each example plugin (`plugins/*/Dockerfile`). With no build arguments
   the same Dockerfiles build on a normal Docker from the public images.
4. **pause** and **coredns**: `FROM scratch` plus the static binaries from build.sh.

Each image is saved (`docker save`) to a tarball named by its hash; the real node imports the
tarballs into its containerd (`ctr -n k8s.io images import`). A cache hit needs no Docker at
all. On a miss, this script starts its own dockerd (data under the cache, socket and exec
root private, no bridge, no iptables) and stops it when done; one build at a time per
machine (a lock).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CACHE = Path(os.environ.get("VIVIFIED_CACHE", Path.home() / ".cache" / "vivified"))
IMAGES = CACHE / "images"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
REGISTRY = "localhost/vivified"
#: Project images: name -> Dockerfile (relative to the repository root, the build context).
PROJECT_IMAGES = {
    "operator": "Dockerfile",
    "user-management": "plugins/user-management/Dockerfile",
}
DOCKER = shutil.which("docker", path="/usr/bin") or "docker"  # Debian's docker.io client


def log(message: str) -> None:
    print(f"images: {message}", file=sys.stderr, flush=True)


def digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:12]


#: Path parts never hashed (the .dockerignore's `**/` patterns).
IGNORED_PARTS = frozenset({"__pycache__", "build", ".pytest_cache", ".mypy_cache"})


def tree_digest(paths: list[Path]) -> str:
    """Hash of file names and contents under PATHS (the working tree, not just commits)."""
    h = hashlib.sha256()
    for root in paths:
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        for f in files:
            if not f.is_file() or f.suffix == ".pyc":
                continue
            # What .dockerignore keeps out of the context. `build/` matters most: the host's
            # `pip wheel` of sdk/python writes sdk/python/build/, which changed the key of
            # every image that copies the SDK on the next run (a rebuild for nothing).
            parts = f.relative_to(REPO).parts
            if any(part in IGNORED_PARTS or part.endswith(".egg-info") for part in parts):
                continue
            h.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def copy_sources(dockerfile: str) -> list[str]:
    """The build-context paths DOCKERFILE's ``COPY`` instructions read (not ``--from=``).

    An image's cache key hashes only these, so a change to the operator does not rebuild a
    plugin image, and a change to a plugin does not rebuild the operator image."""
    text = (REPO / dockerfile).read_text().replace("\\\n", " ")
    sources: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].upper() not in ("COPY", "ADD"):
            continue
        args = words[1:]
        if any(a.startswith("--from") for a in args):
            continue
        paths = [a for a in args if not a.startswith("--")][:-1]  # the last one is the target
        if any(any(c in a for c in "*?[$") for a in paths):
            raise ValueError(f"{dockerfile}: cannot hash the COPY source pattern in {line!r}")
        sources += [a.rstrip("/") or "." for a in paths]
    return sorted(set(sources))


def bin_dir() -> Path:
    result = subprocess.run(  # noqa: S603
        [str(HERE / "build.sh")], check=True, stdout=subprocess.PIPE, text=True
    )
    return Path(result.stdout.strip().splitlines()[-1])


class Docker:
    """A private dockerd for the duration of a build (started lazily, stopped at exit)."""

    def __init__(self) -> None:
        self.root = CACHE / "docker"
        # Unix socket paths are short; /run is the machine's, not the cache's.
        self.run_dir = Path("/run/vivified-images")
        self.socket = self.run_dir / "docker.sock"
        self.process: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env["DOCKER_HOST"] = f"unix://{self.socket}"
        env["DOCKER_BUILDKIT"] = "0"  # Debian's docker.io has no buildx; the classic builder
        return env

    def start(self) -> None:
        if self.process is not None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        log_file = (CACHE / "dockerd.log").open("ab")
        self.process = subprocess.Popen(  # noqa: S603
            [
                "/usr/sbin/dockerd",
                f"--data-root={self.root}",
                f"--exec-root={self.run_dir / 'exec'}",
                f"--pidfile={self.run_dir / 'dockerd.pid'}",
                f"--host=unix://{self.socket}",
                "--bridge=none",  # builds run with --network none; no docker0, no NAT
                "--iptables=false",
                "--ip-forward=false",
                "--ip-masq=false",
                "--userland-proxy=false",
                "--oom-score-adjust=0",  # this machine refuses negative adjustments
                "--storage-driver=overlay2",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=self.env(),
        )
        deadline = time.monotonic() + 60
        while self.run("version", check=False, quiet=True).returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not start; see {CACHE / 'dockerd.log'}")
            time.sleep(0.5)
        log("dockerd started")

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, 15)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait()
        self.process = None
        shutil.rmtree(self.run_dir, ignore_errors=True)  # its socket and exec root
        log("dockerd stopped")

    def run(
        self, *args: str, check: bool = True, quiet: bool = False, stdin: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        out = subprocess.DEVNULL if quiet else sys.stderr
        return subprocess.run(  # noqa: S603
            [DOCKER, *args], env=self.env(), check=check, input=stdin, stdout=out, stderr=out
        )

    def has(self, ref: str) -> bool:
        return self.run("image", "inspect", ref, check=False, quiet=True).returncode == 0


@contextlib.contextmanager
def locked() -> Iterator[None]:
    IMAGES.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".images.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


class Builder:
    def __init__(self, docker: Docker) -> None:
        self.docker = docker
        self._binaries: Path | None = None
        self.base_key = digest(DEBIAN_SUITE, *BASE_PACKAGES)
        self.base = f"{REGISTRY}/base:{self.base_key}"
        self.wheels_key = digest(
            self.base_key, *map(self.requirements_of, self.requirement_files())
        )
        self.build_base = f"{REGISTRY}/build-base:{self.wheels_key}"

    @property
    def binaries(self) -> Path:
        if self._binaries is None:
            self._binaries = bin_dir()
        return self._binaries

    @staticmethod
    def requirement_files() -> list[Path]:
        files = [REPO / "pyproject.toml", *sorted(REPO.glob("plugins/*/requirements.txt"))]
        files += sorted(REPO.glob("sdk/*/pyproject.toml"))
        return files

    @staticmethod
    def requirements_of(path: Path) -> str:
        """What pip installs from PATH (not the rest of a pyproject.toml, e.g. tool settings)."""
        if path.suffix != ".toml":
            return path.read_text()
        data = tomllib.loads(path.read_text())
        project = data.get("project", {})
        wanted = [
            project.get("dependencies", []),
            project.get("optional-dependencies", {}),
            data.get("build-system", {}).get("requires", []),
        ]
        return json.dumps(wanted, sort_keys=True)

    def tarball(self, ref: str) -> Path:
        name = ref.removeprefix(f"{REGISTRY}/").replace(":", "-")
        return IMAGES / f"{name}.tar"

    def ensure_base(self) -> None:
        self.docker.start()
        if self.docker.has(self.base):
            return
        rootfs_tar = IMAGES / f"base-rootfs-{self.base_key}.tar"
        if not rootfs_tar.exists():
            self.debootstrap(rootfs_tar)
        with rootfs_tar.open("rb") as f:
            self.docker.run("import", "--change", 'CMD ["python3"]', "-", self.base, stdin=f.read())

    def debootstrap(self, out: Path) -> None:
        log(f"debootstrap {DEBIAN_SUITE} with {', '.join(BASE_PACKAGES)}")
        started = time.monotonic()
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            root = Path(tmp) / "rootfs"
            subprocess.run(  # noqa: S603
                [
                    "/usr/sbin/debootstrap",
                    "--variant=minbase",
                    f"--include={','.join(BASE_PACKAGES)}",
                    DEBIAN_SUITE,
                    str(root),
                    DEBIAN_MIRROR,
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            # Smaller and reproducible-ish: no apt lists, caches or docs.
            for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc"):
                shutil.rmtree(root / junk, ignore_errors=True)
            partial = out.with_suffix(".partial")
            subprocess.run(  # noqa: S603
                ["/usr/bin/tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."],
                check=True,
            )
            partial.replace(out)
        log(f"base rootfs in {time.monotonic() - started:.0f}s")

    def ensure_build_base(self) -> None:
        # dockerd first: asked before it ran, `has` always said no, so every project-image miss
        # also re-ran `pip wheel` and rebuilt the build base (1-2 min of each warm run).
        self.docker.start()
        if self.docker.has(self.build_base):
            return
        self.ensure_base()
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            context = Path(tmp)
            wheels = context / "wheels"
            self.pip_wheel(wheels)
            (context / "Dockerfile").write_text(
                f"FROM {self.base}\n"
                "COPY wheels /wheels\n"
                "ENV PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels\n"
            )
            self.docker.run("build", "--network", "none", "-q", "-t", self.build_base, str(context))

    def pip_wheel(self, out: Path) -> None:
        """Wheels of everything the Dockerfiles' pip installs, built with the host's pip."""
        log("pip wheel (host)")
        args = ["pip==25.3"]
        for pyproject in [REPO / "pyproject.toml", *sorted(REPO.glob("sdk/*/pyproject.toml"))]:
            data = tomllib.loads(pyproject.read_text())
            args += data.get("build-system", {}).get("requires", [])
            args.append(str(pyproject.parent))
        for requirements in sorted(REPO.glob("plugins/*/requirements.txt")):
            args += ["-r", str(requirements)]
        env = {k: v for k, v in os.environ.items() if k != "PIP_NO_INDEX"}
        subprocess.run(  # noqa: S603
            [sys.executable, "-m", "pip", "wheel", "--quiet", "-w", str(out), *args],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )

    def project_image(self, name: str, dockerfile: str) -> str:
        key = digest(
            self.wheels_key,
            (REPO / dockerfile).read_bytes(),
            (REPO / ".dockerignore").read_bytes(),
            tree_digest([REPO / p for p in copy_sources(dockerfile)]),
        )
        ref = f"{REGISTRY}/{name}:{key}"
        if self.tarball(ref).exists():
            return ref
        self.ensure_build_base()
        log(f"docker build {ref} ({dockerfile})")
        self.docker.run(
            "build",
            "--network",
            "none",
            "-q",
            "--build-arg",
            f"PYTHON_IMAGE={self.base}",
            "--build-arg",
            f"BUILD_IMAGE={self.build_base}",
            "-f",
            str(REPO / dockerfile),
            "-t",
            ref,
            str(REPO),
        )
        self.save(ref)
        return ref

    def binary_image(self, name: str, binary: str, argv: list[str]) -> str:
        path = self.binaries / binary
        key = digest(path.read_bytes(), json.dumps(argv))
        ref = f"{REGISTRY}/{name}:{key}"
        if self.tarball(ref).exists():
            return ref
        self.docker.start()
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            shutil.copy2(path, Path(tmp) / binary)
            (Path(tmp) / "Dockerfile").write_text(
                f"FROM scratch\nCOPY {binary} /{binary}\nENTRYPOINT {json.dumps(argv)}\n"
            )
            self.docker.run("build", "--network", "none", "-q", "-t", ref, tmp)
        self.save(ref)
        return ref

    def save(self, ref: str) -> None:
        """The image as a tarball in the cache; dockerd keeps only the bases (its data root
        would otherwise grow by one image per code change)."""
        out = self.tarball(ref)
        partial = out.with_suffix(".partial")
        self.docker.run("save", "-o", str(partial), ref)
        partial.replace(out)
        self.docker.run("rmi", ref, check=False, quiet=True)
        prune(ref.removeprefix(f"{REGISTRY}/").split(":")[0])

    def all(self) -> dict[str, str]:
        refs = {
            "pause": self.binary_image("pause", "pause", ["/pause"]),
            "coredns": self.binary_image("coredns", "coredns", ["/coredns"]),
        }
        for image, dockerfile in PROJECT_IMAGES.items():
            refs[image] = self.project_image(image, dockerfile)
        return refs


#: Tarballs kept per image name: one per worktree of a busy day, and then some.
KEEP_PER_IMAGE = 8


def prune(name: str) -> None:
    """Deletes all but the newest KEEP_PER_IMAGE tarballs of image NAME."""
    tarballs = sorted(IMAGES.glob(f"{name}-*.tar"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in tarballs[KEEP_PER_IMAGE:]:
        old.unlink(missing_ok=True)


def build() -> dict[str, tuple[str, Path]]:
    """Every image: name -> (reference, tarball). Cached; Docker only on a miss."""
    with locked():
        docker = Docker()
        try:
            builder = Builder(docker)
            refs = builder.all()
        finally:
            docker.stop()
        return {name: (ref, builder.tarball(ref)) for name, ref in refs.items()}


def main() -> int:
    if sys.argv[1:] != ["build"]:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps({name: ref for name, (ref, _) in build().items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
