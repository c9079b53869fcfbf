"""Bounded text input: every text a user sends is checked here before any tokenizer sees it.

* :func:`check_text`: text or refuse; at most ``PLM_MAX_TEXT_CHARS`` characters (a 1 MB text is
  refused at once instead of being tokenized).
* :func:`fit_pairs`: shorten sentence pairs to a token budget by cutting each side on its own
  token ids, longest side first (the rule of the tokenizers' ``longest_first``). Each side is
  tokenized alone, which is linear in its length; the fast tokenizer's own pair truncation is
  quadratic (5k + 5k tokens took +126 MB, 20k + 20k +2.1 GB and 5 s), so pairs reach it only
  when they already fit.
* :func:`clip_cell`: a table cell or corpus sentence cut to the character limit (uploads are
  bounded in bytes, not per cell).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from model_utils.config import get_settings
from model_utils.errors import UserError, define

define({
    "input.not_text": "{field} must be text, not {kind}.",
    "input.empty": "{field} is empty: please type some text.",
    "input.too_long": "{field} is {length:,} characters long; the limit is {limit:,} characters "
                      "(PLM_MAX_TEXT_CHARS). Shorten it.",
})

# What a text box is called in messages (the key is the ``what`` a caller names; the UI translates it).
FIELDS = {
    "text": "The text", "second text": "The second text", "sentence A": "Sentence A", "sentence B": "Sentence B",
    "paragraph": "The paragraph", "candidate words": "The list of candidate words",
    "probe sentence": "The probe sentence", "sentences": "The list of sentences", "word": "The word",
}


def check_text(value: Any, what: str = "text", *, required: bool = True, limit: int | None = None) -> str | None:
    """``value`` if it is text within the character limit; None for an optional blank one.

    UserError for a non-string, a required blank text, or more than ``limit`` characters
    (``PLM_MAX_TEXT_CHARS`` by default). Checked before tokenizing, so a huge input costs nothing.
    """
    field = FIELDS.get(what, what)
    if value is None:
        if required:
            raise UserError("input.empty", what=what, field=field)
        return None
    if not isinstance(value, str):
        raise UserError("input.not_text", what=what, field=field, kind=type(value).__name__)
    limit = limit or get_settings().max_text_chars
    if len(value) > limit:
        raise UserError("input.too_long", what=what, field=field, length=len(value), limit=limit)
    if not value.strip():
        if required:
            raise UserError("input.empty", what=what, field=field)
        return None
    return value


def clip_cell(value: str, limit: int | None = None) -> tuple[str, bool]:
    """``(value cut to the character limit, whether it was cut)``."""
    limit = limit or get_settings().max_text_chars
    return (value[:limit], True) if len(value) > limit else (value, False)


def longest_first(first: int, second: int, budget: int) -> tuple[int, int]:
    """Tokens kept of each side so that both fit in ``budget``: the longer side is cut first.

    The same split as the tokenizers' ``longest_first`` truncation (ties: the second side keeps
    the odd token), so results agree with a plain ``tokenizer(a, b, truncation=True)``.
    """
    if first + second <= budget:
        return first, second
    half = budget // 2
    first_share = budget - half if first > second else half
    keep_first = min(first, max(first_share, budget - second))
    return keep_first, min(second, budget - keep_first)


@dataclass
class FittedPair:
    """A pair cut to fit: the texts to tokenize and what was cut off each side."""

    first: str
    second: str | None
    total_tokens: int  # tokens of the whole pair, special tokens included
    kept_tokens: int  # tokens after cutting, special tokens included
    dropped: dict[int, str]  # side (0 = first, 1 = second) -> the text cut off its end

    @property
    def truncated(self) -> bool:
        return self.kept_tokens < self.total_tokens


def _ends(tokenizer: Any, texts: list[str]) -> tuple[list[int], list[list[tuple[int, int]] | None]]:
    """Token counts of each text alone (no special tokens) and their character offsets."""
    if not texts:
        return [], []
    if getattr(tokenizer, "is_fast", False):
        out = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
        return [len(ids) for ids in out["input_ids"]], list(out["offset_mapping"])
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [len(i) for i in ids], [None] * len(texts)


def _cut(text: str, offsets: list[tuple[int, int]] | None, keep: int, count: int) -> str:
    """``text`` up to the end of its ``keep``-th token (whole text if nothing is cut)."""
    if keep >= count or offsets is None:
        return text
    return text[:offsets[keep - 1][1]] if keep > 0 else ""


def fit_pairs(tokenizer: Any, firsts: Sequence[str], seconds: Sequence[str | None],
              max_tokens: int) -> list[FittedPair]:
    """Cut each (first, second) pair (second may be None) to ``max_tokens`` tokens with specials.

    Texts are cut at the end of their last kept token; tokenizing the result with
    ``truncation=True`` then gives the tokens of the tokenizer's own longest-first truncation
    (the safety net for the rare subword that re-tokenizes differently) without its quadratic cost.
    """
    counts_a, offsets_a = _ends(tokenizer, list(firsts))
    paired = [i for i, s in enumerate(seconds) if s is not None]
    counts_b_list, offsets_b_list = _ends(tokenizer, [seconds[i] for i in paired])
    counts_b = dict(zip(paired, counts_b_list))
    offsets_b = dict(zip(paired, offsets_b_list))
    fitted = []
    for i, (first, second) in enumerate(zip(firsts, seconds)):
        specials = tokenizer.num_special_tokens_to_add(pair=second is not None)
        budget = max(0, max_tokens - specials)
        count_b = counts_b.get(i, 0)
        keep_a, keep_b = longest_first(counts_a[i], count_b, budget)
        cut_a = _cut(first, offsets_a[i], keep_a, counts_a[i])
        cut_b = _cut(second, offsets_b.get(i), keep_b, count_b) if second is not None else None
        dropped = {side: text[len(cut):] for side, text, cut in ((0, first, cut_a), (1, second, cut_b))
                   if text is not None and len(cut) < len(text)}
        fitted.append(FittedPair(cut_a, cut_b, counts_a[i] + count_b + specials, keep_a + keep_b + specials,
                                 dropped))
    return fitted


def fit_pair(tokenizer: Any, first: str, second: str | None, max_tokens: int) -> FittedPair:
    """:func:`fit_pairs` for one pair."""
    return fit_pairs(tokenizer, [first], [second], max_tokens)[0]


def model_token_limit(config: Any, tokenizer: Any = None, cap: int | None = None) -> int:
    """Longest input in tokens a model takes: the smallest of ``cap`` (an app setting), the model's
    position limit (``max_position_embeddings``/``n_positions``) and the tokenizer's ``model_max_length``
    (RoBERTa: 514 positions, 512 tokens; a huge value means "not set")."""
    limits = [cap] if cap else []
    positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if positions:
        limits.append(positions)
    own = getattr(tokenizer, "model_max_length", None)
    if isinstance(own, int) and 0 < own < 1_000_000:
        limits.append(own)
    return max(2, min(limits)) if limits else 512

