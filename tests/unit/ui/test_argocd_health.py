"""The Argo CD health check runs under Lua 5.1 (Argo CD embeds gopher-lua, a Lua 5.1) through
lupa, against the cases in Argo CD's own health_test.yaml format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51

HERE = Path(__file__).resolve().parents[3] / "integrations/argocd/vivified.dev/VivifiedPlugin"
CASES = yaml.safe_load((HERE / "health_test.yaml").read_text())["tests"]


def health(obj: dict[str, Any]) -> dict[str, str]:
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = runtime.table_from(obj, recursive=True)
    script = (HERE / "health.lua").read_text()
    result = runtime.execute(script)
    return {"status": result["status"], "message": result["message"]}


@pytest.mark.parametrize("case", CASES, ids=[Path(c["inputPath"]).stem for c in CASES])
def test_health_lua(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((HERE / case["inputPath"]).read_text())
    assert health(obj) == case["healthStatus"]


def test_every_phase_and_health_has_a_case() -> None:
    seen = {
        (yaml.safe_load((HERE / c["inputPath"]).read_text()).get("status") or {}).get(k)
        for c in CASES
        for k in ("phase", "health")
    }
    assert {
        "Pending",
        "Active",
        "Disabled",
        "Invalid",
        "healthy",
        "degraded",
        "unhealthy",
        "unknown",
    } <= seen
