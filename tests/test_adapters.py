"""LoRA runs over a bundled base are saved as small deltas and rebuilt into the very model that was trained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from model_utils import finetune, pretrain_session as S
from model_utils.delta_checkpoints import DELTA_FILE, is_delta_checkpoint
from model_utils.checkpoints import MARKER, folder_bytes
from model_utils.manager import ModelManager
from test_pretrain_session import TEXT, tiny_args

pytestmark = pytest.mark.slow
SENTENCES = ["a wonderful, moving film", "dull and far too long", "the plot made no sense at all"]
BASE = "bundled:minilm-pretrained"


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "checkpoints"
    monkeypatch.setenv("PLM_CHECKPOINTS_DIR", str(folder))
    monkeypatch.setenv("PLM_DEVICE", "cpu")
    torch.set_num_threads(1)
    return folder


def lora_finetune(tmp_path: Path, name: str, base: str, labels=("negative", "positive")) -> dict:
    rows = [{"text": f"{word} movie number {i}", "label": labels[i % len(labels)], "split": "test" if i % 4 == 0 else ""}
            for i, word in enumerate(["great", "awful", "fine"] * 8)]
    data = finetune.DataArguments(max_length=16)
    model = finetune.ModelArguments(base_model=base, lora_rank=4, lora_alpha=8, checkpoint_name=name)
    training = finetune.build_training_arguments(str(tmp_path / name), max_steps=3, per_device_train_batch_size=8,
                                                 learning_rate=1e-3, eval_strategy="no", disable_tqdm=True,
                                                 use_cpu=True)
    return finetune.run(data, model, training, rows=rows, owner="session-a")


def logits(model, tokenizer, texts=SENTENCES) -> torch.Tensor:
    with torch.inference_mode():
        return model.eval()(**tokenizer(texts, padding=True, return_tensors="pt")).logits.float()


def test_a_lora_fine_tune_over_a_bundled_base_is_saved_as_a_delta_and_rebuilt_exactly(root, tmp_path) -> None:
    result = lora_finetune(tmp_path, "delta-clf", BASE)
    folder = root / "delta-clf"
    assert is_delta_checkpoint(folder) and not list(folder.glob("model*.safetensors"))
    assert json.loads((folder / DELTA_FILE).read_text()) == {"base": BASE}
    assert (folder / "adapter" / "adapter_model.safetensors").is_file() and (folder / "heads.safetensors").is_file()
    assert folder_bytes(folder) < 3 * 2**20  # a full copy would be 88 MB
    assert json.loads((folder / MARKER).read_text())["origin"] == "app"
    trained = logits(result["trainer"].model, result["trainer"].processing_class)
    loaded = ModelManager().get("local:delta-clf", "sequence-classification")
    assert loaded.model.config.id2label == {0: "negative", 1: "positive"}
    torch.testing.assert_close(logits(loaded.model, loaded.tokenizer), trained, atol=1e-4, rtol=1e-4)
    attention = ModelManager().get("local:delta-clf", "base", attn_implementation="eager")  # the Attention tab
    assert attention.model.config.num_hidden_layers == 6
    with pytest.raises(ValueError, match="no trained masked-language-model"):
        ModelManager().get("local:delta-clf", "masked-lm")

    again = lora_finetune(tmp_path, "from-delta", "local:delta-clf", labels=("a", "b", "c"))
    assert again["checkpoint"] == "local:from-delta"  # a delta checkpoint is a base too (new labels, new head)
    assert not is_delta_checkpoint(root / "from-delta")  # over a local base: saved in full


def test_a_full_fine_tune_is_saved_in_full(root, tmp_path) -> None:
    rows = [{"text": f"{w} film {i}", "label": "pos" if w == "great" else "neg"} for i, w in
            enumerate(["great", "bad"] * 10)]
    data = finetune.DataArguments(max_length=16, validation_percent=30)
    model = finetune.ModelArguments(base_model=BASE, checkpoint_name="full")
    training = finetune.build_training_arguments(str(tmp_path / "full"), max_steps=1, eval_strategy="no",
                                                 disable_tqdm=True, use_cpu=True)
    finetune.run(data, model, training, rows=rows)
    assert (root / "full" / "model.safetensors").is_file() and not is_delta_checkpoint(root / "full")
    assert json.loads((root / "full" / MARKER).read_text())["origin"] == "cli"  # no session: the command line


def test_continued_pretraining_over_a_bundled_base_is_saved_as_a_delta(root) -> None:
    docs, _ = S.load_corpus(TEXT)
    options = S.SessionOptions(base_model=BASE, checkpoint_name="delta-mlm")
    summary = S.run_pretraining(tiny_args(max_steps=2, lora_rank=4), options, docs, owner="session-b")
    assert summary["checkpoint"] == "local:delta-mlm" and is_delta_checkpoint(root / "delta-mlm")
    assert folder_bytes(root / "delta-mlm") < 5 * 2**20
    manager = ModelManager()
    rebuilt = manager.get("local:delta-mlm", "masked-lm")
    text = ["the cat sat on the [MASK] ."]
    changed = logits(rebuilt.model, rebuilt.tokenizer, text)
    base = logits(manager.get(BASE, "masked-lm").model, rebuilt.tokenizer, text)
    assert changed.shape == base.shape and not torch.allclose(changed, base)  # the delta is applied
    nsp = manager.get("local:delta-mlm", "next-sentence")  # both heads were trained and saved
    assert nsp.model.cls.seq_relationship.weight.shape == (2, 384)


def test_a_damaged_delta_record_is_a_clear_error(root, tmp_path) -> None:
    lora_finetune(tmp_path, "broken", BASE)
    (root / "broken" / DELTA_FILE).write_text('{"base": ""}')
    with pytest.raises(ValueError, match="names no base model"):
        ModelManager().get("local:broken", "sequence-classification")
    (root / "broken" / DELTA_FILE).write_text('{"base": "bundled:gone"}')
    with pytest.raises(ValueError, match="does not have"):
        ModelManager().get("local:broken", "sequence-classification")


def fake_hub_cache(cache: Path, repo_id: str, model_folder: Path) -> Path:
    """Lay ``model_folder`` out as the Hub cache's snapshot of ``repo_id`` (what a download leaves)."""
    import shutil

    revision = "0" * 40
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    shutil.copytree(model_folder, repo / "snapshots" / revision)
    return repo / "snapshots" / revision


