"""Next Sentence: agreement with a direct BertForNextSentencePrediction run, paragraph mode, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertForNextSentencePrediction

import model_utils
from model_utils.next_sentence import (OTHER_TEXT, control_pairs, score_pairs, score_paragraph, shuffled_order,
                                      split_sentences)
from conftest import require_bundled

PAIRS = [("the cat sat on the mat .", "then it ate dinner ."),
         ("paris is the capital of france .", "i love this movie !"),
         ("it was a good day", "the sun")]


def direct_is_next(folder: Path, first: str, second: str) -> float:
    model = BertForNextSentencePrediction.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        logits = model(**tokenizer(first, second, return_tensors="pt")).logits
    return float(logits.softmax(-1)[0, 0])


@pytest.mark.parametrize("first, second", PAIRS)
def test_equals_direct_computation(tiny_env: Path, first: str, second: str) -> None:
    result = model_utils.next_sentence(first, second, "local:tiny-bert")
    assert result["is_next"] == pytest.approx(direct_is_next(tiny_env / "tiny-bert", first, second), abs=1e-6)
    assert result["is_next"] + result["not_next"] == pytest.approx(1.0)
    assert set(result) == {"is_next", "not_next", "notices"} and result["notices"] == []


def test_batch_equals_single(tiny_env: Path) -> None:
    batch = score_pairs(PAIRS, "local:tiny-bert")
    for pair, result in zip(PAIRS, batch):
        assert result["is_next"] == pytest.approx(model_utils.next_sentence(*pair, "local:tiny-bert")["is_next"],
                                                  abs=1e-5)


@pytest.mark.parametrize("text, expected", [
    ("One. Two! Three?", ["One.", "Two!", "Three?"]),
    ('He said "hi." Then he left.', ['He said "hi."', "Then he left."]),
    ("Pi is 3.14 today. Yes", ["Pi is 3.14 today.", "Yes"]),
    ("我饿了。我吃饭了！", ["我饿了。", "我吃饭了！"]),
    ("   ", []),
])
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_shuffled_order_is_a_deterministic_permutation() -> None:
    for count in range(2, 9):
        order = shuffled_order(count, seed=3)
        assert sorted(order) == list(range(count)) and order == shuffled_order(count, seed=3)
        assert order != list(range(count))


def test_paragraph_mode(tiny_env: Path) -> None:
    paragraph = "the cat sat on the mat. then it ate dinner. the dog ran in the park. it was a good day."
    result = score_paragraph(paragraph, "local:tiny-bert")
    assert len(result["sentences"]) == 4 and len(result["pairs"]) == 3 and len(result["control"]) == 3
    for record in result["pairs"]:
        expected = model_utils.next_sentence(record["first"], record["second"], "local:tiny-bert")["is_next"]
        assert record["is_next"] == pytest.approx(expected, abs=1e-5)
    # The control differs by construction: each first sentence is the paragraph's, each second one of another text.
    assert [r["first"] for r in result["control"]] == result["sentences"][:-1]
    assert all(r["second"] in OTHER_TEXT["en"] and r["second"] not in result["sentences"] for r in result["control"])
    for record in result["control"]:
        expected = model_utils.next_sentence(record["first"], record["second"], "local:tiny-bert")["is_next"]
        assert record["is_next"] == pytest.approx(expected, abs=1e-5)
    assert result["mean_is_next"] == pytest.approx(sum(r["is_next"] for r in result["pairs"]) / 3)
    assert result["contrast"] == pytest.approx(result["mean_is_next"] - result["mean_control"])


def test_control_pairs_use_the_other_text_in_the_paragraphs_script() -> None:
    chinese = control_pairs(["今天天气很好。", "我们去公园散步。", "公园里有很多人。"], seed=1)
    assert [a for a, _ in chinese] == ["今天天气很好。", "我们去公园散步。"]
    assert all(b in OTHER_TEXT["zh"] for _, b in chinese)
    assert control_pairs(["a b.", "c d.", "e f."], seed=2) == control_pairs(["a b.", "c d.", "e f."], seed=2)


def test_bundled_model_scores_the_real_order_above_the_control() -> None:
    """The demo's point: on the bundled NSP model the real order and the control are far apart."""
    from demo.next_sentence_tab import PARAGRAPH_EXAMPLES

    for (paragraph, *_rest) in PARAGRAPH_EXAMPLES:
        result = score_paragraph(paragraph, "bundled:minilm-pretrained")
        assert result["contrast"] > 0.15, (paragraph[:40], result["mean_is_next"], result["mean_control"])


def test_long_pair_is_truncated_with_notice(tiny_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLM_MAX_SEQ_LEN", "16")
    result = score_pairs([("the cat sat on the mat . " * 5, "the dog ran .")], "local:tiny-bert")[0]
    assert "reads at most 16" in result["notices"][0]


@pytest.mark.parametrize("first, second, model, message", [
    ("", "b", "local:tiny-bert", "Sentence A is empty"),
    ("a", "  ", "local:tiny-bert", "Sentence B is empty"),
    ("a", "b", "local:tiny-distilbert", "has no next-sentence-prediction head"),
    ("a", "b", "local:tiny-mlm", "no trained next-sentence-prediction head"),
    ("a", "b", "roberta-base", "Hub is unreachable"),
])
def test_bad_input_gives_clear_errors(tiny_env: Path, first: str, second: str, model: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        model_utils.next_sentence(first, second, model)


def test_paragraph_needs_two_sentences(tiny_env: Path) -> None:
    with pytest.raises(ValueError, match="at least two sentences"):
        score_paragraph("just one sentence", "local:tiny-bert")


@pytest.mark.slow
def test_bundled_model_prefers_the_true_continuation(tiny_env: Path) -> None:
    require_bundled("bundled:minilm-pretrained")
    result = model_utils.next_sentence("I was very hungry after work.", "So I cooked a big dinner.",
                                       "bundled:minilm-pretrained")
    random = model_utils.next_sentence("I was very hungry after work.", "Volcanoes erupt lava.",
                                       "bundled:minilm-pretrained")
    assert result["is_next"] > random["is_next"]
