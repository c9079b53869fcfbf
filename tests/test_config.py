"""Settings: environment parsing, offline defaults, the cached Hub check, a cheap import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from model_utils import config
from model_utils.config import BUNDLED_DEFAULTS, HUB_DEFAULTS, TASKS, get_settings, hub_offline

ENV_VARS = ["PLM_CACHE_MAX_MB", "PLM_CACHE_MAX_MODELS", "PLM_DEVICE", "PLM_MAX_MASKS",
            "PLM_CHECKPOINTS_DIR", "PLM_OFFLINE", "HF_HUB_OFFLINE", "PLM_MAX_SEQ_LEN", "PLM_DTYPE",
            "PLM_JOB_TIME_LIMIT_MIN", "PLM_CONCURRENCY", "PLM_QUEUE_MAX_SIZE"]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in ENV_VARS + [config.task_env_var(t) for t in TASKS]:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(config, "_hub_check", {})
    return monkeypatch


def test_defaults_without_environment(clean_env: pytest.MonkeyPatch) -> None:
    settings = get_settings()
    assert dict(settings.default_checkpoints) == dict(HUB_DEFAULTS)
    assert settings.checkpoints_dir == Path("checkpoints")
    assert settings.device is None and settings.offline is False
    assert settings.cache_max_bytes == 4096 * 2**20 and settings.max_masks == 5
    assert (settings.dtype, settings.job_time_limit_s, settings.concurrency, settings.queue_max_size) == (
        None, 3600, 2, 64)


def test_environment_overrides(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("PLM_DEFAULT_FILL_MASK", "local:mine")
    clean_env.setenv("PLM_CACHE_MAX_MB", "256")
    clean_env.setenv("PLM_CACHE_MAX_MODELS", "2")
    clean_env.setenv("PLM_DEVICE", "cpu")
    clean_env.setenv("PLM_MAX_MASKS", "3")
    clean_env.setenv("PLM_CHECKPOINTS_DIR", str(tmp_path))
    for var, value in {"PLM_DTYPE": "bfloat16", "PLM_JOB_TIME_LIMIT_MIN": "0", "PLM_CONCURRENCY": "4",
                       "PLM_QUEUE_MAX_SIZE": "200"}.items():
        clean_env.setenv(var, value)
    settings = get_settings()
    assert (settings.dtype, settings.job_time_limit_s, settings.concurrency, settings.queue_max_size) == (
        "bfloat16", 0, 4, 200)
    assert settings.default_checkpoints["fill-mask"] == "local:mine"
    assert settings.default_checkpoints["next-sentence"] == HUB_DEFAULTS["next-sentence"]
    assert (settings.cache_max_bytes, settings.cache_max_models) == (256 * 2**20, 2)
    assert (settings.device, settings.max_masks, settings.checkpoints_dir) == ("cpu", 3, tmp_path)


def test_bad_number_is_a_clear_error(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PLM_MAX_MASKS", "many")
    with pytest.raises(ValueError, match="PLM_MAX_MASKS"):
        get_settings()


def test_offline_defaults_are_bundled_but_local_overrides_stay(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PLM_DEFAULT_NEXT_SENTENCE", "local:mine")
    settings = get_settings()
    for task in TASKS:
        assert settings.default_checkpoint(task, offline=False) == settings.default_checkpoints[task]
    assert settings.default_checkpoint("fill-mask", offline=True) == BUNDLED_DEFAULTS["fill-mask"]
    assert settings.default_checkpoint("text-classification", True) == "bundled:minilm-sentiment"
    assert settings.default_checkpoint("text-generation", offline=False) == "gpt2"
    assert settings.default_checkpoint("text-generation", offline=True) == "bundled:minilm-causal"
    assert settings.default_checkpoint("attention", offline=True) == "bundled:minilm-pretrained"
    assert settings.default_checkpoint("next-sentence", offline=True) == "local:mine"
    with pytest.raises(ValueError, match="Unknown task"):
        settings.default_checkpoint("summarize", offline=True)


def test_hf_hub_offline_skips_the_network(clean_env: pytest.MonkeyPatch) -> None:
    def no_network(*_: object) -> bool:
        raise AssertionError("must not connect when HF_HUB_OFFLINE=1")

    clean_env.setattr(config, "_hub_reachable", no_network)
    clean_env.setenv("HF_HUB_OFFLINE", "1")
    assert hub_offline() is True


def test_hub_check_is_cached(clean_env: pytest.MonkeyPatch) -> None:
    calls = []
    clean_env.setattr(config, "_hub_reachable", lambda *a: calls.append(a) or True)
    assert hub_offline() is False and hub_offline() is False
    assert len(calls) == 1
    clean_env.setattr(config, "_hub_check", {})
    clean_env.setattr(config, "_hub_reachable", lambda *a: False)
    assert hub_offline() is True


def test_unreachable_endpoint_is_detected_quickly(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    assert hub_offline() is True


def test_the_model_layer_imports_without_gradio_and_exports_plain_functions() -> None:
    # Every export is a plain function, except the error type and notice record callers catch and read.
    code = ("import sys, inspect, model_utils; assert 'gradio' not in sys.modules, 'model_utils imported gradio'; "
            "records = {'UserError', 'Notice'}; "
            "assert all(inspect.isfunction(getattr(model_utils, name)) for name in model_utils.__all__ if name not in records); "
            "assert issubclass(model_utils.UserError, ValueError) and inspect.isclass(model_utils.Notice)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)
