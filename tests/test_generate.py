"""Next-token prediction and generation (model_utils.generate) against transformers' own computations.

On a tiny GPT-2 (byte-level BPE, no special tokens around a text), a tiny BERT decoder (``is_decoder=True``,
``[CLS]`` before the text, like the bundled model) and the bundled ``bundled:minilm-causal``:
``next_token`` equals a direct forward pass + softmax; the filters equal the processed scores of
``model.generate(do_sample=True, output_scores=True)`` and a hand computation; greedy and beam
``generate`` equal ``model.generate``; seeded sampling is reproducible and a step-by-step run equals a
full one; bad input gets a clear message.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import model_utils
from conftest import require_bundled
from model_utils.config import get_settings
from model_utils.errors import UserError

G = importlib.import_module("model_utils.generate")  # the module (model_utils.generate is also the function)
CAUSAL = ["local:tiny-gpt2", "local:tiny-decoder"]
PROMPT = "the cat sat on the mat. then"


def direct(folder: Path):
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    return model, AutoTokenizer.from_pretrained(folder)


def prompt_ids(name: str, tokenizer, text: str = PROMPT) -> list[int]:
    """What the model should read: GPT-2 the text's tokens, the BERT decoder [CLS] + the text's tokens."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ([tokenizer.cls_token_id] if "decoder" in name else []) + ids


@pytest.fixture
def models(tiny_env: Path) -> dict:
    return {name: direct(tiny_env / name.split(":")[1]) for name in CAUSAL}


# ---------------------------------------------------------------------------- next token


@pytest.mark.parametrize("name", CAUSAL)
def test_next_token_equals_a_direct_forward_pass(models: dict, name: str) -> None:
    model, tokenizer = models[name]
    ids = prompt_ids(name, tokenizer)
    with torch.no_grad():
        expected = model(torch.tensor([ids])).logits[0, -1].softmax(-1)
    result = model_utils.next_token(PROMPT, name, top_k=0)
    assert result["prompt_tokens"] == tokenizer.convert_ids_to_tokens(ids)
    top = torch.topk(expected, len(result["candidates"]))
    assert [c["token_id"] for c in result["candidates"]] == top.indices.tolist()
    for candidate in result["candidates"]:
        assert candidate["probability"] == pytest.approx(float(expected[candidate["token_id"]]), abs=1e-5)
        assert candidate["text"] == tokenizer.decode([candidate["token_id"]])
    shown = sum(c["probability"] for c in result["candidates"])
    assert result["rest"]["probability"] == pytest.approx(1 - shown, abs=1e-5)


@pytest.mark.parametrize("name", CAUSAL)
@pytest.mark.parametrize("temperature, top_k, top_p", [(0.7, 5, 0.9), (1.6, 0, 0.5), (1.0, 3, 1.0), (0.3, 0, 0.05)])
def test_filters_equal_what_generate_samples_from(models: dict, name: str, temperature: float, top_k: int,
                                                  top_p: float) -> None:
    """The last stage is the distribution model.generate(do_sample=True) draws from (its processed scores)."""
    model, tokenizer = models[name]
    ids = torch.tensor([prompt_ids(name, tokenizer)])
    out = model.generate(ids, do_sample=True, temperature=temperature, top_k=top_k, top_p=top_p, max_new_tokens=1,
                         output_scores=True, return_dict_in_generate=True, pad_token_id=tokenizer.eos_token_id)
    reference = out.scores[0][0].softmax(-1)
    result = model_utils.next_token(PROMPT, name, top_k=top_k, temperature=temperature, top_p=top_p)
    for candidate in result["candidates"]:
        assert candidate["after_top_p"] == pytest.approx(float(reference[candidate["token_id"]]), abs=1e-5)
        assert (candidate["removed_by"] is None) == bool(reference[candidate["token_id"]] > 0)
    assert result["kept"] == int((reference > 0).sum())


