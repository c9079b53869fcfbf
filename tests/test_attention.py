"""Tests of model_utils.attention on tiny BERT and GPT-2 models built here (no network).

Checks shapes, that every attention row is a probability distribution, that special tokens and
segments are labelled, that truncation says what it cut, that the per-head statistics and the
rollout agree with hand computations, and that the attention formula recomputed from the
model's own Q/K/V projections reproduces the weights the model returns (causal mask for GPT-2).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import torch
import transformers

from conftest import require_bundled
from model_utils.attention import (attention, attention_from_model, attention_math,
                                   attention_math_from_model, attention_rollout, head_summary)

GPT2_CORPUS = [
    "the cat sat on the mat and the dog ran in the park",
    "paris is the capital of france and london is the capital of england",
    "a good movie is a happy day, a bad book is a sad night",
] * 4


def build_tiny_gpt2(folder: Path) -> Path:
    """A 2-layer GPT-2 with a byte-level BPE tokenizer trained here on a few sentences."""
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(GPT2_CORPUS, vocab_size=300, min_frequency=1,
                            special_tokens=["<|endoftext|>"], show_progress=False)
    tokenizer = transformers.GPT2TokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<|endoftext|>",
                                               eos_token="<|endoftext|>", unk_token="<|endoftext|>",
                                               model_max_length=64)
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=2,
                                     n_head=4, n_inner=64, bos_token_id=tokenizer.eos_token_id,
                                     eos_token_id=tokenizer.eos_token_id)
    transformers.GPT2Model(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny") / "tiny-gpt2")


def _load(folder: Path):
    model = transformers.AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    return model, transformers.AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def bert(tiny_bert_dir: Path):
    return _load(tiny_bert_dir)


@pytest.fixture(scope="module")
def gpt2(tiny_gpt2_dir: Path):
    return _load(tiny_gpt2_dir)


def test_shapes_rows_and_special_tokens_for_a_pair(bert) -> None:
    model, tokenizer = bert
    result = attention_from_model(model, tokenizer, "the cat sat on the mat.", "it was happy.")
    tokens = result["tokens"]
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and tokens.count("[SEP]") == 2
    weights = np.asarray(result["attentions"])
    assert weights.shape == (2, 4, len(tokens), len(tokens))
    assert result["num_layers"] == 2 and result["num_heads"] == 4
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    assert (weights >= 0).all()
    assert result["special_tokens"] == [t in ("[CLS]", "[SEP]") for t in tokens]
    assert result["cls_positions"] == [0]
    first_sep = tokens.index("[SEP]")
    assert result["sep_positions"] == [first_sep, len(tokens) - 1]
    assert result["sentence_b_start"] == first_sep + 1
    assert result["segment_ids"] == [0] * (first_sep + 1) + [1] * (len(tokens) - first_sep - 1)
    assert result["causal"] is False and not result["truncation"]["truncated"] and result["notice"] == ""


def test_weights_match_the_model_forward(bert) -> None:
    model, tokenizer = bert
    result = attention_from_model(model, tokenizer, "a dog ate dinner")
    enc = tokenizer("a dog ate dinner", return_tensors="pt")
    with torch.no_grad():
        expected = torch.stack(model(**enc, output_attentions=True).attentions)[:, 0]
    np.testing.assert_allclose(np.asarray(result["attentions"]), expected.numpy(), atol=1e-6)


def test_truncation_says_what_was_cut(bert) -> None:
    model, tokenizer = bert
    text = "the cat sat on the mat and then the dog ate dinner at night"
    result = attention_from_model(model, tokenizer, text, max_tokens=6)
    assert len(result["tokens"]) == 6 and np.asarray(result["attentions"]).shape[-1] == 6
    cut = result["truncation"]
    assert cut["truncated"] and cut["kept_tokens"] == 6 and cut["total_tokens"] > 6
    assert cut["dropped"][0] == "the mat and then the dog ate dinner at night"
    assert "only the first 6" in result["notice"] and "the mat and then" in result["notice"]


@pytest.mark.parametrize("text", ["", "   ", None])
def test_empty_text_is_a_clear_error(bert, text) -> None:
    model, tokenizer = bert
    with pytest.raises(ValueError, match="type some text"):
        attention_from_model(model, tokenizer, text)


def test_sdpa_model_gives_a_clear_error(tiny_bert_dir: Path) -> None:
    model = transformers.AutoModel.from_pretrained(tiny_bert_dir, attn_implementation="sdpa").eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_bert_dir)
    with pytest.raises(ValueError, match="eager"):
        attention_from_model(model, tokenizer, "the cat")


def test_gpt2_attention_is_causal(gpt2) -> None:
    model, tokenizer = gpt2
    result = attention_from_model(model, tokenizer, "the cat sat on the mat")
    weights = np.asarray(result["attentions"])
    n = len(result["tokens"])
    assert weights.shape == (2, 4, n, n) and result["causal"] is True
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    assert np.abs(np.triu(weights, 1)).max() == 0.0
    assert result["cls_positions"] == [] and not any(result["special_tokens"])


def test_head_summary_matches_hand_computation() -> None:
    # one layer, two heads, three tokens: head 0 attends uniformly, head 1 always to the previous token
    uniform = np.full((3, 3), 1 / 3)
    previous = np.array([[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0]])
    rows = head_summary([[uniform, previous]], cls_positions=[0], sep_positions=[2])
    assert [(r["layer"], r["head"]) for r in rows] == [(0, 0), (0, 1)]
    assert rows[0]["entropy"] == pytest.approx(math.log2(3))
    assert rows[0]["cls"] == pytest.approx(1 / 3) and rows[0]["sep"] == pytest.approx(1 / 3)
    assert rows[1]["entropy"] == pytest.approx(0.0, abs=1e-9)
    assert rows[1]["previous"] == pytest.approx(1.0) and rows[1]["next"] == pytest.approx(0.0)
    assert rows[1]["self"] == pytest.approx(1 / 3) and rows[1]["cls"] == pytest.approx(2 / 3)
    assert head_summary([[uniform]])[0]["cls"] is None


def test_attention_rollout_matches_hand_computation() -> None:
    rng = np.random.default_rng(0)
    raw = rng.random((3, 2, 4, 4))
    weights = raw / raw.sum(-1, keepdims=True)
    rollout = np.asarray(attention_rollout(weights))
    expected = np.eye(4)
    for layer in range(3):
        mixed = 0.5 * weights[layer].mean(0) + 0.5 * np.eye(4)
        expected = mixed @ expected
        np.testing.assert_allclose(rollout[layer], expected, atol=1e-12)
    np.testing.assert_allclose(rollout.sum(-1), 1.0, atol=1e-12)


def test_bad_attention_shape_is_rejected() -> None:
    with pytest.raises(ValueError, match="layer"):
        head_summary([[1.0, 0.0]])


@pytest.mark.parametrize("which", ["bert", "gpt2"])
def test_formula_reproduces_the_model_attention(which, request) -> None:
    model, tokenizer = request.getfixturevalue(which)
    pair = "it was happy." if which == "bert" else None
    full = attention_from_model(model, tokenizer, "the cat sat on the mat.", pair)
    n = len(full["tokens"])
    for layer in range(2):
        for head in range(4):
            for query in (0, n // 2, n - 1):
                math_view = attention_math_from_model(
                    model, tokenizer, "the cat sat on the mat.", pair, layer=layer, head=head, query=query)
                np.testing.assert_allclose(math_view["weights"], full["attentions"][layer][head][query], atol=1e-5)
                assert math_view["max_abs_diff"] < 1e-5
    # the printed steps are consistent with each other
    assert math_view["head_dim"] == 8 and math_view["sqrt_dk"] == pytest.approx(math.sqrt(8))
    q, keys = np.asarray(math_view["query_vector"]), np.asarray(math_view["key_vectors"])
    np.testing.assert_allclose(math_view["scores"], keys @ q, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(math_view["scaled"], np.asarray(math_view["scores"]) / math.sqrt(8), rtol=1e-6)
    np.testing.assert_allclose(math_view["output"], np.asarray(math_view["weights"]) @ np.asarray(math_view["value_vectors"]), atol=1e-6)


def test_formula_shows_the_causal_mask_for_gpt2(gpt2) -> None:
    model, tokenizer = gpt2
    result = attention_math_from_model(model, tokenizer, "the cat sat on the mat", layer=1, head=2, query=2)
    n = len(result["tokens"])
    assert result["causal"] is True
    assert result["masked"] == [k > 2 for k in range(n)]
    assert all(w == 0.0 for w in result["weights"][3:]) and sum(result["weights"][:3]) == pytest.approx(1.0)


def test_formula_rejects_out_of_range_indices(bert) -> None:
    model, tokenizer = bert
    with pytest.raises(ValueError, match="head must be between 0 and 3"):
        attention_math_from_model(model, tokenizer, "the cat", layer=0, head=4, query=0)


# ---------------------------------------------------------------- through the model manager


def test_public_api_uses_the_manager_with_eager_attention(tiny_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import model_utils

    monkeypatch.setenv("PLM_MAX_ATTENTION_TOKENS", "8")
    result = model_utils.attention("the cat sat on the mat and the dog ran in the park")
    assert result["checkpoint"] == "local:tiny-bert" and len(result["tokens"]) == 8
    assert result["truncation"]["truncated"] and "only the first 8" in result["notice"]
    np.testing.assert_allclose(np.asarray(result["attentions"]).sum(-1), 1.0, atol=1e-5)
    from model_utils.manager import get_manager

    assert [(m["checkpoint"], m["head"]) for m in get_manager().loaded()] == [("local:tiny-bert", "base")]


def test_public_api_serves_a_local_gpt2(tiny_gpt2_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from model_utils import manager
    from model_utils.attention import attention, attention_math

    monkeypatch.setenv("PLM_CHECKPOINTS_DIR", str(tiny_gpt2_dir.parent))
    monkeypatch.setenv("PLM_DEVICE", "cpu")
    monkeypatch.setattr(manager, "_manager", manager.ModelManager())
    result = attention("the cat sat", "local:tiny-gpt2")
    assert result["causal"] and result["model_type"] == "gpt2"
    math_view = attention_math("the cat sat", "local:tiny-gpt2", layer=1, head=0, query=1)
    np.testing.assert_allclose(math_view["weights"], result["attentions"][1][0][1], atol=1e-5)


def test_unknown_model_is_a_clear_error(tiny_env: Path) -> None:
    with pytest.raises(ValueError, match="local:nope"):
        attention("the cat", "local:nope")


@pytest.mark.slow
def test_bundled_model_attention_and_formula(monkeypatch: pytest.MonkeyPatch) -> None:
    require_bundled("bundled:minilm-pretrained")
    monkeypatch.setenv("PLM_DEVICE", "cpu")
    text, pair = "The cat sat on the mat.", "It was happy."
    result = attention(text, "bundled:minilm-pretrained", pair)
    weights = np.asarray(result["attentions"])
    assert weights.shape[:2] == (6, 12) and result["tokens"][0] == "[CLS]"
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-4)
    math_view = attention_math(text, "bundled:minilm-pretrained", pair, layer=5, head=11, query=3)
    np.testing.assert_allclose(math_view["weights"], weights[5, 11, 3], atol=1e-5)


def test_half_precision_models_give_float_results(tiny_bert_dir: Path) -> None:
    # on a GPU the manager loads models in half precision; bfloat16 exercises the same casts on CPU
    model, tokenizer = _load(tiny_bert_dir)
    model = model.to(torch.bfloat16)
    result = attention_from_model(model, tokenizer, "the cat sat on the mat")
    weights = np.asarray(result["attentions"])
    assert weights.dtype == np.float64 and np.allclose(weights.sum(-1), 1.0, atol=2e-2)
    math_view = attention_math_from_model(model, tokenizer, "the cat sat on the mat", layer=1, head=1, query=2)
    np.testing.assert_allclose(math_view["weights"], weights[1, 1, 2], atol=2e-2)
    assert all(isinstance(x, float) for x in math_view["output"])


# ---------------------------------------------------------------- one forward pass per (model, input)


def _count_forwards(model) -> list:
    calls: list = []
    model.register_forward_hook(lambda *_: calls.append(1))
    return calls


def test_views_and_the_formula_reuse_one_forward_pass(tiny_env: Path) -> None:
    from model_utils.attention import FORWARD_CACHE, attention_arrays
    from model_utils.manager import get_manager

    FORWARD_CACHE.clear()
    loaded = get_manager().get(None, "base", task="attention", attn_implementation="eager")
    forwards = _count_forwards(loaded.model)
    first = attention_arrays("the cat sat on the mat")
    again = attention_arrays("the cat sat on the mat")
    math_view = attention_math("the cat sat on the mat", layer=1, head=2, query=3)
    assert len(forwards) == 1  # the second call and the formula came from the cache
    np.testing.assert_array_equal(first["weights"], again["weights"])
    np.testing.assert_allclose(math_view["weights"], first["weights"][1, 2, 3], atol=1e-5)
    assert math_view["max_abs_diff"] < 1e-5
    # the cached forward is the model's own: compare with a direct run
    enc = loaded.tokenizer("the cat sat on the mat", return_tensors="pt")
    with torch.no_grad():
        expected = torch.stack(loaded.model(**enc, output_attentions=True).attentions)[:, 0]
    np.testing.assert_allclose(first["weights"], expected.numpy(), atol=1e-6)
    attention_arrays("the cat sat on the mat", text_pair="it was happy")  # another input: its own pass
    assert len(forwards) == 3
    first["truncation"]["truncated"] = "changed by a caller"
    assert attention_arrays("the cat sat on the mat")["truncation"]["truncated"] is False  # callers get copies


def test_the_cache_is_bounded_and_forgets_a_reloaded_model(tiny_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from model_utils.attention import FORWARD_CACHE, attention_arrays
    from model_utils.manager import get_manager

    FORWARD_CACHE.clear()
    monkeypatch.setenv("PLM_ATTENTION_CACHE_MB", "0")  # keep nothing
    loaded = get_manager().get(None, "base", task="attention", attn_implementation="eager")
    forwards = _count_forwards(loaded.model)
    attention_arrays("the cat sat")
    attention_arrays("the cat sat")
    assert len(forwards) == 2
    monkeypatch.setenv("PLM_ATTENTION_CACHE_MB", "64")
    attention_arrays("the cat sat")
    get_manager().unload()  # a reloaded model may have other weights: its inputs are computed again
    reloaded = get_manager().get(None, "base", task="attention", attn_implementation="eager")
    again = _count_forwards(reloaded.model)
    attention_arrays("the cat sat")
    assert len(again) == 1