def test_a_lora_run_over_a_hub_base_is_a_delta_rebuilt_from_the_hub_cache(root, tmp_path, monkeypatch) -> None:
    """Offline, with the base in the Hub cache; a decoy folder named like the Hub id is never read."""
    from huggingface_hub import constants

    from conftest import build_tiny_model

    cache = tmp_path / "hub-cache"
    fake_hub_cache(cache, "org/tiny-bert", build_tiny_model(tmp_path / "real", "bert-classifier", seed=5))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.chdir(tmp_path)
    build_tiny_model(tmp_path / "org" / "tiny-bert", "bert-classifier", seed=6)  # the decoy beside the app
    rows = [{"text": f"{w} movie {i}", "label": "pos" if w == "good" else "neg", "split": "test" if i % 4 == 0 else ""}
            for i, w in enumerate(["good", "bad"] * 8)]
    data = finetune.DataArguments(max_length=16)
    model = finetune.ModelArguments(base_model="org/tiny-bert", lora_rank=4, lora_alpha=8, checkpoint_name="hub-delta")
    training = finetune.build_training_arguments(str(tmp_path / "run"), max_steps=2, eval_strategy="no",
                                                 disable_tqdm=True, use_cpu=True, learning_rate=1e-2)
    result = finetune.run(data, model, training, rows=rows, owner="s")
    folder = root / "hub-delta"
    assert json.loads((folder / DELTA_FILE).read_text()) == {"base": "org/tiny-bert"}
    texts = ["the good film", "a bad day"]
    trained = logits(result["trainer"].model, result["trainer"].processing_class, texts)
    loaded = ModelManager().get("local:hub-delta", "sequence-classification")
    torch.testing.assert_close(logits(loaded.model, loaded.tokenizer, texts), trained, atol=1e-5, rtol=1e-5)
    hub = ModelManager().get("org/tiny-bert", "sequence-classification")  # the Hub id itself
    assert "snapshots" in hub.model.config._name_or_path  # read from the Hub cache, never from ./org/tiny-bert