def hand_filters(logits: np.ndarray, temperature: float, top_k: int, top_p: float) -> dict[str, np.ndarray]:
    """Temperature, top-k and top-p written out: the stages as a reader would compute them."""
    def softmax(x: np.ndarray) -> np.ndarray:
        e = np.exp(x - x[np.isfinite(x)].max())
        return e / e.sum()

    scaled = logits / temperature
    stages = {"model": softmax(logits), "temperature": softmax(scaled)}
    if top_k:
        scaled = np.where(scaled >= np.sort(scaled)[-top_k], scaled, -np.inf)
    stages["top_k"] = softmax(scaled)
    probs = softmax(scaled)
    order = np.argsort(-probs, kind="stable")
    before = np.cumsum(probs[order]) - probs[order]  # mass of the more likely tokens
    keep = np.zeros_like(probs, dtype=bool)
    keep[order[before < top_p]] = True  # the smallest set reaching top_p
    stages["top_p"] = softmax(np.where(keep, scaled, -np.inf))
    return stages


@pytest.mark.parametrize("temperature, top_k, top_p", [(1.0, 0, 1.0), (0.5, 4, 1.0), (2.0, 0, 0.6), (0.8, 7, 0.3)])
def test_filter_stages_equal_transformers_warpers_and_a_hand_computation(temperature: float, top_k: int,
                                                                          top_p: float) -> None:
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    logits = torch.randn(50, generator=torch.Generator().manual_seed(7)) * 3
    stages = G.filter_stages(logits, temperature, top_k, top_p)
    warpers = [TemperatureLogitsWarper(temperature)] + ([TopKLogitsWarper(top_k)] if top_k else []) \
        + ([TopPLogitsWarper(top_p)] if top_p < 1 else [])
    reference = LogitsProcessorList(warpers)(torch.zeros((1, 0), dtype=torch.long), logits[None].clone())[0].softmax(-1)
    torch.testing.assert_close(stages["top_p"], reference, atol=1e-6, rtol=0)
    for stage, expected in hand_filters(logits.double().numpy(), temperature, top_k, top_p).items():
        np.testing.assert_allclose(stages[stage].numpy(), expected, atol=1e-6)
        assert float(stages[stage].sum()) == pytest.approx(1.0, abs=1e-5)


# ---------------------------------------------------------------------------- generation


@pytest.mark.parametrize("name", CAUSAL)
def test_greedy_equals_model_generate_and_each_token_is_scored(models: dict, name: str) -> None:
    model, tokenizer = models[name]
    ids = prompt_ids(name, tokenizer)
    reference = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=12,
                               pad_token_id=tokenizer.pad_token_id or 0)[0, len(ids):].tolist()
    result = model_utils.generate(PROMPT, name, max_new_tokens=12)
    assert [t["token_id"] for t in result["tokens"]] == reference
    assert result["finished"] in ("max_new_tokens", "eos") and result["generated"] == len(reference)
    with torch.no_grad():
        probs = model(torch.tensor([ids + reference])).logits[0].softmax(-1)
    for i, token in enumerate(result["tokens"]):
        expected = probs[len(ids) + i - 1]
        assert token["probability"] == pytest.approx(float(expected[token["token_id"]]), abs=1e-5)
        assert token["rank"] == 1  # greedy takes the most likely token
        assert token["alternatives"][0]["token_id"] == token["token_id"]
        assert [a["probability"] for a in token["alternatives"]] == sorted(
            [a["probability"] for a in token["alternatives"]], reverse=True)
    assert result["text"] == tokenizer.decode(ids + reference, skip_special_tokens=True)[
        len(tokenizer.decode(ids, skip_special_tokens=True)):]
    logs = [math.log(t["probability"]) for t in result["tokens"]]
    assert result["perplexity"] == pytest.approx(math.exp(-sum(logs) / len(logs)))


@pytest.mark.parametrize("name", CAUSAL)
def test_beam_search_equals_model_generate(models: dict, name: str) -> None:
    model, tokenizer = models[name]
    ids = prompt_ids(name, tokenizer)
    reference = model.generate(torch.tensor([ids]), do_sample=False, num_beams=3, early_stopping=True,
                               max_new_tokens=8, pad_token_id=tokenizer.pad_token_id or 0)[0, len(ids):].tolist()
    result = model_utils.generate(PROMPT, name, max_new_tokens=8, strategy="beam", num_beams=3)
    assert [t["token_id"] for t in result["tokens"]] == reference[:len(result["tokens"])]
    assert result["strategy"] == "beam" and result["tokens"]


