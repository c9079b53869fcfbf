"""Tests of continued pretraining from the app (model_utils.pretrain_session) on tiny models."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import build_tiny_model, require_bundled
from transformers import BertForMaskedLM, BertForPreTraining, pipeline

from model_utils import pretrain as P
from model_utils import pretrain_session as S
from model_utils.data import Document

TEXT = "\n\n".join([
    "the cat sat on the mat. the dog ran in the park. she ate dinner at night. they love the film. "
    "the bird sleeps in the tree.",
    "paris is the capital of france. london is a city in england. the sun was on the house. "
    "i hate rain in the morning. it is a great book.",
    "my car is very bad. you are so good. this movie was terrible. he was happy after dinner. we ate food in paris.",
])
PROBE = "the cat sat on the [MASK]."


@pytest.fixture()
def ckpt_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "checkpoints"
    build_tiny_model(root / "tiny-bert", "bert-pretraining")
    monkeypatch.setenv("PLM_CHECKPOINTS_DIR", str(root))
    monkeypatch.setenv("PLM_DEVICE", "cpu")
    return root


def tiny_args(**kw) -> P.PretrainArguments:
    base = dict(max_steps=8, batch_size=4, eval_every=4, max_seq_length=32, learning_rate=1e-2,
                lora_rank=4, lora_alpha=8, eval_examples=64)
    return S.app_arguments(**{**base, **kw})


# ---------------------------------------------------------------- corpus

def test_pasted_text_becomes_documents_and_passes_the_minimum() -> None:
    docs, source = S.load_corpus(TEXT)
    assert source == "pasted text" and len(docs) == 3 and [len(d.sentences) for d in docs] == [5, 5, 5]
    assert S.check_corpus(docs)["sentences"] == 15


@pytest.mark.parametrize("text, message", [("", "empty"), ("   \n\n  ", "empty"),
                                           ("one. two. three.\n\nfour. five.", "too small")])
def test_empty_or_tiny_corpus_states_the_minimum(text: str, message: str) -> None:
    docs, _ = S.load_corpus(text)
    with pytest.raises(ValueError, match=message) as err:
        S.check_corpus(docs)
    assert f"{S.MIN_SENTENCES} sentences" in str(err.value) and "blank line" in str(err.value)


def test_text_files_binary_files_and_size_limits(tmp_path: Path) -> None:
    good = tmp_path / "notes.txt"
    good.write_text(TEXT, encoding="utf-8")
    docs, source = S.load_corpus("", [good])
    assert len(docs) == 3 and source == "notes.txt"
    binary = tmp_path / "image.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    with pytest.raises(ValueError, match="binary"):
        S.load_corpus("", [binary])
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9 au lait. ".encode("latin-1") * 20)
    with pytest.raises(ValueError, match="not UTF-8"):
        S.load_corpus("", [latin])
    with pytest.raises(ValueError, match=r"\.txt"):
        S.load_corpus("", [tmp_path / "data.csv"])
    with pytest.raises(ValueError, match="limit"):
        S.load_corpus("", [good], max_bytes=100)
    with pytest.raises(ValueError, match="limit"):
        S.load_corpus(TEXT * 3, max_bytes=len(TEXT) * 2)


def test_bundled_corpus_sample() -> None:
    docs, source = S.load_corpus("ignored", use_bundled=True)
    assert len(docs) == 600 and "bundled" in source
    train, held = S.split_heldout(docs)
    assert len(held) == 600 // 7 and len(train) + len(held) == 600
    assert not {d.id for d in train} & {d.id for d in held}


def test_small_corpus_holds_out_the_tail_of_each_document() -> None:
    docs, _ = S.load_corpus(TEXT)
    train, held = S.split_heldout(docs)
    assert len(held) == 3 and all(len(t.sentences) >= 2 for t in train)
    assert any(len(h.sentences) > 1 for h in held), "held-out next-sentence pairs exist"
    tails = {h.id: h.sentences for h in held}
    for doc, t in zip(docs, train):
        assert t.sentences + tails[doc.id + ":heldout"] == doc.sentences, "held-out = the document's last sentences"


def test_split_widens_thin_tails() -> None:
    docs = [Document("u", f"u:{i}", tuple(f"sentence {i} {j}." for j in range(n))) for i, n in enumerate([4, 4, 2, 2])]
    train, held = S.split_heldout(docs)
    assert len(held) == 2 and all(len(h.sentences) == 2 for h in held)
    assert sum(len(d.sentences) for d in train) + 4 == 12


# ---------------------------------------------------------------- base model

def test_base_without_mlm_head_or_not_bert_is_refused(tiny_checkpoints_dir: Path, tiny_env) -> None:
    with pytest.raises(ValueError, match="masked-language-model head"):
        S.load_pretrain_base("local:tiny-classifier")
    with pytest.raises(ValueError, match="BERT"):
        S.load_pretrain_base("local:tiny-distilbert")
    with pytest.raises(ValueError, match="No checkpoint named"):
        S.load_pretrain_base("local:nope")
    model, _, notices = S.load_pretrain_base("local:tiny-mlm")
    assert isinstance(model, BertForPreTraining) and "next-sentence head" in notices[0]


def test_probe_equals_the_fill_mask_pipeline(tiny_bert_dir: Path) -> None:
    model = BertForPreTraining.from_pretrained(str(tiny_bert_dir), use_safetensors=True)
    from conftest import tiny_tokenizer

    tok = tiny_tokenizer()
    ours = S.probe_top_k(model, tok, S.probe_ids(tok, PROBE))
    fill = pipeline("fill-mask", model=BertForMaskedLM.from_pretrained(str(tiny_bert_dir), use_safetensors=True),
                    tokenizer=tok, top_k=5)
    reference = fill(PROBE)
    assert [r["token"] for r in reference] == [o["token"] for o in ours]
    assert [o["score"] for o in ours] == pytest.approx([r["score"] for r in reference], abs=1e-5)
    for bad, count in (("no mask here", "0"), ("[MASK] and [MASK]", "2")):
        with pytest.raises(ValueError, match=f"exactly one.*{count}"):
            S.probe_ids(tok, bad)


def test_masking_example_shows_what_the_model_sees(tiny_bert_dir: Path) -> None:
    from conftest import tiny_tokenizer

    tok = tiny_tokenizer()
    docs, _ = S.load_corpus(TEXT)
    args = tiny_args(mlm_probability=0.4)
    view = S.masking_example(docs, tok, args, index=1)
    example = S.training_examples(docs, tok, args)[1]
    tokens = view["tokens"]
    assert [t["original"] for t in tokens] == tok.convert_ids_to_tokens(example.input_ids)
    for t in tokens:
        if t["status"] == "mask":
            assert t["input"] == "[MASK]"
        elif t["status"] in ("kept", "unchanged", "special"):
            assert t["input"] == t["original"]
        else:
            assert t["input"] != t["original"] and t["input"] != "[MASK]"
    assert view["nsp_label"] in ("IsNext", "NotNext") and view["sentence_a"] and view["sentence_b"]
    model = BertForPreTraining.from_pretrained(str(tiny_bert_dir), use_safetensors=True).eval()
    S.attach_scores(view, model, tok, "base")
    batch = view["batch"]
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                       attention_mask=batch["attention_mask"]).prediction_logits[0].log_softmax(-1)
    scores = view["scores"]["base"]["positions"]
    assert len(scores) == sum(t["status"] in ("mask", "random", "unchanged") for t in tokens) > 0
    for s in scores:
        true_id = int(batch["labels"][0, s["position"]])
        assert s["nll"] == pytest.approx(-float(logits[s["position"], true_id]), abs=1e-4)
        assert s["prob"] == pytest.approx(math.exp(-s["nll"]))


# ---------------------------------------------------------------- whole runs

def test_run_measures_saves_and_the_checkpoint_reproduces_the_after_numbers(ckpt_root: Path) -> None:
    from model_utils import registry
    from model_utils.manager import ModelManager

    docs, _ = S.load_corpus(TEXT)
    events: list[dict] = []
    options = S.SessionOptions(base_model="local:tiny-bert", checkpoint_name="adapted", probe_text=PROBE, probe_every=3)
    summary = S.run_pretraining(tiny_args(), options, docs, on_event=events.append)
    kinds = [e["kind"] for e in events if e["kind"] not in ("phase", "progress")]
    assert kinds[:2] == ["data", "before"] and kinds[-1] == "done" and kinds.count("train") == 8
    phases = [e["phase"] for e in events if e["kind"] == "phase"]
    assert phases == ["loading", "tokenizing", "evaluating", "training", "evaluating", "saving"]
    assert [e["step"] for e in events if e["kind"] == "progress"] == list(range(1, 9))
    assert [p["step"] for p in summary["timeline"]] == [0, 3, 6, 8]
    assert summary["checkpoint"] == "local:adapted" and not summary["stopped"]
    # Before: the untouched base on the same fixed held-out batches.
    tok = S.load_pretrain_base("local:tiny-bert")[1]
    base = BertForPreTraining.from_pretrained(str(ckpt_root / "tiny-bert"), use_safetensors=True)
    train_docs, held = S.split_heldout(docs)
    batches = P.heldout_batches(held, tok, tiny_args())
    assert summary["before"]["metrics"]["mlm_loss"] == pytest.approx(P.evaluate(base, batches)["mlm_loss"], abs=1e-5)
    assert summary["timeline"][0]["predictions"] == S.probe_top_k(base, tok, S.probe_ids(tok, PROBE))
    # After: the saved full checkpoint gives the run's final numbers and probe.
    saved = BertForPreTraining.from_pretrained(str(ckpt_root / "adapted"), use_safetensors=True)
    assert summary["after"]["metrics"]["mlm_loss"] == pytest.approx(P.evaluate(saved, batches)["mlm_loss"], abs=1e-4)
    after_probe = S.probe_top_k(saved, tok, S.probe_ids(tok, PROBE))
    assert [p["token"] for p in after_probe] == [p["token"] for p in summary["timeline"][-1]["predictions"]]
    assert summary["after"]["metrics"]["mlm_loss"] != summary["before"]["metrics"]["mlm_loss"]
    rows = S.before_after_rows(summary)
    assert rows[0]["metric"] == "held-out MLM loss" and rows[0]["change"] == pytest.approx(
        rows[0]["adapted"] - rows[0]["base"])
    assert (ckpt_root / "adapted" / "README.md").read_text().startswith("# adapted")
    for task in ("fill-mask", "next-sentence", "attention", "fine-tune-base", "pretrain-base"):
        assert "local:adapted" in registry.choices(task)
    loaded = ModelManager().get("local:adapted", "masked-lm")
    assert type(loaded.model).__name__ == "BertForMaskedLM"


def test_stop_mid_run_saves_nothing(ckpt_root: Path) -> None:
    docs, _ = S.load_corpus(TEXT)
    steps: list[int] = []
    options = S.SessionOptions(base_model="local:tiny-bert", checkpoint_name="stopped", probe_text=PROBE)
    summary = S.run_pretraining(tiny_args(max_steps=50), options, docs,
                                on_event=lambda e: steps.append(e["step"]) if e["kind"] == "train" else None,
                                should_stop=lambda: len(steps) >= 2)
    assert summary["stopped"] and summary["steps"] == 2 and summary["checkpoint"] is None
    assert sorted(p.name for p in ckpt_root.iterdir()) == ["tiny-bert"], "no folder, not even a hidden one"


def test_taken_name_fails_before_training(ckpt_root: Path) -> None:
    docs, _ = S.load_corpus(TEXT)
    events: list[dict] = []
    with pytest.raises(ValueError, match="already exists"):
        S.run_pretraining(tiny_args(), S.SessionOptions(base_model="local:tiny-bert", checkpoint_name="tiny-bert"),
                          docs, on_event=events.append)
    assert events == []


def test_run_without_nsp_or_probe(ckpt_root: Path) -> None:
    docs, _ = S.load_corpus(TEXT)
    summary = S.run_pretraining(tiny_args(max_steps=3, nsp=False), S.SessionOptions(base_model="local:tiny-bert"),
                                docs)
    assert summary["checkpoint"] is None and summary["timeline"] == [] and summary["steps"] == 3
    assert "nsp_loss" not in summary["after"]["metrics"] and summary["masking"]["nsp_label"] is None
    assert [r["metric"] for r in S.before_after_rows(summary)] == [
        "held-out MLM loss", "held-out masked-token accuracy", "held-out perplexity"]


@pytest.mark.slow
def test_bundled_base_loads_for_pretraining() -> None:
    require_bundled("bundled:minilm-pretrained")
    model, tok, notices = S.load_pretrain_base("bundled:minilm-pretrained")
    assert isinstance(model, BertForPreTraining) and notices == [] and model.dtype == torch.float32
    from model_utils.bundled import load_bundled

    text = "paris is the [MASK] of france."
    ours = S.probe_top_k(model, tok, S.probe_ids(tok, text))
    reference = pipeline("fill-mask", model=load_bundled("bundled:minilm-pretrained", "masked-lm")[0],
                         tokenizer=tok, top_k=5)(text)
    assert [o["token"] for o in ours] == [r["token"] for r in reference]
    assert [o["score"] for o in ours] == pytest.approx([r["score"] for r in reference], abs=1e-5)
    with pytest.raises(ValueError, match="masked-language-model head"):
        S.load_pretrain_base("bundled:minilm-sentiment")
