"""The chart's audit trail values: on with the event lane's NATS, a kept Ed25519 checkpoint key,
one chain per pod, and a warning (or a refusal saying why) when it cannot be on."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.unit.test_chart import CHART, NAMESPACE, RenderError, only, render

from vivified.audit.checkpoint import Signer
from vivified.dataplane.audit.setup import AuditSettings

ON = {"events": {"enabled": True}}


def pods(helm: Path, values: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """The operator's and the core's pod specs."""
    operator = only(render(helm, values), "Deployment")
    core = only(render(helm, values, core=True), "Deployment", "vivified-core")
    return {
        "operator": operator["spec"]["template"]["spec"],
        "core": core["spec"]["template"]["spec"],
    }


def env_of(spec: dict[str, Any]) -> dict[str, Any]:
    (container,) = spec["containers"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def notes(helm: Path, tmp_path: Path, values: list[str]) -> str:
    """NOTES.txt as rendered (helm template skips it: render a copy as a plain template)."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    shutil.copy(chart / "templates" / "NOTES.txt", chart / "notes.txt")
    (chart / "templates" / "notes-copy.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n"
        '  text: {{ tpl (.Files.Get "notes.txt") . | quote }}\n'
    )
    command = [str(helm), "template", "rel", str(chart), "-n", NAMESPACE]
    command += [arg for value in values for arg in ("--set", value)]
    command += ["--show-only", "templates/notes-copy.yaml"]
    rendered = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return str(yaml.safe_load(rendered)["data"]["text"])


def test_off_without_nats_says_so_and_sets_no_sink(helm: Path, tmp_path: Path) -> None:
    for spec in pods(helm).values():
        assert env_of(spec)["VIVIFIED_AUDIT_SINK"] == "none"
        assert "audit-key" not in {v["name"] for v in spec["volumes"]}
    assert not [d for d in render(helm) if d["metadata"]["name"].endswith("-audit-key")]
    text = notes(helm, tmp_path, [])
    assert "WARNING: the audit trail is OFF" in text
    assert "event lane's NATS is not configured" in text


def test_on_with_the_event_lanes_nats_in_both_deployments_one_chain_per_pod(
    helm: Path, tmp_path: Path
) -> None:
    for role, spec in pods(helm, ON).items():
        env = env_of(spec)
        assert env["VIVIFIED_AUDIT_SINK"].startswith("nats://rel-vivified-nats.")
        assert env["VIVIFIED_AUDIT_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
        assert env["VIVIFIED_AUDIT_WRITER"] == f"{role}-$(VIVIFIED_AUDIT_POD_NAME)"
        assert env["VIVIFIED_AUDIT_MAX_AGE_DAYS"] == "2192"  # six years
        (container,) = spec["containers"]
        mount = next(m for m in container["volumeMounts"] if m["name"] == "audit-key")
        assert mount["readOnly"] is True
        assert env["VIVIFIED_AUDIT_KEY_FILE"] == mount["mountPath"] + "/key.pem"
        volume = next(v for v in spec["volumes"] if v["name"] == "audit-key")
        assert volume["secret"]["secretName"] == "rel-vivified-audit-key"
        assert volume["secret"]["defaultMode"] == 0o440  # root-owned: the pod's group reads
        assert spec["securityContext"]["fsGroup"] == container["securityContext"]["runAsGroup"]
        # What the process builds from it, with the pod name the kubelet substitutes.
        resolved = {k: v for k, v in env.items() if isinstance(v, str)}
        resolved["VIVIFIED_AUDIT_WRITER"] = f"{role}-vivified-5d8f-x2k4q"
        settings = AuditSettings.from_env(resolved, role=role)
        assert settings.writer == f"{role}-vivified-5d8f-x2k4q"
        assert settings.stream.max_age_days == 2192
    assert "Audit trail: on" in notes(helm, tmp_path, ["events.enabled=true"])


def test_the_generated_checkpoint_key_is_ed25519_and_kept(helm: Path) -> None:
    secret = only(render(helm, ON), "Secret", "rel-vivified-audit-key")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    pem = base64.b64decode(secret["data"]["key.pem"])
    Signer.from_pem(pem)  # the writers' own loader takes it
    assert b"BEGIN PRIVATE KEY" in pem
    # Kept across upgrades: the template reuses the live Secret it looks up.
    template = (CHART / "templates" / "audit.yaml").read_text()
    assert 'lookup "v1" "Secret" .Release.Namespace $name' in template


def test_an_existing_key_secret_is_mounted_and_none_generated(helm: Path) -> None:
    values = {**ON, "audit": {"checkpointKey": {"existingSecret": "my-audit-key"}}}
    assert not [d for d in render(helm, values) if d["metadata"]["name"].endswith("-audit-key")]
    for spec in pods(helm, values).values():
        volume = next(v for v in spec["volumes"] if v["name"] == "audit-key")
        assert volume["secret"]["secretName"] == "my-audit-key"


def test_the_operator_gets_the_lanes_nats_credentials_and_ca(helm: Path) -> None:
    nats = {"mode": "external", "url": "tls://nats.nats.svc:4222"}
    nats |= {"credentialsSecret": "nats-creds", "tlsCaSecret": "nats-ca"}
    spec = pods(helm, {"events": {"enabled": True, "replicas": 3, "nats": nats}})["operator"]
    env = env_of(spec)
    assert env["VIVIFIED_AUDIT_SINK"] == "tls://nats.nats.svc:4222"
    assert env["VIVIFIED_AUDIT_REPLICAS"] == "3"
    (container,) = spec["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert env["VIVIFIED_NATS_CREDS"].startswith(mounts["nats-creds"] + "/")
    assert env["VIVIFIED_NATS_TLS_CA"].startswith(mounts["nats-tls"] + "/")


def test_off_on_request_even_with_nats(helm: Path, tmp_path: Path) -> None:
    values = {**ON, "audit": {"enabled": False}}
    for spec in pods(helm, values).values():
        assert env_of(spec)["VIVIFIED_AUDIT_SINK"] == "none"
    text = notes(helm, tmp_path, ["events.enabled=true", "audit.enabled=false"])
    assert "WARNING: the audit trail is OFF" in text


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"audit": {"enabled": True}}, "audit.enabled=true needs NATS"),
        ({"audit": {"enabled": "yes"}}, "audit/enabled"),
        ({**ON, "audit": {"maxAgeDays": 0}}, "maxAgeDays"),
        ({**ON, "audit": {"retention": 1}}, "retention"),
    ],
)
def test_bad_audit_values_are_refused_saying_why(
    helm: Path, values: dict[str, Any], match: str
) -> None:
    with pytest.raises(RenderError, match=match):
        render(helm, values)
