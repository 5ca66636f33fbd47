"""The operator's lifecycle changes land in the audit trail, and `vivified audit` reads them.

Here the operator writes a file trail with signed checkpoints; the lanes' records, read back
from a JetStream trail, are in test_audit_lanes.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.e2e.conftest import StartOperator
from tests.e2e.kube import Cluster, plugin_body, wait_for

from vivified.audit.checkpoint import Signer

pytestmark = pytest.mark.cluster


def audit(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vivified", "audit", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def lifecycle(trail: Path, plugin: str) -> list[str]:
    result = audit("query", "--file", str(trail), "--plugin", plugin, "-o", "json")
    assert result.returncode == 0, result.stderr
    return [r["action"] for r in json.loads(result.stdout)]


def test_disable_and_enable_are_audited_and_the_trail_verifies(
    cluster: Cluster, namespace: str, start_operator: StartOperator, tmp_path: Path
) -> None:
    trail = tmp_path / "audit" / "trail.jsonl"
    key = tmp_path / "audit.key"
    signer = Signer.generate()
    key.write_bytes(signer.private_pem())
    (tmp_path / "audit.pub").write_bytes(signer.public_pem())
    operator = start_operator(
        namespace, audit_sink=f"file:{trail}", audit_key_file=str(key), audit_writer="op-e2e"
    )
    cluster.apply_plugin(namespace, plugin_body("audited"))
    cluster.wait_phase(namespace, "audited", "Active")
    wait_for("enabled audited", lambda: "lifecycle.enabled" in lifecycle(trail, "audited"))
    cluster.patch_spec(namespace, "audited", {"enabled": False})
    cluster.wait_phase(namespace, "audited", "Disabled")
    wait_for("disabled audited", lambda: "lifecycle.disabled" in lifecycle(trail, "audited"))
    cluster.patch_spec(namespace, "audited", {"enabled": True})
    cluster.wait_phase(namespace, "audited", "Active")
    wait_for(
        "re-enabled audited", lambda: lifecycle(trail, "audited").count("lifecycle.enabled") == 2
    )

    actions = lifecycle(trail, "audited")
    assert actions[0] == "lifecycle.token_minted" or "lifecycle.created" in actions
    disabled = actions.index("lifecycle.disabled")
    assert "lifecycle.token_revoked" in actions[disabled - 1 : disabled + 2]
    assert actions.index("lifecycle.enabled") < disabled < len(actions) - 1
    assert actions[-1] == "lifecycle.enabled"
    assert actions.count("lifecycle.token_minted") == 2

    # Deleted: one record with the plugin's uid and the id of the token revoked with it.
    uid = cluster.plugin(namespace, "audited")["metadata"]["uid"]  # type: ignore[index]
    cluster.delete_plugin(namespace, "audited")
    wait_for("deleted audited", lambda: "lifecycle.deleted" in lifecycle(trail, "audited"))
    query = audit("query", "--file", str(trail), "--action", "lifecycle.deleted", "-o", "json")
    (deleted,) = json.loads(query.stdout)
    assert (deleted["entity"]["plugin"], deleted["entity"]["uid"]) == ("audited", uid)
    assert deleted["entity"]["revoked_jti"]

    records = json.loads(audit("query", "--file", str(trail), "-o", "json").stdout)
    assert {r["writer"] for r in records} == {"op-e2e"}
    assert all(
        r["agent"] == {"type": "system", "id": "vivified-operator", "requestor": True}
        for r in records
    )
    assert "eyJ" not in trail.read_text()  # no JWT: ids (jti, kid) only, never a token
    operator.stop()
    time.sleep(0.1)
    verified = audit("verify", "--file", str(trail), "--public-key", str(tmp_path / "audit.pub"))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("intact:")
    fhir = audit("query", "--file", str(trail), "--action", "lifecycle.disabled", "-o", "fhir")
    event = json.loads(fhir.stdout)["entry"][0]["resource"]
    assert event["resourceType"] == "AuditEvent"
    assert event["subtype"][0]["code"] == "lifecycle.disabled"
