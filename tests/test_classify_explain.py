"""Explanations: Integrated Gradients completeness, gradient × input, WordPieces merged into words."""

from __future__ import annotations

import importlib

import pytest
import torch
from classify_helpers import load_local, save_tiny_classifier

from model_utils.classify import classify
from model_utils.explain import explain

explain_module = importlib.import_module("model_utils.explain")  # the module; model_utils.explain is the function

TEXT = "The movies were GREAT, really bad!"


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    return load_local(save_tiny_classifier(tmp_path_factory.mktemp("ex") / "clf", seed=2))


def baseline_score(loaded, text, label_id):
    """f(baseline) computed independently: every word token replaced by [PAD], [CLS]/[SEP] kept."""
    enc = loaded.tokenizer(text, return_tensors="pt")
    ids = enc["input_ids"].clone()
    ids[0, 1:-1] = loaded.tokenizer.pad_token_id
    with torch.no_grad():
        logits = loaded.model(input_ids=ids, attention_mask=enc["attention_mask"],
                              token_type_ids=enc["token_type_ids"]).logits
    return torch.softmax(logits, -1)[0, label_id].item()


@pytest.mark.parametrize("label", ["positive", "negative"])
def test_integrated_gradients_completeness(loaded, label):
    result = explain(TEXT, label=label, model=loaded)
    scores = {r["label"]: r["score"] for r in classify(TEXT, model=loaded)}
    f_b = baseline_score(loaded, TEXT, loaded.model.config.label2id[label])
    assert result["score"] == pytest.approx(scores[label], abs=1e-5)
    assert result["baseline_score"] == pytest.approx(f_b, abs=1e-5)
    assert abs(result["score"] - f_b) > 0.01  # a real difference to explain
    total = sum(w["score"] for w in result["words"])
    # Completeness: attributions sum to f(x) - f(baseline) within the stated tolerance.
    assert total == pytest.approx(result["score"] - f_b, abs=result["tolerance"])
    assert result["tolerance"] == pytest.approx(explain_module.IG_TOLERANCE)
    assert result["converged"] and result["delta"] <= result["tolerance"]


def test_steps_are_doubled_until_complete(loaded, monkeypatch):
    monkeypatch.setattr(explain_module, "IG_TOLERANCE", 1e-12)
    monkeypatch.setattr(explain_module, "IG_MAX_STEPS", 16)
    result = explain(TEXT, label="positive", model=loaded, n_steps=4)
    assert result["n_steps"] == 16
    assert result["converged"] is (result["delta"] <= result["tolerance"])


def test_default_label_is_the_top_prediction(loaded):
    assert explain(TEXT, model=loaded)["label"] == classify(TEXT, model=loaded)[0]["label"]


def test_gradient_x_input_matches_manual_computation(loaded):
    result = explain(TEXT, label="neutral", model=loaded, method="gradient-x-input")
    enc = loaded.tokenizer(TEXT, return_tensors="pt")
    embeds = loaded.model.get_input_embeddings()(enc["input_ids"]).detach().requires_grad_(True)
    logits = loaded.model(inputs_embeds=embeds, attention_mask=enc["attention_mask"],
                          token_type_ids=enc["token_type_ids"]).logits
    torch.softmax(logits, -1)[0, 2].backward()
    per_token = (embeds.grad * embeds).sum(-1)[0]
    word_ids = enc.word_ids(0)
    expected = {}
    for i, w in enumerate(word_ids):
        if w is not None:
            expected[w] = expected.get(w, 0.0) + per_token[i].item()
    assert [w["score"] for w in result["words"]] == pytest.approx(list(expected.values()), abs=1e-6)


def test_wordpieces_are_merged_into_the_users_words(loaded):
    result = explain(TEXT, label="positive", model=loaded)
    # "movies" is movie + ##s in the tiny vocab; "were" is [UNK]; the user's casing is kept.
    assert [w["word"] for w in result["words"]] == ["The", "movies", "were", "GREAT", ",", "really", "bad", "!"]
    for w in result["words"]:
        assert TEXT[w["start"]:w["end"]] == w["word"]
    assert result["words"][2]["score"] != 0.0  # an unknown word still gets attribution


def test_truncation_is_flagged_and_words_stop_at_the_limit(loaded, monkeypatch):
    assert explain(TEXT, model=loaded, method="gradient-x-input")["truncated"] is False
    monkeypatch.setenv("PLM_MAX_SEQ_LEN", "8")
    result = explain(TEXT, model=loaded, method="gradient-x-input")
    assert result["truncated"] is True
    assert [w["word"] for w in result["words"]] == ["The", "movies", "were", "GREAT", ","]  # 6 tokens + 2 specials


def test_pair_words_keep_their_segment(loaded):
    result = explain("the plot was bad", model=loaded, text_pair="but the music was great")
    segments = [(w["segment"], w["word"]) for w in result["words"]]
    assert segments[:4] == [(0, "the"), (0, "plot"), (0, "was"), (0, "bad")]
    assert segments[4:] == [(1, "but"), (1, "the"), (1, "music"), (1, "was"), (1, "great")]
    assert result["text_pair"] == "but the music was great"


@pytest.mark.parametrize("kwargs, message", [
    ({"text": ""}, "empty"),
    ({"text": "good", "label": "nope"}, "Unknown label"),
    ({"text": "good", "method": "lime"}, "Unknown explanation method"),
])
def test_bad_requests_are_clear_errors(loaded, kwargs, message):
    with pytest.raises(ValueError, match=message):
        explain(model=loaded, **kwargs)