def test_seeded_sampling_is_reproducible_and_stays_inside_the_filters(tiny_env: Path) -> None:
    name = "local:tiny-gpt2"
    runs = [model_utils.generate(PROMPT, name, 10, "sample", temperature=1.3, top_k=6, top_p=0.9, seed=s)
            for s in (11, 11, 12)]
    ids = [[t["token_id"] for t in r["tokens"]] for r in runs]
    assert ids[0] == ids[1] and ids[0] != ids[2]
    for token in runs[0]["tokens"]:
        assert token["sampled_probability"] > 0 and token["rank"] <= 6  # top-k 6 of the model's ranking
    # Step by step (the model's choice each time) gives the same tokens as the full run with that seed.
    chosen: list[int] = []
    for _ in range(5):
        step = model_utils.generate(PROMPT, name, 1, "sample", temperature=1.3, top_k=6, top_p=0.9, seed=11,
                                    continuation=chosen)
        assert [t["chosen_by"] for t in step["tokens"]] == ["given"] * len(chosen) + ["model"]
        chosen.append(step["tokens"][-1]["token_id"])
    assert chosen == ids[0][:5]


def test_the_sampler_draws_in_proportion_to_the_probabilities() -> None:
    probabilities = torch.tensor([0.5, 0.3, 0.15, 0.05, 0.0])
    draws = np.bincount([G.sample_token(probabilities, seed, 0) for seed in range(4000)], minlength=5)
    expected = probabilities.numpy() * 4000
    assert draws[4] == 0
    chi_square = float((((draws - expected)[:4]) ** 2 / expected[:4]).sum())
    assert chi_square < 16.3  # p = 0.001 with 3 degrees of freedom


def test_streaming_yields_every_token_and_stops_when_asked(tiny_env: Path) -> None:
    records = list(model_utils.generate_stream(PROMPT, "local:tiny-decoder", 6, "greedy"))
    assert [len(r["tokens"]) for r in records][:3] == [1, 2, 3]
    assert records[-1]["finished"] is not None and all(r["finished"] is None for r in records[:-1])
    final = model_utils.generate(PROMPT, "local:tiny-decoder", 6)
    assert [t["token_id"] for t in records[-1]["tokens"]] == [t["token_id"] for t in final["tokens"]]
    calls = []
    stopped = list(model_utils.generate_stream(PROMPT, "local:tiny-decoder", 6, "sample", seed=1,
                                               should_stop=lambda: calls.append(1) or len(calls) >= 2))
    assert stopped[-1]["finished"] == "stopped" and len(stopped[-1]["tokens"]) == 2


def test_min_new_tokens_forbids_the_end_token_like_transformers(models: dict) -> None:
    name = "local:tiny-decoder"
    model, tokenizer = models[name]
    ids = prompt_ids(name, tokenizer)
    reference = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=10, min_new_tokens=10,
                               pad_token_id=0)[0, len(ids):].tolist()
    result = model_utils.generate(PROMPT, name, 10, min_new_tokens=10)
    assert [t["token_id"] for t in result["tokens"]] == reference and result["generated"] == 10


def test_a_long_prompt_keeps_its_end_and_generation_stops_at_the_context(tiny_env: Path) -> None:
    long_prompt = "the cat sat on the mat . " * 40  # past the tiny models' positions (64, and 256 for GPT-2)
    result = model_utils.next_token(long_prompt, "local:tiny-decoder")
    assert len(result["prompt_tokens"]) == 63 and result["prompt_tokens"][0] == "[CLS]"
    assert "only its last 62 are used" in result["notices"][0]
    generated = model_utils.generate(long_prompt, "local:tiny-gpt2", 5, min_new_tokens=5)
    assert generated["finished"] == "context" and generated["generated"] == 1
    assert "context length (256 tokens)" in generated["notices"][-1]


