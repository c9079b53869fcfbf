"""Warm start: the first tab's default models load in the background at launch (PLM_WARM_START)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from model_utils import manager


def test_warm_up_loads_the_default_models(tiny_env: Path) -> None:
    assert manager.get_manager().loaded() == []
    thread = manager.warm_up(["fill-mask", "next-sentence"])
    thread.join(timeout=60)
    assert not thread.is_alive() and thread.daemon
    loaded = {(m["checkpoint"], m["head"]) for m in manager.get_manager().loaded()}
    assert loaded == {("local:tiny-bert", "masked-lm"), ("local:tiny-bert", "next-sentence")}


def test_warm_up_failure_is_logged_not_raised(tiny_env: Path, monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("PLM_DEFAULT_FILL_MASK", "local:no-such-model")
    with caplog.at_level(logging.WARNING, logger="model_utils.manager"):
        manager.warm_up(["fill-mask", "next-sentence"]).join(timeout=60)
    assert "fill-mask" in caplog.text
    # The failure of one task does not stop the next.
    assert [m["head"] for m in manager.get_manager().loaded()] == ["next-sentence"]


def test_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from model_utils.config import get_settings

    monkeypatch.delenv("PLM_WARM_START", raising=False)
    assert get_settings().warm_start
    monkeypatch.setenv("PLM_WARM_START", "0")
    assert not get_settings().warm_start


def test_first_tab_tasks_are_fill_mask() -> None:
    import app

    app.build_demo()
    assert app.FIRST_TAB_TASKS == ["fill-mask"]
