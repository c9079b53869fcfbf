"""Model manager: lazy loading, LRU eviction by count and memory, thread safety, clear errors."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch

from model_utils import manager
from model_utils.devices import pick_device, pick_dtype
from model_utils.manager import LoadedModel, ModelManager, get_manager, gpu_task
from conftest import require_bundled


class FakeLoader:
    """Counts loads and builds a small Linear model of a chosen size instead of a real checkpoint."""

    def __init__(self, size_bytes: int = 4096, delay: float = 0.0) -> None:
        self.calls: list[tuple] = []
        self.size_bytes = size_bytes
        self.delay = delay
        self.lock = threading.Lock()

    def __call__(self, name: str, head: str, attn: str | None) -> LoadedModel:
        with self.lock:
            self.calls.append((name, head, attn))
        time.sleep(self.delay)
        model = torch.nn.Linear(self.size_bytes // 4, 1, bias=False)
        return LoadedModel(name, head, model, object(), torch.device("cpu"),
                           approx_bytes=manager.model_bytes(model))


def test_loads_once_and_caches(tiny_env: Path) -> None:
    loader = FakeLoader()
    cache = ModelManager(loader=loader)
    first = cache.get("a", "masked-lm")
    assert cache.get("a", "masked-lm") is first
    assert cache.get("a", "next-sentence") is not first
    assert len(loader.calls) == 2 and first.approx_bytes == 4096


def test_concurrent_first_requests_load_once(tiny_env: Path) -> None:
    loader = FakeLoader(delay=0.2)
    cache = ModelManager(loader=loader)
    results: list[LoadedModel] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("a", "base"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loader.calls) == 1 and all(r is results[0] for r in results)


def test_lru_eviction_by_count(tiny_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLM_CACHE_MAX_MODELS", "2")
    cache = ModelManager(loader=FakeLoader())
    cache.get("a", "base")
    cache.get("b", "base")
    cache.get("a", "base")  # a becomes most recent, so b goes first
    cache.get("c", "base")
    assert [m["checkpoint"] for m in cache.loaded()] == ["a", "c"]


def test_lru_eviction_by_memory(tiny_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLM_CACHE_MAX_MB", "1")
    cache = ModelManager(loader=FakeLoader(size_bytes=600 * 1024))
    cache.get("a", "base")
    cache.get("b", "base")
    loaded = cache.loaded()
    assert [m["checkpoint"] for m in loaded] == ["b"]
    assert loaded[0]["approx_bytes"] == 600 * 1024 and loaded[0]["dtype"] == "float32"


def test_unload(tiny_env: Path) -> None:
    cache = ModelManager(loader=FakeLoader())
    for name, head in [("a", "base"), ("a", "masked-lm"), ("b", "base")]:
        cache.get(name, head)
    assert cache.unload("a") == 2 and [m["checkpoint"] for m in cache.loaded()] == ["b"]
    assert cache.unload() == 1 and cache.loaded() == []


def test_real_local_checkpoint(tiny_env: Path) -> None:
    loaded = get_manager().get("local:tiny-bert", "masked-lm")
    assert type(loaded.model).__name__ == "BertForMaskedLM" and not loaded.model.training
    assert loaded.device == torch.device("cpu") and loaded.tokenizer.mask_token == "[MASK]"
    assert loaded.approx_bytes == manager.model_bytes(loaded.model) > 0
    default = get_manager().get(None, "next-sentence", task="next-sentence")
    assert default.checkpoint == "local:tiny-bert"


@pytest.mark.parametrize("checkpoint, head, message", [
    ("local:tiny-distilbert", "next-sentence", "has no next-sentence-prediction head"),
    ("local:tiny-mlm", "next-sentence", "has no trained next-sentence-prediction head"),
    ("local:tiny-classifier", "masked-lm", "has no trained masked-language-model"),
    ("bert-base-uncased", "masked-lm", "Hub is unreachable"),
    ("local:../tiny-bert", "masked-lm", "Invalid local checkpoint"),
    ("local:tiny-bert", "summarizer", "Unknown model head"),
])
def test_clear_errors(tiny_env: Path, checkpoint: str, head: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_manager().get(checkpoint, head)
    assert get_manager().loaded() == []


def test_offline_default_is_bundled(tiny_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PLM_DEFAULT_FILL_MASK")
    monkeypatch.delenv("PLM_DEFAULT_TEXT_CLASSIFICATION")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert get_manager().resolve_checkpoint(None, "fill-mask", "masked-lm") == "bundled:minilm-pretrained"
    assert get_manager().resolve_checkpoint(None, None, "sequence-classification") == "bundled:minilm-sentiment"
    assert get_manager().resolve_checkpoint(None, None, "causal-lm") == "bundled:minilm-causal"
    assert get_manager().resolve_checkpoint(None, "text-generation", "causal-lm") == "bundled:minilm-causal"


def test_device_and_dtype(monkeypatch: pytest.MonkeyPatch) -> None:
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="not a valid torch device"):
        pick_device("tpu-9000")
    expected = "cuda" if torch.cuda.is_available() else None
    if expected is None and not (torch.backends.mps.is_available()):
        assert pick_device(None) == torch.device("cpu")
    assert pick_dtype(torch.device("cpu")) == torch.float32
    monkeypatch.setenv("PLM_DTYPE", "bfloat16")
    assert pick_dtype(torch.device("cpu")) == torch.bfloat16
    monkeypatch.setenv("PLM_DTYPE", "int32")
    with pytest.raises(ValueError, match="PLM_DTYPE"):
        pick_dtype(torch.device("cpu"))


def test_gpu_task_is_a_no_op_outside_zerogpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)

    def work() -> int:
        return 7

    assert gpu_task(work) is work


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_loading_uses_half_precision(tiny_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLM_DEVICE", "cuda")
    loaded = get_manager().get("local:tiny-bert", "masked-lm")
    assert loaded.device.type == "cuda"
    assert next(loaded.model.parameters()).dtype in (torch.float16, torch.bfloat16)


@pytest.mark.slow
def test_bundled_default_loads_offline(tiny_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_bundled("bundled:minilm-pretrained")
    monkeypatch.delenv("PLM_DEFAULT_FILL_MASK")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = get_manager().get(None, "masked-lm", task="fill-mask")
    assert loaded.checkpoint == "bundled:minilm-pretrained" and not loaded.model.training
    assert loaded.tokenizer.mask_token == "[MASK]"


def test_concurrent_first_loads_of_different_models_all_succeed() -> None:
    """Four heads loaded at once from four threads (transformers' loading is not thread-safe)."""
    import threading

    from conftest import require_bundled
    from model_utils.manager import ModelManager

    require_bundled("bundled:minilm-pretrained")
    require_bundled("bundled:minilm-sentiment")
    manager, results = ModelManager(), {}
    requests = [("bundled:minilm-pretrained", "next-sentence"), ("bundled:minilm-pretrained", "base"),
                ("bundled:minilm-pretrained", "masked-lm"), ("bundled:minilm-sentiment", "sequence-classification")]

    def load(name: str, head: str) -> None:
        try:
            loaded = manager.get(name, head)
            results[head] = "meta" if any(p.is_meta for p in loaded.model.parameters()) else "ok"
        except Exception as err:  # noqa: BLE001 - reported below
            results[head] = f"{type(err).__name__}: {err}"

    threads = [threading.Thread(target=load, args=request) for request in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {head: "ok" for _, head in requests}
