"""``vivified operator --print-settings``: every effective setting, by section."""

from __future__ import annotations

import io
import os
import subprocess
import sys

from vivified.settings import OperatorSettings, settings_by_section
from vivified.shell.main import print_settings


def test_every_setting_is_printed_once_under_a_section() -> None:
    sections = settings_by_section(OperatorSettings())
    names = [name for values in sections.values() for name in values]
    assert len(names) == len(set(names)) == len(OperatorSettings().to_env())
    assert "VIVIFIED_TOKEN_TTL_SECONDS" in sections["tokens"]
    assert "VIVIFIED_PROBE_MODE" in sections["probes"]


def test_the_printout_shows_effective_values_with_peering_and_webhook() -> None:
    out = io.StringIO()
    print_settings({"VIVIFIED_RESYNC_SECONDS": "30", "VIVIFIED_PROBE_MODE": "overrides"}, out)
    text = out.getvalue()
    for section in ("tokens:", "health:", "probes:", "network:", "dependencies:", "peering:"):
        assert section in text
    assert "webhook:" in text
    assert "  VIVIFIED_RESYNC_SECONDS=30\n" in text
    assert "  VIVIFIED_PROBE_MODE=overrides\n" in text
    assert "VIVIFIED_PEERING_NAME=(standalone)" in text


def test_vivified_print_settings_is_the_same_printout() -> None:
    def run(*args: str) -> str:
        env = {
            "VIVIFIED_PROBE_MODE": "overrides",
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        }
        done = subprocess.run(
            [sys.executable, "-m", "vivified", *args],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert run("print-settings") == run("operator", "--print-settings")
