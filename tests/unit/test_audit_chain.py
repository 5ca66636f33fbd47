"""The chain and checkpoints detect an edit, a deletion, a re-ordering and a cut-off tail."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from vivified.audit.chain import GENESIS, Head, canonical, seal, seal_line
from vivified.audit.checkpoint import Signer, load_public_key, signature_valid
from vivified.audit.verify import verify_trail

NOW = datetime(2026, 12, 1, tzinfo=UTC)
SIGNER = Signer.generate()
KEY = SIGNER.key.public_key()


def trail(n: int, writer: str = "core-0") -> tuple[list[bytes], list[bytes]]:
    """``n`` sealed records and a checkpoint after every 5th and at the end."""
    head = Head(writer)
    lines: list[bytes] = []
    checkpoints: list[bytes] = []
    for i in range(n):
        record, head = seal({"v": 1, "action": "invoke", "n": i}, head)
        lines.append(canonical(record))
        if head.seq % 5 == 0 or i == n - 1:
            checkpoints.append(canonical(SIGNER.checkpoint(head, NOW)))
    return lines, checkpoints


def test_intact_trail_verifies() -> None:
    lines, checkpoints = trail(12)
    report = verify_trail(lines, checkpoints, KEY)
    assert report.intact, report.problems
    assert report.records == 12
    assert report.checkpoints == 3
    assert report.heads["core-0"].seq == 12


def test_first_record_links_to_genesis() -> None:
    lines, _ = trail(1)
    assert json.loads(lines[0])["prev"] == GENESIS


def test_flipped_byte_is_reported_at_its_record() -> None:
    lines, checkpoints = trail(12)
    raw = bytearray(lines[6])
    at = raw.index(b'"invoke"') + 2
    raw[at] ^= 0x01
    lines[6] = bytes(raw)
    report = verify_trail(lines, checkpoints, KEY)
    assert not report.intact
    assert report.first is not None
    assert (report.first.position, report.first.seq) == (7, 7)
    assert "edited" in report.first.message


def test_unreadable_line_is_a_break_not_a_crash() -> None:
    lines, checkpoints = trail(4)
    lines[1] = lines[1][:10] + b"\xff" + lines[1][11:]
    report = verify_trail(lines, checkpoints, KEY)
    assert report.first is not None
    assert report.first.position == 2


def test_deleted_record_is_reported() -> None:
    lines, checkpoints = trail(12)
    del lines[3]
    report = verify_trail(lines, checkpoints, KEY)
    assert report.first is not None
    assert report.first.seq == 5
    assert "records 4..4 missing" in report.first.message


def test_swapped_records_are_reported() -> None:
    lines, checkpoints = trail(12)
    lines[4], lines[5] = lines[5], lines[4]
    report = verify_trail(lines, checkpoints, KEY)
    assert report.first is not None
    assert report.first.position == 5


def test_cut_tail_is_reported_by_the_checkpoint() -> None:
    lines, checkpoints = trail(12)
    report = verify_trail(lines[:8], checkpoints, KEY)
    assert not report.intact
    assert report.first is not None
    assert report.first.seq == 9
    assert "tail cut off" in report.first.message


def test_cut_tail_without_checkpoints_is_a_warning() -> None:
    lines, _ = trail(12)
    report = verify_trail(lines[:8])
    assert report.intact
    assert any("cut-off tail" in w for w in report.warnings)


def test_rewritten_tail_differs_from_the_checkpoint() -> None:
    lines, checkpoints = trail(10)
    head = Head("core-0", 9, json.loads(lines[8])["hash"])
    forged, _ = seal({"v": 1, "action": "invoke", "n": "forged"}, head)
    lines[9] = canonical(forged)
    report = verify_trail(lines, checkpoints, KEY)
    assert report.first is not None
    assert report.first.seq == 10
    assert "checkpoint" in report.first.message


def test_forged_checkpoint_signature_is_reported() -> None:
    lines, checkpoints = trail(5)
    other = Signer.generate()
    forged = other.checkpoint(Head("core-0", 5, "f" * 64), NOW)
    forged["kid"] = SIGNER.kid
    report = verify_trail(lines, [*checkpoints, canonical(forged)], KEY)
    assert not report.intact
    assert "invalid signature" in report.problems[0].message


def test_chains_of_several_writers_interleave() -> None:
    a, ca = trail(6, "core-a")
    b, cb = trail(4, "core-b")
    mixed = [x for pair in zip(a, b, strict=False) for x in pair] + a[4:]
    report = verify_trail(mixed, ca + cb, KEY)
    assert report.intact, report.problems
    assert {w: h.seq for w, h in report.heads.items()} == {"core-a": 6, "core-b": 4}


def test_chain_not_starting_at_one_is_reported() -> None:
    lines, _ = trail(5)
    report = verify_trail(lines[2:])
    assert report.first is not None
    assert "records 1..2 missing" in report.first.message


def test_key_round_trip() -> None:
    signer = Signer.from_pem(SIGNER.private_pem())
    checkpoint = signer.checkpoint(Head("w", 3, "a" * 64), NOW)
    assert signature_valid(checkpoint, load_public_key(SIGNER.public_pem()))
    assert signature_valid(checkpoint, load_public_key(SIGNER.private_pem()))
    tampered = {**checkpoint, "seq": 2}
    assert not signature_valid(tampered, KEY)


def test_wrong_key_type_is_refused() -> None:
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ValueError, match="Ed25519"):
        Signer.from_pem(pem)


_json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_json = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None)
@given(value=st.dictionaries(st.text(max_size=8), _json, max_size=6))
def test_fast_canonical_equals_rfc8785(value: dict[str, object]) -> None:
    try:
        expected = rfc8785.dumps(value)  # type: ignore[arg-type]
    except Exception:  # values the reference refuses are not records
        return
    assert canonical(value) == expected


def test_fast_canonical_examples() -> None:
    value = {"b": 1.25, "a": ['\u0001\n"\\', "é", 3], "c": {"z": None, "y": True}}
    assert canonical(value) == rfc8785.dumps(value)  # type: ignore[arg-type]
    assert canonical({"x": 2.0}) == b'{"x":2}'  # integral floats go the reference's way


def test_seal_line_matches_seal() -> None:
    body = {"v": 1, "action": "invoke", "entity": {"target": "x"}, "time": "t"}
    record, head = seal(body, Head("w", 4, "a" * 64))
    again, line, head2 = seal_line(body, Head("w", 4, "a" * 64))
    assert (again, head2) == (record, head)
    assert json.loads(line) == record
    assert verify_trail([line], []).problems[0].message.startswith("chain begins at seq 5")
