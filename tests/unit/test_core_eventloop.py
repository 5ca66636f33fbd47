"""The core's event-loop choice: uvloop when installed, asyncio's when asked, clear errors."""

from __future__ import annotations

import asyncio
import sys

import pytest

from vivified.dataplane import eventloop
from vivified.dataplane.settings import CoreSettings, CoreSettingsError


async def loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


@pytest.mark.parametrize(
    ("reason", "choice", "module_prefix"),
    [
        ("auto takes uvloop, a dependency on Linux", "auto", "uvloop"),
        ("uvloop asked for and installed", "uvloop", "uvloop"),
        ("asyncio asked for", "asyncio", "asyncio"),
    ],
)
def test_run_uses_the_chosen_loop(reason: str, choice: str, module_prefix: str) -> None:
    assert eventloop.run(loop_module(), choice).startswith(module_prefix), reason


def hide_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes every import of the name raise ImportError.
    monkeypatch.setitem(sys.modules, "uvloop", None)


def test_auto_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    hide_uvloop(monkeypatch)
    assert eventloop.loop_factory("auto") is asyncio.new_event_loop


def test_uvloop_required_but_missing_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    hide_uvloop(monkeypatch)
    with pytest.raises(eventloop.EventLoopUnavailableError, match="not installed"):
        eventloop.loop_factory("uvloop")


def test_unknown_choice_is_refused() -> None:
    with pytest.raises(ValueError, match="one of auto, uvloop, asyncio"):
        eventloop.loop_factory("trio")


def test_setting_is_read_and_checked() -> None:
    assert CoreSettings.from_env({"VIVIFIED_CORE_EVENT_LOOP": "asyncio"}).event_loop == "asyncio"
    with pytest.raises(CoreSettingsError, match="VIVIFIED_CORE_EVENT_LOOP"):
        CoreSettings.from_env({"VIVIFIED_CORE_EVENT_LOOP": "trio"})
