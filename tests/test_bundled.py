"""Tests of the bundled offline models: offline loading, heads, sizes and quality."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
from conftest import require_bundled

from model_utils import bundled

PRETRAINED, SENTIMENT = "bundled:minilm-pretrained", "bundled:minilm-sentiment"
DRINKS = {"tea", "coffee", "chocolate", "milk", "water", "cocoa", "soup", "wine", "beer", "juice", "drink",
          "cider", "sake", "toddy", "punch", "broth"}


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch):
    """Refuse every socket connection and force the Hub libraries offline."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] if len(args) > 1 else args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_every_artifact_file_is_small_enough():
    files = [p for p in bundled.HERE.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    sizes = {str(p.relative_to(bundled.HERE)): p.stat().st_size for p in files}
    assert all(size < 10 * 2**20 for size in sizes.values()), sizes
    assert sum(sizes.values()) < 25 * 2**20


def test_unknown_names_and_heads_are_refused():
    with pytest.raises(ValueError, match="Unknown bundled model"):
        bundled.artifact_dir("bundled:nope")
    assert not bundled.available("bundled:nope")
    with pytest.raises(ValueError, match="Unknown head"):
        bundled.load_bundled(PRETRAINED, "token-classification")


@pytest.mark.slow
@pytest.mark.parametrize("head", ["pretraining", "masked-lm", "next-sentence", "base"])
def test_pretrained_loads_every_head_offline(head: str, no_network, capfd, caplog):
    from transformers.utils import logging as hf_logging

    require_bundled(PRETRAINED)
    verbosity = hf_logging.get_verbosity()
    model, tokenizer = bundled.load_bundled(PRETRAINED, head)
    assert type(model.bert if hasattr(model, "bert") else model).__name__ == "BertModel"
    assert tokenizer.vocab_size == 30522 and model.config.num_hidden_layers == 6
    # The heads come from the delta: no "newly initialized"/"corrupted" report about them, nothing
    # left unfilled, and transformers' own verbosity is as it was.
    err = capfd.readouterr().err
    assert "MISSING" not in err and "corrupted" not in err and "newly initialized" not in err, err
    assert not [r for r in caplog.records if r.name == bundled.logger.name]
    assert hf_logging.get_verbosity() == verbosity


def test_unfilled_weights_counts_delta_heads_and_tied_weights():
    require_bundled(PRETRAINED)
    tied = {"cls.predictions.decoder.bias": "cls.predictions.bias"}
    missing = ["cls.predictions.bias", "cls.predictions.decoder.bias", "cls.seq_relationship.weight"]
    assert bundled.unfilled_weights(missing, [PRETRAINED], tied) == []
    # a head no delta has, and a tied weight whose source is missing too, are reported
    assert bundled.unfilled_weights(missing + ["classifier.weight"], [PRETRAINED], tied) == ["classifier.weight"]
    assert bundled.unfilled_weights(["cls.predictions.bias", "cls.predictions.decoder.bias"],
                                    [SENTIMENT], tied) == ["cls.predictions.bias", "cls.predictions.decoder.bias"]


@pytest.mark.slow
def test_heads_agree_with_the_pretraining_model(no_network):
    require_bundled(PRETRAINED)
    full, tok = bundled.load_bundled(PRETRAINED, "pretraining")
    mlm, _ = bundled.load_bundled(PRETRAINED, "masked-lm")
    nsp, _ = bundled.load_bundled(PRETRAINED, "next-sentence")
    enc = tok("The cat sat on the [MASK].", "It was very happy.", return_tensors="pt")
    with torch.no_grad():
        ref = full(**enc)
        assert torch.allclose(mlm(**enc).logits, ref.prediction_logits, atol=1e-4)
        assert torch.allclose(nsp(**enc).logits, ref.seq_relationship_logits, atol=1e-4)
    assert full.cls.predictions.decoder.weight.data_ptr() == full.bert.embeddings.word_embeddings.weight.data_ptr()


@pytest.mark.slow
def test_hot_drink_sanity(no_network):
    require_bundled(PRETRAINED)
    model, tok = bundled.load_bundled(PRETRAINED, "masked-lm")
    enc = tok("She drank a cup of hot [MASK].", return_tensors="pt")
    position = int((enc["input_ids"][0] == tok.mask_token_id).nonzero())
    with torch.no_grad():
        top5 = model(**enc).logits[0, position].topk(5).indices.tolist()
    words = {tok.convert_ids_to_tokens(i) for i in top5}
    assert words & DRINKS, words


@pytest.mark.slow
def test_pretrained_quality_on_heldout_sample(no_network):
    require_bundled(PRETRAINED)
    from model_utils.bundled.quality import pretrained_quality

    metrics = pretrained_quality(max_examples=1000)
    assert metrics["mlm_accuracy"] >= 0.35, metrics
    assert metrics["nsp_accuracy"] >= 0.85, metrics


@pytest.mark.slow
def test_sentiment_loads_offline_and_meets_accuracy(no_network):
    require_bundled(SENTIMENT)
    from model_utils.bundled.quality import sentiment_quality

    model, _ = bundled.load_bundled(SENTIMENT, "sequence-classification")
    assert model.config.id2label == {0: "negative", 1: "positive"}
    metrics = sentiment_quality()
    assert metrics["rows"] > 1000
    assert metrics["accuracy"] >= 0.82, metrics


def test_sample_sentiment_csv_shape():
    import csv

    with open(bundled.SAMPLE_SENTIMENT_CSV, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert set(rows[0]) == {"text", "label", "split"}
    assert {r["label"] for r in rows} == {"negative", "positive"}
    assert {r["split"] for r in rows} == {"train", "test"}
    assert Path(bundled.SAMPLE_SENTIMENT_CSV).stat().st_size < 2 * 2**20


@pytest.mark.slow
def test_reassembled_models_are_ordinary_trainable_models(no_network):
    require_bundled(PRETRAINED)
    for head in ("base", "masked-lm"):
        model, _ = bundled.load_bundled(PRETRAINED, head)
        assert all(p.requires_grad for p in model.parameters()), head
