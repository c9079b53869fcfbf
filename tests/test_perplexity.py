"""Perplexity, pseudo-perplexity and BERT vs GPT (model_utils.perplexity) against hand computations.

A causal model's perplexity equals ``exp(loss)`` of the model's own shifted cross-entropy; a masked LM's
pseudo-perplexity equals masking each token in turn by hand; the word-by-word comparison equals direct
masked and left-to-right forward passes, and the two attention masks are full and lower-triangular.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

import model_utils
from model_utils.errors import UserError
from model_utils.perplexity import words_of

TEXT = "the cat sat on the mat."


@pytest.mark.parametrize("name, start", [("local:tiny-gpt2", []), ("local:tiny-decoder", ["cls"])])
def test_causal_perplexity_equals_the_models_own_loss(tiny_env: Path, name: str, start: list) -> None:
    folder = tiny_env / name.split(":")[1]
    model, tokenizer = AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    ids = [tokenizer.cls_token_id] * len(start) + tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        loss = model(torch.tensor([ids]), labels=torch.tensor([ids])).loss  # mean -log p over positions 1..
    result = model_utils.score_text(TEXT, name)
    assert result["method"] == "causal" and result["perplexity"] == pytest.approx(math.exp(float(loss)), rel=1e-5)
    assert "".join(t["text"] for t in result["tokens"]).replace(" ", "") == TEXT.replace(" ", "")
    assert (result["tokens"][0]["logprob"] is None) == (not start)  # GPT-2 has nothing before its first token
    assert result["scored"] == len(ids) - 1


def test_pseudo_perplexity_equals_masking_each_token_by_hand(tiny_env: Path) -> None:
    folder = tiny_env / "tiny-bert"
    model, tokenizer = AutoModelForMaskedLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    ids = tokenizer(TEXT)["input_ids"]  # [CLS] the cat sat on the mat . [SEP]
    logs = []
    for position in range(1, len(ids) - 1):
        masked = list(ids)
        masked[position] = tokenizer.mask_token_id
        with torch.no_grad():
            logits = model(torch.tensor([masked])).logits[0, position]
        logs.append(float(logits.log_softmax(-1)[ids[position]]))
    result = model_utils.score_text(TEXT, "local:tiny-bert")
    assert result["method"] == "masked" and result["scored"] == len(logs) == 7
    assert [t["logprob"] for t in result["tokens"]] == pytest.approx(logs, abs=1e-5)
    assert result["perplexity"] == pytest.approx(math.exp(-sum(logs) / len(logs)), rel=1e-5)
    assert [t["text"] for t in result["tokens"]] == ["the", "cat", "sat", "on", "the", "mat", "."]


def test_a_long_text_is_cut_with_a_notice_and_progress_is_reported(tiny_env: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLM_MAX_SCORE_TOKENS", "8")
    seen = []
    result = model_utils.score_text(TEXT * 3, "local:tiny-bert", progress=lambda *done_total: seen.append(done_total))
    assert result["scored"] == 8 and "only the first 8 were scored" in result["notices"][0]
    assert seen[-1] == (8, 8)


@pytest.mark.parametrize("name, room", [("local:tiny-bert", 62), ("local:tiny-decoder", 63)])
def test_a_text_longer_than_the_model_is_cut_at_its_context(tiny_env: Path, name: str, room: int) -> None:
    # both tiny models read 64 positions: [CLS] and [SEP] take two of them (the decoder reads [CLS] only)
    long_text = TEXT * 20  # 140 tokens, under PLM_MAX_SCORE_TOKENS (128) only once cut
    result = model_utils.score_text(long_text, name)
    assert len(result["tokens"]) == room and f"reads at most 64 at once, so only the first {room}" in \
        result["notices"][0]
    shorter = model_utils.score_text(long_text[:result["tokens"][-1]["end"]], name)  # the same tokens, uncut
    assert shorter["perplexity"] == pytest.approx(result["perplexity"], rel=1e-5) and not shorter["notices"]
    compared = model_utils.bert_vs_gpt(long_text, "local:tiny-bert", "local:tiny-gpt2")
    assert compared["words"][-1]["end"] <= result["tokens"][-1]["end"] + 1 and compared["notices"]


def test_words_split_punctuation_and_keep_apostrophes() -> None:
    assert [w for w, _, _ in words_of("Don't stop, it's 3.5 km!")] == ["Don't", "stop", ",", "it's", "3", ".", "5",
                                                                       "km", "!"]


def test_bert_vs_gpt_equals_direct_masked_and_left_to_right_passes(tiny_env: Path) -> None:
    text = "the cat sat on the mat."
    result = model_utils.bert_vs_gpt(text, "local:tiny-bert", "local:tiny-gpt2")
    assert [w["word"] for w in result["words"]] == ["the", "cat", "sat", "on", "the", "mat", "."]
    bert = AutoModelForMaskedLM.from_pretrained(tiny_env / "tiny-bert").eval()
    bert_tok = AutoTokenizer.from_pretrained(tiny_env / "tiny-bert")
    ids = bert_tok(text)["input_ids"]  # every word is one token of the tiny vocabulary
    for index, word in enumerate(result["words"]):
        masked = list(ids)
        masked[index + 1] = bert_tok.mask_token_id
        with torch.no_grad():
            probs = bert(torch.tensor([masked])).logits[0, index + 1].softmax(-1)
        assert word["masked_probability"] == pytest.approx(float(probs[ids[index + 1]]), abs=1e-6)

    gpt = AutoModelForCausalLM.from_pretrained(tiny_env / "tiny-gpt2").eval()
    gpt_tok = AutoTokenizer.from_pretrained(tiny_env / "tiny-gpt2")
    encoding = gpt_tok(text, return_offsets_mapping=True)
    with torch.no_grad():
        logprobs = gpt(torch.tensor([encoding["input_ids"]])).logits[0].log_softmax(-1)
    assert result["words"][0]["causal_probability"] is None  # nothing before the first word
    offsets = encoding["offset_mapping"]
    for before, word in zip(result["words"], result["words"][1:]):  # a word's tokens, and a space token before it
        tokens = [i for i, (s, e) in enumerate(offsets) if s < word["end"] and e > word["start"]
                  or text[s:e].isspace() and before["end"] <= s and e <= word["start"]]
        expected = sum(float(logprobs[i - 1, encoding["input_ids"][i]]) for i in tokens)
        assert word["causal_probability"] == pytest.approx(math.exp(expected), rel=1e-5)

    full, causal = result["masks"]["masked"], result["masks"]["causal"]
    n = len(causal["allowed"])
    assert causal["causal"] and causal["allowed"] == [[int(k <= q) for k in range(n)] for q in range(n)]
    assert not full["causal"] and all(all(row) for row in full["allowed"])


def test_bert_vs_gpt_scores_a_multi_token_word_left_to_right_inside_the_word(tiny_env: Path) -> None:
    """"cats" is "cat ##s" in the tiny vocabulary: P(cat | ... [MASK] [MASK] ...) · P(##s | ... cat [MASK] ...)."""
    text = "the cats sat"
    result = model_utils.bert_vs_gpt(text, "local:tiny-bert", "local:tiny-decoder")
    bert = AutoModelForMaskedLM.from_pretrained(tiny_env / "tiny-bert").eval()
    tok = AutoTokenizer.from_pretrained(tiny_env / "tiny-bert")
    ids = tok(text)["input_ids"]
    assert tok.convert_ids_to_tokens(ids[2:4]) == ["cat", "##s"]
    first, second = list(ids), list(ids)
    first[2:4] = [tok.mask_token_id] * 2
    second[3] = tok.mask_token_id
    with torch.no_grad():
        p1 = bert(torch.tensor([first])).logits[0, 2].softmax(-1)[ids[2]]
        p2 = bert(torch.tensor([second])).logits[0, 3].softmax(-1)[ids[3]]
    assert result["words"][1]["masked_probability"] == pytest.approx(float(p1 * p2), rel=1e-5)
    assert result["words"][0]["causal_probability"] is not None  # the decoder reads [CLS] first


@pytest.mark.parametrize("call, message", [
    (lambda: model_utils.score_text("", "local:tiny-gpt2"), "The text is empty"),
    (lambda: model_utils.score_text("the", "local:tiny-gpt2"), "has only one token"),
    (lambda: model_utils.score_text("the cat", "local:tiny-gpt2", method="both"), "must be one of auto"),
    (lambda: model_utils.score_text("the cat", "local:tiny-gpt2", method="masked"), "has no masked"),
    (lambda: model_utils.bert_vs_gpt("\u200b\x01", "local:tiny-bert", "local:tiny-gpt2"), "no words"),
    (lambda: model_utils.bert_vs_gpt("the cat", "local:tiny-bert", "local:tiny-bert"), "reads the words on both"),
])
def test_bad_input_gets_a_clear_message(tiny_env: Path, call, message: str) -> None:
    with pytest.raises(UserError, match=message):
        call()