def test_generation_is_bounded_in_time(tiny_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = dataclasses.replace(get_settings(), generate_time_limit_s=0.0)
    monkeypatch.setattr(G, "get_settings", lambda: settings)
    result = model_utils.generate(PROMPT, "local:tiny-gpt2", 20, min_new_tokens=20)
    assert result["finished"] == "time_limit" and result["generated"] == 1
    assert "PLM_GENERATE_TIME_LIMIT" in result["notices"][-1]


@pytest.mark.parametrize("kwargs, message", [
    ({"text": ""}, "The text is empty"),
    ({"temperature": 0}, "greater than 0 and at most 100"),
    ({"temperature": -1}, "greedy strategy"),
    ({"temperature": float("nan")}, "greater than 0"),
    ({"temperature": "hot"}, "must be a number"),
    ({"top_p": 0}, "top-p must be greater than 0 and at most 1"),
    ({"top_p": 1.5}, "top-p must be"),
    ({"top_k": -1}, "top-k must be a whole number"),
    ({"top_k": 2.5}, "top-k must be a whole number"),
    ({"max_new_tokens": 0}, "from 1 to 200 (PLM_MAX_NEW_TOKENS)"),
    ({"max_new_tokens": 10**9}, "from 1 to 200"),
    ({"strategy": "creative"}, "must be one of greedy, sample, beam"),
    ({"strategy": "beam", "num_beams": 1}, "from 2 to 8 (PLM_MAX_BEAMS)"),
    ({"strategy": "beam", "num_beams": 500}, "from 2 to 8"),
    ({"seed": -3}, "The seed must be a whole number"),
    ({"continuation": [1, 10**6]}, "the model's token ids (0 to 299)"),
    ({"continuation": "1,2"}, "must be a list"),
    ({"continuation": [1] * 201}, "201 tokens were already added"),
    ({"continuation": [1] * 63, "model": "local:tiny-decoder"}, "fills the model's context (64 tokens)"),
    ({"model": "local:tiny-bert"}, "reads the words on both sides"),
    ({"model": "bundled:minilm-pretrained"}, "has no causal-language-model head"),
])
def test_bad_input_gets_a_clear_message(tiny_env: Path, kwargs: dict, message: str) -> None:
    arguments = {"text": PROMPT, "model": "local:tiny-gpt2", **kwargs}
    with pytest.raises(UserError) as caught:
        model_utils.generate(**arguments)
    assert message in str(caught.value)


def test_next_token_checks_its_filters_before_loading(tiny_env: Path) -> None:
    with pytest.raises(UserError, match="temperature must be greater than 0"):
        model_utils.next_token(PROMPT, "no-such/model-anywhere", temperature=0)


# ---------------------------------------------------------------------------- the bundled model


def test_bundled_causal_model_next_token_and_greedy_equal_transformers(monkeypatch: pytest.MonkeyPatch) -> None:
    require_bundled("bundled:minilm-causal")
    from model_utils import manager

    monkeypatch.setenv("PLM_DEVICE", "cpu")
    monkeypatch.setattr(manager, "_manager", manager.ModelManager())
    loaded = manager.get_manager().get("bundled:minilm-causal", "causal-lm")  # the transformers model itself
    model, tokenizer = loaded.model, loaded.tokenizer
    assert type(model).__name__ == "BertLMHeadModel"
    text = "I was very hungry after work, so I"
    ids = [tokenizer.cls_token_id] + tokenizer.encode(text, add_special_tokens=False)
    with torch.no_grad():
        expected = model(torch.tensor([ids])).logits[0, -1].softmax(-1)
    result = model_utils.next_token(text, "bundled:minilm-causal", top_k=0)
    for candidate in result["candidates"]:
        assert candidate["probability"] == pytest.approx(float(expected[candidate["token_id"]]), abs=1e-5)
    reference = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=12,
                               pad_token_id=tokenizer.pad_token_id)[0, len(ids):].tolist()
    if tokenizer.sep_token_id in reference:  # the end of the text; generate() pads after it
        reference = reference[:reference.index(tokenizer.sep_token_id) + 1]
    generated = model_utils.generate(text, "bundled:minilm-causal", 12)
    assert [t["token_id"] for t in generated["tokens"]] == reference
    assert generated["finished"] == ("eos" if reference[-1] == tokenizer.sep_token_id else "max_new_tokens")


def test_a_prompt_the_model_cannot_read_gets_a_notice_naming_a_model_that_can(tiny_env: Path) -> None:
    result = model_utils.next_token("我今天很饿，所以", "local:tiny-decoder", top_k=3)
    unreadable = [n for n in result["notices"] if n.code.startswith("vocabulary.unreadable")]
    assert len(unreadable) == 1 and unreadable[0].params["suggestion"] == G.MULTILINGUAL_GENERATOR
    assert "local:tiny-decoder" in unreadable[0]
    record = model_utils.generate("我今天很饿", "local:tiny-decoder", strategy="greedy", max_new_tokens=2)
    assert any(n.code.startswith("vocabulary.unreadable") for n in record["notices"])
    assert not model_utils.next_token(PROMPT, "local:tiny-decoder", top_k=3)["notices"]
