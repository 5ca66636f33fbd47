"""The SDK installs alone, and a scaffolded plugin needs nothing of the operator.

Fresh virtual environments, real ``pip`` (dependencies from the package index through pip's
cache, as ``make install`` gets them). The SDK itself always comes from this repository
(installed from its path first), so the name ``vivified-sdk`` is never looked up on an index.
``--no-compile``: pip compiles every installed file to bytecode, which these tests never need;
Python compiles what they import anyway (an A/B install measured 82 s vs 57 s, under load).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / "sdk" / "python"
OPERATOR_ONLY = {"kopf", "kubernetes", "vivified-operator", "pyyaml", "aiohttp"}


def _venv(path: Path) -> Path:
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    return path / "bin" / "python"


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=False, cwd=cwd, env=env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _installed(python: Path) -> set[str]:
    out = _run(python, "-m", "pip", "list", "--format=freeze")
    return {line.split("==")[0].lower() for line in out.splitlines() if "==" in line}


def _site_packages_bytes(python: Path) -> int:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    root = Path(_run(python, "-c", code).strip())
    skip = {"pip", "setuptools", "_distutils_hack"}
    return sum(
        f.stat().st_size
        for f in root.rglob("*")
        if f.is_file() and f.relative_to(root).parts[0].split("-")[0] not in skip
    )


@pytest.fixture(scope="module")
def sdk_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding ``pip install ./sdk/python`` and nothing else."""
    root = tmp_path_factory.mktemp("sdk")
    # pip builds in the source tree; a copy keeps build/ out of the checkout.
    source = shutil.copytree(
        SDK, root / "python", ignore=shutil.ignore_patterns("build", "*.egg-info")
    )
    python = _venv(root / "venv")
    _run(python, "-m", "pip", "install", "--quiet", "--no-compile", source)
    return python


def test_the_sdk_installs_alone(sdk_venv: Path) -> None:
    python = sdk_venv
    show = _run(python, "-m", "pip", "show", "vivified-sdk")
    requires = next(line for line in show.splitlines() if line.startswith("Requires:"))
    assert sorted(r.strip() for r in requires.split(":", 1)[1].split(",")) == ["httpx", "pyjwt"]
    assert "cryptography" in _installed(python)  # pyjwt[crypto]
    assert not _installed(python) & OPERATOR_ONLY
    code = (
        "import sys, vivified_sdk; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'kopf', 'kubernetes', 'pydantic', 'aiohttp', 'yaml', 'vivified'}))"
    )
    assert _run(python, "-c", code).strip() == "[]"
    size = _site_packages_bytes(python)
    # Not a speed target: a guard against dragging the operator's stack back in (the
    # Kubernetes client alone is ~75 MB). Measured: see docs/decisions.md.
    assert size < 40 * 1024 * 1024, f"{size / 1e6:.1f} MB installed"


def test_a_scaffold_needs_only_the_sdk_and_its_tests_pass(tmp_path: Path, sdk_venv: Path) -> None:
    """The scaffold's requirements on top of the SDK alone (already installed from this
    repository, so ``vivified-sdk==<version>`` is satisfied without an index lookup)."""
    _run(sys.executable, "-m", "vivified", "create-plugin", "billing", "--dir", tmp_path)
    billing = tmp_path / "billing"
    python = sdk_venv
    _run(
        python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-compile",
        "-r",
        billing / "requirements.txt",
    )
    installed = _installed(python)
    assert "vivified-sdk" in installed
    assert not installed & OPERATOR_ONLY
    _run(python, "-m", "pip", "install", "--quiet", "--no-compile", "pytest==9.2.0")
    out = _run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", cwd=billing)
    assert "3 passed" in out
