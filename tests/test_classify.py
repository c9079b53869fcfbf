"""model_utils.classify agrees with transformers.pipeline("text-classification", top_k=None)."""

from __future__ import annotations

import pytest
import torch
import transformers
from classify_helpers import load_local, save_tiny_classifier, save_tiny_pretraining

from model_utils.classify import classify, ensure_classifier, load_classifier, score_function

SENTENCES = ["the movie was great !", "i hated the acting , it was boring", "Unknown WORDS zzz qq"]


@pytest.fixture(scope="module")
def single_dir(tmp_path_factory):
    return save_tiny_classifier(tmp_path_factory.mktemp("single") / "clf", seed=1)


@pytest.fixture(scope="module")
def multi_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("multi") / "clf"
    return save_tiny_classifier(path, seed=2, num_labels=3, problem_type="multi_label_classification")


def reference(path, text, text_pair=None):
    pipe = transformers.pipeline("text-classification", model=str(path), top_k=None, device="cpu")
    out = pipe({"text": text, "text_pair": text_pair} if text_pair else text)
    return out[0] if out and isinstance(out[0], list) else out


def assert_same(ours, theirs):
    assert [r["label"] for r in ours] == [r["label"] for r in theirs]
    for a, b in zip(ours, theirs):
        assert a["score"] == pytest.approx(b["score"], abs=1e-5)


@pytest.mark.parametrize("text", SENTENCES)
def test_single_label_matches_pipeline(single_dir, text):
    ours = classify(text, model=load_local(single_dir))
    assert_same(ours, reference(single_dir, text))
    assert sum(r["score"] for r in ours) == pytest.approx(1.0, abs=1e-5)
    assert [r["score"] for r in ours] == sorted((r["score"] for r in ours), reverse=True)


def test_pair_matches_pipeline(single_dir):
    loaded = load_local(single_dir)
    ours = classify("the plot was bad", model=loaded, text_pair="but the music was great")
    assert_same(ours, reference(single_dir, "the plot was bad", "but the music was great"))
    alone = classify("the plot was bad", model=loaded)
    assert ours != alone  # the second segment really reaches the model


def test_multi_label_uses_sigmoid_and_matches_pipeline(multi_dir):
    loaded = load_local(multi_dir)
    assert score_function(loaded.model.config) == "sigmoid"
    ours = classify(SENTENCES[0], model=loaded)
    assert_same(ours, reference(multi_dir, SENTENCES[0]))
    logits = loaded.model(**loaded.tokenizer(SENTENCES[0], return_tensors="pt")).logits[0]
    by_label = {r["label"]: r["score"] for r in ours}
    for i, name in loaded.model.config.id2label.items():
        assert by_label[name] == pytest.approx(torch.sigmoid(logits[i]).item(), abs=1e-5)


def test_labels_come_from_id2label(tmp_path):
    path = save_tiny_classifier(tmp_path / "c", num_labels=2)
    assert {r["label"] for r in classify("good", model=load_local(path))} == {"negative", "positive"}


@pytest.mark.parametrize("bad", ["", "   \n", None])
def test_empty_text_is_a_clear_error(single_dir, bad):
    with pytest.raises(ValueError, match="empty|string"):
        classify(bad, model=load_local(single_dir))


def test_not_a_classifier_is_rejected(tmp_path):
    path = save_tiny_pretraining(tmp_path / "pre")
    config = transformers.AutoConfig.from_pretrained(path)
    with pytest.raises(ValueError, match="not a text classifier"):
        ensure_classifier(config, "local:pre")


def test_long_text_is_truncated_not_crashing(single_dir, monkeypatch):
    monkeypatch.setenv("PLM_MAX_SEQ_LEN", "16")
    scores = classify("the movie was great " * 200, model=load_classifier(load_local(single_dir)))
    assert len(scores) == 3


def test_through_the_manager_and_public_api(tiny_env):
    import model_utils

    ours = model_utils.classify("the cat sat on the mat", model="local:tiny-classifier")
    assert_same(ours, reference(tiny_env / "tiny-classifier", "the cat sat on the mat"))
    assert model_utils.classify("the cat sat on the mat") == ours  # None -> the task's default


def test_manager_refuses_a_checkpoint_without_a_classifier_head(tiny_env):
    with pytest.raises(ValueError, match="sequence-classification|not a text classifier"):
        classify("the cat sat", model="local:tiny-bert")


def test_half_precision_model_gives_float_scores(single_dir):
    """GPU models run in bf16/fp16; scores still come back as floats that sum to one."""
    loaded = load_local(single_dir)
    loaded.model.to(torch.bfloat16)
    ours = classify(SENTENCES[0], model=loaded)
    assert all(isinstance(r["score"], float) for r in ours)
    assert sum(r["score"] for r in ours) == pytest.approx(1.0, abs=1e-5)
    reference = {r["label"]: r["score"] for r in classify(SENTENCES[0], model=load_local(single_dir))}
    for r in ours:
        assert r["score"] == pytest.approx(reference[r["label"]], abs=0.05)


@pytest.mark.slow
def test_bundled_sentiment_model(tiny_env):
    from conftest import require_bundled

    require_bundled("bundled:minilm-sentiment")
    from model_utils.manager import get_manager

    loaded = get_manager().get("bundled:minilm-sentiment", "sequence-classification", task="text-classification")
    pipe = transformers.pipeline("text-classification", model=loaded.model, tokenizer=loaded.tokenizer,
                                 top_k=None, device=loaded.device)
    for text, expected in [("A wonderful, heartfelt film with superb acting.", "positive"),
                           ("Boring, predictable and far too long.", "negative")]:
        ours = classify(text, model="bundled:minilm-sentiment")
        assert ours[0]["label"] == expected
        assert_same(ours, reference_from(pipe, text))
    from model_utils.explain import explain

    why = explain("A wonderful, heartfelt film with superb acting.", model="bundled:minilm-sentiment")
    total = sum(w["score"] for w in why["words"])
    assert why["label"] == "positive" and why["converged"]
    assert total == pytest.approx(why["score"] - why["baseline_score"], abs=why["tolerance"])


def reference_from(pipe, text):
    out = pipe(text)
    return out[0] if out and isinstance(out[0], list) else out
