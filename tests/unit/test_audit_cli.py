"""``vivified audit verify|query|export|keygen`` on a file trail written by the auditor."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from vivified.audit import AuditEntry
from vivified.audit.checkpoint import Signer
from vivified.cli import Streams, main
from vivified.dataplane.audit.auditor import ChainAuditor
from vivified.dataplane.audit.file import FileSink

SIGNER = Signer.generate()

ENTRIES = [
    AuditEntry(
        action="invoke",
        agent="billing",
        outcome="allowed",
        entity={"target": "user-management", "operation": "user_info"},
        details={"method": "GET", "status": 200, "duration_ms": 3.2},
        audit_level="detailed",
    ),
    AuditEntry(
        action="egress.decision",
        agent="billing",
        outcome="refused",
        reason="domain_not_allowed",
        entity={"host": "evil.example", "port": "443"},
        audit_level="basic",
    ),
    AuditEntry(
        action="event.publish",
        agent="user-management",
        outcome="allowed",
        entity={"event_type": "UserCreated"},
        audit_level="basic",
    ),
    AuditEntry(
        action="lifecycle.disabled",
        agent="operator",
        outcome="allowed",
        entity={"plugin": "billing"},
    ),
    AuditEntry(
        action="lifecycle.enabled",
        agent="operator",
        outcome="allowed",
        entity={"plugin": "billing"},
    ),
]


@pytest.fixture
async def trail(tmp_path: Path) -> Path:
    path = tmp_path / "audit.jsonl"
    auditor = ChainAuditor(FileSink(path), "core-0", signer=SIGNER, checkpoint_every=2)
    await auditor.start()
    for _ in range(2):
        for entry in ENTRIES:
            await auditor.record(entry)
    await auditor.close()
    (tmp_path / "key.pub").write_bytes(SIGNER.public_pem())
    return path


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), Streams(out, err))
    return code, out.getvalue(), err.getvalue()


def verify(path: Path, key: Path | None = None) -> tuple[int, str, str]:
    key = key or path.parent / "key.pub"
    return run("audit", "verify", "--file", str(path), "--public-key", str(key))


def test_intact_trail_passes(trail: Path) -> None:
    code, out, err = verify(trail)
    assert code == 0, out + err
    assert out.startswith("intact: 10 records, 5 checkpoints (core-0 to seq 10)")


def test_flipped_byte_is_tampered(trail: Path) -> None:
    data = bytearray(trail.read_bytes())
    lines = data.split(b"\n")
    at = sum(len(x) + 1 for x in lines[:3]) + lines[3].index(b"lifecycle") + 1
    data[at] ^= 0x20
    trail.write_bytes(bytes(data))
    code, out, _ = verify(trail)
    assert code == 1
    assert "first broken record 4 (writer core-0, seq 4)" in out


def test_deleted_record_is_tampered(trail: Path) -> None:
    lines = trail.read_bytes().splitlines(keepends=True)
    trail.write_bytes(b"".join(lines[:5] + lines[6:]))
    code, out, _ = verify(trail)
    assert code == 1
    assert "seq 7" in out
    assert "records 6..6 missing" in out


def test_truncated_tail_is_tampered(trail: Path) -> None:
    lines = trail.read_bytes().splitlines(keepends=True)
    trail.write_bytes(b"".join(lines[:7]))
    code, out, _ = verify(trail)
    assert code == 1
    assert "tail cut off" in out
    assert "seq 8" in out


def test_unusable_input(tmp_path: Path, trail: Path) -> None:
    assert run("audit", "verify", "--file", str(tmp_path / "missing"))[0] == 2
    bad_key = tmp_path / "bad.pem"
    bad_key.write_text("nope")
    code, _, err = run("audit", "verify", "--file", str(trail), "--public-key", str(bad_key))
    assert code == 2
    assert "public key" in err


def test_verify_json_and_no_key_warning(trail: Path) -> None:
    code, out, _ = run("audit", "verify", "--file", str(trail), "-o", "json")
    assert code == 0
    report = json.loads(out)
    assert report["intact"] is True
    assert report["writers"]["core-0"]["seq"] == 10
    assert any("no public key" in w for w in report["warnings"])


def test_query_by_plugin_and_action(trail: Path) -> None:
    code, out, _ = run("audit", "query", "--file", str(trail), "--plugin", "billing", "-o", "json")
    assert code == 0
    found = json.loads(out)
    assert [r["action"] for r in found[:4]] == [
        "invoke",
        "egress.decision",
        "lifecycle.disabled",
        "lifecycle.enabled",
    ]
    assert found[0]["details"]["method"] == "GET"
    code, out, _ = run("audit", "query", "--file", str(trail), "--action", "lifecycle")
    assert code == 0
    assert len(out.splitlines()) == 4
    code, out, _ = run(
        "audit", "query", "--file", str(trail), "--since", "1h", "--outcome", "refused"
    )
    assert len(out.splitlines()) == 2
    assert "domain_not_allowed" in out
    code, out, _ = run("audit", "query", "--file", str(trail), "--until", "2000-01-01")
    assert out == ""


def test_query_fhir(trail: Path) -> None:
    code, out, _ = run("audit", "query", "--file", str(trail), "--action", "egress", "-o", "fhir")
    assert code == 0
    bundle = json.loads(out)
    assert bundle["resourceType"] == "Bundle"
    event = bundle["entry"][0]["resource"]
    assert event["resourceType"] == "AuditEvent"
    assert event["outcome"] == "4"
    assert event["outcomeDesc"] == "domain_not_allowed"
    assert event["agent"][0]["who"]["identifier"]["value"] == "billing"
    assert event["agent"][0]["requestor"] is True
    assert event["entity"][0]["what"]["identifier"]["value"] == "evil.example"


def test_export_round_trip_and_fhir(trail: Path, tmp_path: Path) -> None:
    copy = tmp_path / "export" / "trail.jsonl"
    assert run("audit", "export", "--file", str(trail), "--to", str(copy))[0] == 0
    assert verify(copy, trail.parent / "key.pub")[0] == 0
    fhir = tmp_path / "export" / "events.ndjson"
    assert (
        run("audit", "export", "--file", str(trail), "--to", str(fhir), "--format", "fhir")[0] == 0
    )
    events = [json.loads(line) for line in fhir.read_text().splitlines()]
    assert len(events) == 10
    assert {e["resourceType"] for e in events} == {"AuditEvent"}


def test_keygen(tmp_path: Path) -> None:
    key = tmp_path / "audit.key"
    code, out, _ = run("audit", "keygen", "--out", str(key))
    assert code == 0
    assert "BEGIN PUBLIC KEY" in out
    assert key.stat().st_mode & 0o777 == 0o600
    Signer.from_pem(key.read_bytes())
    assert run("audit", "keygen", "--out", str(key))[0] == 2  # never overwrites


async def test_file_trail_reader_for_the_ui(trail: Path) -> None:
    from vivified.dataplane.audit.reader import FileTrailReader  # noqa: PLC0415

    recent = await FileTrailReader(trail).recent("plugins", "billing", 3)
    assert [r["action"] for r in recent] == [
        "lifecycle.enabled",
        "lifecycle.disabled",
        "egress.decision",
    ]
    assert await FileTrailReader(trail.with_name("none")).recent("x", "billing", 3) == []
