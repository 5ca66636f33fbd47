"""Fixtures of the SDK's tests (helpers: ``sdk_support``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdk_support import Server, Signer


@pytest.fixture
def signer() -> Signer:
    return Signer()


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def jwks_file(tmp_path: Path, signer: Signer) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(signer.jwks()))
    return path
