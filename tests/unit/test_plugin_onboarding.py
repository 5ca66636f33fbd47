"""The onboarding example: a valid manifest whose call to user-management policy allows."""

from __future__ import annotations

import json
from pathlib import Path

from vivified.manifest import PluginManifest
from vivified.policy import validate_manifest
from vivified.policy.invoke import effective_permissions, static_refusal

REPO = Path(__file__).resolve().parents[2]


def load(name: str) -> PluginManifest:
    raw = json.loads((REPO / "plugins" / name / "manifest.json").read_text())
    report = validate_manifest(raw)
    assert report.valid, report.errors
    assert report.manifest is not None
    return report.manifest


def test_onboarding_may_call_user_management() -> None:
    onboarding, users = load("onboarding"), load("user-management")
    assert static_refusal(onboarding, users, "user_info") is None
    assert effective_permissions("user-management", [onboarding, users]) == {
        "mayCall": [],
        "callableBy": ["onboarding"],
    }


def test_the_image_is_built_like_user_managements() -> None:
    dockerfile = (REPO / "plugins" / "onboarding" / "Dockerfile").read_text()
    assert "USER 65532:65532" in dockerfile
    assert 'CMD ["python", "-m", "onboarding"]' in dockerfile
