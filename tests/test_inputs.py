"""Bounded text input: the character limit, and pairs cut side by side like the tokenizer's own truncation."""

from __future__ import annotations

import random

import pytest

from conftest import TINY_WORDS, tiny_tokenizer
from model_utils.errors import UserError
from model_utils.inputs import check_text, clip_cell, fit_pair, fit_pairs, longest_first


def test_text_within_the_limit_passes_and_longer_text_is_refused_by_code(monkeypatch) -> None:
    monkeypatch.setenv("PLM_MAX_TEXT_CHARS", "1000")
    assert check_text("x" * 1000) == "x" * 1000
    with pytest.raises(UserError) as caught:
        check_text("x" * 1001, "sentence B")
    assert caught.value.code == "input.too_long"
    assert caught.value.params["limit"] == 1000 and "Sentence B is 1,001 characters" in str(caught.value)


@pytest.mark.parametrize("value,code", [(None, "input.empty"), ("", "input.empty"), (" \n\t", "input.empty"),
                                        (42, "input.not_text"), (["a"], "input.not_text")])
def test_missing_blank_and_non_text_values_are_refused(value, code) -> None:
    with pytest.raises(UserError) as caught:
        check_text(value, "text")
    assert caught.value.code == code


def test_optional_text_may_be_missing_or_blank_but_not_too_long() -> None:
    assert check_text(None, required=False) is None and check_text("  ", required=False) is None
    with pytest.raises(UserError):
        check_text("y" * 30_000, required=False)


def test_clip_cell() -> None:
    assert clip_cell("abc", 5) == ("abc", False)
    assert clip_cell("abcdefg", 5) == ("abcde", True)


def _counts(tokenizer, first: int, second: int, max_length: int) -> tuple[int, int]:
    """Tokens of each side kept by the tokenizer's own longest-first pair truncation."""
    enc = tokenizer(" ".join(["cat"] * first), " ".join(["dog"] * second), truncation="longest_first",
                    max_length=max_length)
    sides = enc.sequence_ids()
    return sides.count(0), sides.count(1)


def test_longest_first_splits_like_the_tokenizer() -> None:
    tokenizer = tiny_tokenizer()
    for max_length in (13, 14, 20):
        budget = max_length - 3
        for first in range(1, 16):
            for second in range(1, 16):
                assert longest_first(first, second, budget) == _counts(tokenizer, first, second, max_length), (
                    first, second, max_length)


def test_fitted_pairs_tokenize_exactly_like_tokenizer_truncation() -> None:
    tokenizer = tiny_tokenizer()
    rng = random.Random(0)
    words = TINY_WORDS + ["sleeping", "cats", "walked"]  # subwords (##ing, ##s, ##ed) are cut too
    for _ in range(200):
        first = " ".join(rng.choice(words) for _ in range(rng.randint(1, 60)))
        second = " ".join(rng.choice(words) for _ in range(rng.randint(1, 60)))
        max_length = rng.choice([8, 16, 32, 64])
        fitted = fit_pair(tokenizer, first, second, max_length)
        ours = tokenizer(fitted.first, fitted.second, truncation=True, max_length=max_length)["input_ids"]
        reference = tokenizer(first, second, truncation="longest_first", max_length=max_length)["input_ids"]
        assert ours == reference
        assert fitted.kept_tokens == len(reference)
        assert fitted.total_tokens == len(tokenizer(first, second)["input_ids"])
        for side, text in ((0, first), (1, second)):
            cut = fitted.first if side == 0 else fitted.second
            assert cut + fitted.dropped.get(side, "") == text  # nothing lost but the end


def test_single_texts_and_mixed_batches() -> None:
    tokenizer = tiny_tokenizer()
    fitted = fit_pairs(tokenizer, ["the cat sat on the mat", "a dog"], [None, "the bird ate"], max_tokens=5)
    assert fitted[0].second is None and fitted[0].first == "the cat sat" and fitted[0].truncated
    assert (fitted[1].first, fitted[1].second) == ("a", "the")  # 5 tokens = [CLS] a [SEP] the [SEP]
    assert tokenizer(fitted[0].first, truncation=True, max_length=5)["input_ids"] == tokenizer(
        "the cat sat on the mat", truncation=True, max_length=5)["input_ids"]
