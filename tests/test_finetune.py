"""Fine-tuning library: tiny end-to-end runs, atomic checkpoints, stop, and clear errors on bad input."""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path

import pytest
import torch

from model_utils import checkpoints, finetune, registry
from model_utils.jobs import STOPPED, JobRunner

POSITIVE, NEGATIVE = "good great happy love".split(), "bad terrible sad hate".split()
FILLER = "the movie was very a film book day".split()


def sentiment_rows(n: int, seed: int = 0) -> list[dict[str, str]]:
    """Tiny-vocabulary reviews whose label is given away by one word (learnable in a few steps)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        positive = i % 2 == 1
        words = rng.sample(FILLER, 3) + [rng.choice(POSITIVE if positive else NEGATIVE)]
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": "positive" if positive else "negative",
                     "split": "test" if i % 5 == 0 else "train"})
    return rows


@pytest.fixture(autouse=True)
def one_thread():
    """The CPUs are shared: one intra-op thread is faster than two contended ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def ckpt_env(tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh checkpoints directory holding local:tiny-bert (the base), used by the settings."""
    root = tmp_path / "checkpoints"
    shutil.copytree(tiny_bert_dir, root / "tiny-bert")
    monkeypatch.setenv("PLM_CHECKPOINTS_DIR", str(root))
    monkeypatch.setenv("PLM_DEVICE", "cpu")
    return root


def arguments(tmp_path: Path, name: str = "", **training):
    data = finetune.DataArguments(max_length=16)
    model = finetune.ModelArguments(base_model="local:tiny-bert", checkpoint_name=name)
    args = dict(num_train_epochs=6, learning_rate=5e-3, per_device_train_batch_size=8, logging_steps=4,
                eval_strategy="epoch", disable_tqdm=True, use_cpu=True)
    return data, model, finetune.build_training_arguments(str(tmp_path / "run"), **{**args, **training})


@pytest.mark.slow
def test_tiny_finetune_learns_saves_atomically_and_classifies(ckpt_env: Path, tmp_path: Path):
    data, model_args, training = arguments(tmp_path, "tiny-sentiment")
    events = []
    result = finetune.run(data, model_args, training, rows=sentiment_rows(80), on_event=events.append)
    losses = [e["loss"] for e in events if e["kind"] == "train"]
    assert losses[-1] < 0.6 * losses[0], losses
    assert result["metrics"]["accuracy"] >= 0.8 and result["checkpoint"] == "local:tiny-sentiment"
    assert [e["step"] for e in events if e["kind"] == "progress"] == list(range(1, result["steps"] + 1))
    folder = ckpt_env / "tiny-sentiment"
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md", "training_log.json"} <= {
        p.name for p in folder.iterdir()}
    assert not list(ckpt_env.glob(".*")), "no hidden temporary folder left behind"
    card = (folder / "README.md").read_text()
    assert "learning_rate | 0.005" in card and "training rows: 64" in card and "accuracy" in card
    assert json.loads((folder / "training_log.json").read_text())["log"]
    assert "local:tiny-sentiment" in registry.choices("text-classification")

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from model_utils.classify import classify

    text = "the film was great"
    scores = classify(text, model="local:tiny-sentiment")
    reference = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        probs = reference(**AutoTokenizer.from_pretrained(folder)(text, return_tensors="pt")).logits.softmax(-1)[0]
    assert scores[0]["label"] == "positive"
    assert {s["label"]: s["score"] for s in scores} == pytest.approx({"negative": float(probs[0]),
                                                                     "positive": float(probs[1])}, abs=1e-5)
    with pytest.raises(ValueError, match="already exists"):  # refused before any training
        finetune.run(data, model_args, training, rows=sentiment_rows(80))


def test_examples_longer_than_the_model_takes_are_cut_to_its_positions(ckpt_env: Path, tmp_path: Path):
    """max_length 512 on local:tiny-bert (64 positions): each example is cut to 64 tokens, not a crash."""
    data, model_args, training = arguments(tmp_path, max_steps=1)
    data = finetune.DataArguments(max_length=512)
    rows = [{**row, "text": " ".join([row["text"]] * 40)} for row in sentiment_rows(16)]
    events = []
    result = finetune.run(data, model_args, training, rows=rows, on_event=events.append)
    assert result["steps"] == 1 and 0 <= result["metrics"]["accuracy"] <= 1


def test_stop_ends_a_run_within_seconds_and_keeps_a_whole_checkpoint(ckpt_env: Path, tmp_path: Path):
    data, model_args, training = arguments(tmp_path, "stopped", max_steps=2000, eval_strategy="no")
    runner = JobRunner()
    job = runner.submit("fine-tune", "stop test", lambda job: finetune.summarize(finetune.run(
        data, model_args, training, rows=sentiment_rows(40), on_event=job.emit, should_stop=job.should_stop)))
    deadline = time.monotonic() + 120
    while not any(e["kind"] == "progress" and e["step"] >= 3 for e in list(job.events)):
        assert time.monotonic() < deadline and not job.done, job.error
        time.sleep(0.05)
    asked = time.monotonic()
    job.stop()
    assert job.wait(30) and time.monotonic() - asked < 10
    assert job.state == STOPPED and job.result["stopped"] and job.result["steps"] < 2000
    assert job.result["checkpoint"] == "local:stopped"
    assert "stopped by the user" in (ckpt_env / "stopped" / "README.md").read_text()


def test_compare_from_scratch_streams_both_runs(ckpt_env: Path, tmp_path: Path):
    data, model_args, training = arguments(tmp_path, max_steps=3, eval_strategy="steps", eval_steps=3)
    model_args.compare_from_scratch = True
    events = []
    result = finetune.run(data, model_args, training, rows=sentiment_rows(40), on_event=events.append)
    evals = {e["run"] for e in events if e["kind"] == "eval"}
    assert evals == {"pretrained", "scratch"} and result["checkpoint"] is None
    summary = finetune.summarize(result)
    assert summary["scratch"]["steps"] == 3 and set(summary["scratch"]["metrics"]) == {"accuracy", "macro_f1"}
    json.dumps(summary)  # plain data only


def test_from_scratch_reinitialises_and_a_new_head_replaces_the_old(tiny_checkpoints_dir: Path):
    base = str(tiny_checkpoints_dir / "tiny-classifier")
    model, _ = finetune.load_model(finetune.ModelArguments(base_model=base), ["a", "b", "c"])
    assert model.classifier.out_features == 3 and model.config.id2label == {0: "a", 1: "b", 2: "c"}
    scratch, _ = finetune.load_model(finetune.ModelArguments(base_model=base, from_scratch=True), ["a", "b", "c"])
    word = "bert.embeddings.word_embeddings.weight"
    assert not torch.equal(model.state_dict()[word], scratch.state_dict()[word])


@pytest.mark.parametrize("name", ["", "../evil", "a/b", "a\\b", ".hidden", "x" * 200, "local:../x"])
def test_checkpoint_names_with_path_characters_are_refused(name: str):
    with pytest.raises(ValueError):
        checkpoints.check_name(name)


def test_atomic_checkpoint_publishes_only_complete_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PLM_CHECKPOINTS_DIR", str(tmp_path))
    with pytest.raises(RuntimeError):
        with checkpoints.atomic_checkpoint("crashy") as tmp:
            (tmp / "config.json").write_text('{"architectures": ["BertForSequenceClassification"]}')
            assert registry.local_checkpoints() == []  # half-written: not listed
            raise RuntimeError("crash while writing")
    assert list(tmp_path.iterdir()) == []
    with checkpoints.atomic_checkpoint("good") as tmp:
        (tmp / "config.json").write_text('{"architectures": ["BertForSequenceClassification"]}')
    assert [c.name for c in registry.local_checkpoints()] == ["local:good"]
    with pytest.raises(ValueError, match="already exists"):
        with checkpoints.atomic_checkpoint("good"):
            pass
    assert (tmp_path / "good" / "config.json").exists()


def test_clean_incomplete_removes_only_stale_leftovers(tmp_path: Path):
    (tmp_path / ".incomplete-old-1").mkdir()
    (tmp_path / "kept").mkdir()
    assert checkpoints.clean_incomplete(tmp_path, older_than=3600) == 0
    assert checkpoints.clean_incomplete(tmp_path, older_than=-1) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["kept"]


def _prepare(rows, **data):
    return finetune.prepare_data(rows, finetune.DataArguments(**data))


def test_bad_data_gets_clear_messages():
    with pytest.raises(ValueError, match="at least two classes"):
        _prepare([{"text": "a", "label": "x", "split": "train"}, {"text": "b", "label": "x", "split": "test"}])
    with pytest.raises(ValueError, match="empty"):
        _prepare([{"text": " ", "label": "x"}, {"text": "b", "label": ""}])
    with pytest.raises(ValueError, match="distinct values"):
        _prepare([{"text": f"t{i}", "label": str(i)} for i in range(500)])
    with pytest.raises(ValueError, match="no column 'label'"):
        _prepare([{"text": "a", "gold": "x"}])
    with pytest.raises(ValueError, match="has no data rows"):
        _prepare([])
    with pytest.raises(ValueError, match="not seen in training"):
        _prepare([{"text": "a", "label": "x", "split": "train"}, {"text": "b", "label": "y", "split": "train"},
                  {"text": "c", "label": "z", "split": "test"}])


def test_empty_rows_are_skipped_and_integer_labels_sort_numerically():
    rows = [{"text": f"t{i}", "label": str(i % 11), "split": "test" if i < 11 else "train"} for i in range(44)]
    prepared = _prepare(rows + [{"text": "", "label": "3", "split": "train"}])
    assert prepared.skipped == 1 and prepared.labels == [str(i) for i in range(11)]
    assert len(prepared.valid_rows) == 11 and len(prepared.train_rows) == 33


def test_the_command_line_reads_tables_with_the_one_reader_and_its_own_row_limit(tmp_path: Path):
    (tmp_path / "a.tsv").write_text("text\tlabel\nhello\tx\n", encoding="utf-8")
    (tmp_path / "a.jsonl").write_text('{"text": "hi", "label": 1}\n\n{"text": "yo", "label": null}\n')
    assert finetune.load_rows(finetune.DataArguments(train_file=str(tmp_path / "a.tsv"))) == [
        {"text": "hello", "label": "x"}]
    assert finetune.load_rows(finetune.DataArguments(train_file=str(tmp_path / "a.jsonl"))) == [
        {"text": "hi", "label": "1"}, {"text": "yo", "label": ""}]
    (tmp_path / "bad.csv").write_bytes("text,label\ncaf\xe9,x\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        finetune.load_rows(finetune.DataArguments(train_file=str(tmp_path / "bad.csv")))
    (tmp_path / "many.csv").write_text("text,label\n" + "a,b\n" * 3)
    with pytest.raises(ValueError, match="3 rows; the limit is 2"):
        finetune.load_rows(finetune.DataArguments(train_file=str(tmp_path / "many.csv"), max_rows=2))


@pytest.mark.parametrize("name", ["bundled:nope", "no such model!!", "local:missing"])
def test_unknown_base_models_are_refused(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PLM_CHECKPOINTS_DIR", str(tmp_path))
    with pytest.raises(ValueError):
        finetune.load_model(finetune.ModelArguments(base_model=name), ["a", "b"])


def test_mixed_precision_only_on_gpu(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert finetune.precision_flags() == {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert finetune.precision_flags() == {"bf16": True}
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert finetune.precision_flags() == {"fp16": True}


def test_command_line_defaults_follow_the_recipe():
    data, model_args, training = finetune.parse_arguments(["--base_model", "minilm", "--lora_rank", "16"])
    assert (training.num_train_epochs, training.per_device_train_batch_size, training.per_device_eval_batch_size) == (
        3.0, 16, 16)
    assert model_args.lora_rank == 16 and data.train_file == ""
    _, _, fp32 = finetune.parse_arguments(["--mixed_precision", "no"])
    assert not fp32.bf16 and not fp32.fp16
    with pytest.raises(ValueError, match="num_train_epochs must be between 0.01 and 100"):
        finetune.parse_arguments(["--num_train_epochs", "1000"])
    with pytest.raises(ValueError, match="lora_rank must be between 0 and 256"):
        finetune.parse_arguments(["--lora_rank", "-1"])
