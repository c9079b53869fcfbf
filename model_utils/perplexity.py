"""How likely a text is under a language model, token by token and word by word.

* :func:`score_text`: each token's log-probability and the text's perplexity. A left-to-right model
  predicts each token from the ones before it (one forward pass); a masked LM has no such order, so
  each token is masked in turn and predicted from both sides: the pseudo-log-likelihood and
  pseudo-perplexity of Salazar et al. (2020), one forward pass per token.
* :func:`bert_vs_gpt`: the same sentence word by word, the probability a masked LM gives each true
  word from both sides (the word's tokens masked; a multi-token word scored left to right inside the
  word, the "PLL-word-l2r" of Kauf & Ivanova, 2023, so its own later pieces do not give it away) and the
  probability a causal LM gives it from the left side only; and each model's attention mask (which
  positions a token may look at), read from the real attention weights (:mod:`model_utils.attention`).

Texts longer than ``PLM_MAX_SCORE_TOKENS`` tokens are cut with a notice (a masked LM runs one pass per token).
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any, Callable, Sequence

import numpy as np
import torch

from model_utils.config import get_settings
from model_utils.errors import Notice, UserError, define
from model_utils.generate import special_tokens_around
from model_utils.inputs import check_text, model_token_limit
from model_utils.manager import LoadedModel, get_manager, gpu_task
from model_utils.registry import resolve

METHODS: tuple[str, ...] = ("auto", "causal", "masked")
PASS_TOKENS = 4096  # tokens per batched forward pass of the masked scorer (about 32 copies of a 128-token text)
_WORD = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")  # a word (with its apostrophes) or one punctuation mark

define({
    "perplexity.bad_method": "The scoring method must be one of {choices}, got {value!r}.",
    "perplexity.no_mask_token": "{name} has no mask token, so it cannot score a text by masking its tokens.",
    "perplexity.needs_fast_tokenizer": "{name} has no fast tokenizer, so its tokens cannot be matched to the "
                                       "words of the text; choose another model.",
    "perplexity.nothing_to_score": "{name} predicts each token from the ones before it and this text has only "
                                   "one token, so there is nothing to score; write a longer text.",
    "perplexity.no_words": "The text has no words to compare.",
    "perplexity.text_cut": "The text has {total} tokens; only the first {kept} were scored (PLM_MAX_SCORE_TOKENS).",
    "perplexity.text_cut_model": "The text has {total} tokens and {name} reads at most {limit} at once, so only "
                                 "the first {kept} were scored.",
})


# ---------------------------------------------------------------------------- preprocess


class _Encoded:
    """A text as the model reads it: ``ids`` = prefix + body (cut) + suffix, with the body's offsets.

    The body is cut at ``PLM_MAX_SCORE_TOKENS`` tokens, or sooner where the model's context (its positions,
    with the special tokens around the text) is shorter, with a notice saying which limit cut it.
    """

    def __init__(self, loaded: LoadedModel, text: str, with_suffix: bool) -> None:
        tokenizer = loaded.tokenizer
        if not getattr(tokenizer, "is_fast", False):
            raise UserError("perplexity.needs_fast_tokenizer", name=loaded.checkpoint)
        plain = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        prefix, suffix = special_tokens_around(tokenizer)
        suffix = suffix if with_suffix else []
        settings = get_settings()
        limit = model_token_limit(loaded.model.config, tokenizer, cap=settings.max_seq_len)
        cap = max(1, min(settings.max_score_tokens, limit - len(prefix) - len(suffix)))
        self.total = len(plain["input_ids"])
        body = plain["input_ids"][:cap]
        self.offsets = [tuple(o) for o in plain["offset_mapping"][:cap]]
        self.ids = prefix + body + suffix
        self.start = len(prefix)  # index of the body's first token in ids
        self.body = body
        self.notices = [] if self.total <= cap else [
            Notice("perplexity.text_cut", total=self.total, kept=cap) if cap == settings.max_score_tokens
            else Notice("perplexity.text_cut_model", total=self.total, name=loaded.checkpoint, limit=limit, kept=cap)]

    def token(self, index: int, tokenizer: Any, text: str) -> dict:
        """A body token as a record: its token string, its text and where it is in ``text``."""
        start, end = self.offsets[index]
        return {"token": tokenizer.convert_ids_to_tokens(self.body[index]), "text": text[start:end],
                "start": start, "end": end}


def _rank(probabilities: torch.Tensor, token: int) -> int:
    return int((probabilities > probabilities[token]).sum()) + 1


# ---------------------------------------------------------------------------- forward passes


def _causal_logprobs(loaded: LoadedModel, ids: Sequence[int]) -> torch.Tensor:
    """Log-probabilities of the next token at every position of ``ids``: ``[len(ids), vocab]`` on the CPU."""
    with loaded.lock, torch.inference_mode():
        logits = loaded.model(torch.tensor([list(ids)], device=loaded.device)).logits
    return logits[0].float().log_softmax(-1).cpu()


def _masked_logprobs(loaded: LoadedModel, ids: Sequence[int], masks: Sequence[tuple[list[int], int]],
                     progress: Callable[[int, int], None] | None = None) -> list[torch.Tensor]:
    """For each (positions to mask, position to read): log-probabilities over the vocabulary at the read
    position of ``ids`` with those positions masked. Copies are batched, ``PASS_TOKENS`` tokens a pass."""
    mask_id = loaded.tokenizer.mask_token_id
    per_pass = max(1, PASS_TOKENS // max(1, len(ids)))
    results: list[torch.Tensor] = []
    for first in range(0, len(masks), per_pass):
        chunk = masks[first:first + per_pass]
        batch = torch.tensor([list(ids)] * len(chunk))
        for row, (positions, _) in enumerate(chunk):
            batch[row, positions] = mask_id
        with loaded.lock, torch.inference_mode():
            logits = loaded.model(input_ids=batch.to(loaded.device)).logits
        rows = torch.arange(len(chunk), device=logits.device)
        reads = torch.tensor([read for _, read in chunk], device=logits.device)
        results.extend(logits[rows, reads].float().log_softmax(-1).cpu())
        if progress is not None:
            progress(min(first + per_pass, len(masks)), len(masks))
    return results


# ---------------------------------------------------------------------------- score a text


def _load_masked(model: str | None) -> LoadedModel:
    loaded = get_manager().get(model, "masked-lm", task="fill-mask")
    if loaded.tokenizer.mask_token_id is None:
        raise UserError("perplexity.no_mask_token", name=loaded.checkpoint)
    return loaded


def _load_causal(model: str | None) -> LoadedModel:
    return get_manager().get(model, "causal-lm", task="text-generation")


def _pick_method(model: str | None, method: str) -> str:
    """"causal" or "masked" for ``method="auto"``: what the registry says the checkpoint is, else a try."""
    if method not in METHODS:
        raise UserError("perplexity.bad_method", value=method, choices=", ".join(METHODS))
    if method != "auto":
        return method
    name = get_manager().resolve_checkpoint(model, "text-generation", "causal-lm")
    tasks = resolve(name).tasks
    if ("text-generation" in tasks) != ("fill-mask" in tasks):
        return "causal" if "text-generation" in tasks else "masked"
    try:  # a Hub id the registry does not describe
        _load_causal(name)
        return "causal"
    except UserError as err:
        if err.code in ("model.no_head", "model.not_causal", "model.untrained_head"):
            return "masked"
        raise


def _summary(records: list[dict]) -> dict:
    logs = [r["logprob"] for r in records if r["logprob"] is not None]
    mean = sum(logs) / len(logs)
    return {"scored": len(logs), "logprob": sum(logs), "mean_logprob": mean, "perplexity": math.exp(-mean)}


def _score_causal(loaded: LoadedModel, text: str) -> dict:
    encoded = _Encoded(loaded, text, with_suffix=False)
    if len(encoded.ids) < 2:
        raise UserError("perplexity.nothing_to_score", name=loaded.checkpoint)
    logprobs = _causal_logprobs(loaded, encoded.ids)
    records = []
    for index, token in enumerate(encoded.body):
        position = encoded.start + index
        record = encoded.token(index, loaded.tokenizer, text)
        scored = position > 0  # the very first token has nothing before it to be predicted from
        dist = logprobs[position - 1] if scored else None
        record.update(logprob=float(dist[token]) if scored else None, rank=_rank(dist, token) if scored else None)
        records.append(record)
    return {"tokens": records, "notices": encoded.notices}


def _score_masked(loaded: LoadedModel, text: str, progress: Callable[[int, int], None] | None) -> dict:
    encoded = _Encoded(loaded, text, with_suffix=True)
    positions = [encoded.start + i for i in range(len(encoded.body))]
    logprobs = _masked_logprobs(loaded, encoded.ids, [([p], p) for p in positions], progress)
    records = []
    for index, (token, dist) in enumerate(zip(encoded.body, logprobs)):
        record = encoded.token(index, loaded.tokenizer, text)
        record.update(logprob=float(dist[token]), rank=_rank(dist, token))
        records.append(record)
    return {"tokens": records, "notices": encoded.notices}


@gpu_task
def score_text(text: str, model: str | None = None, method: str = "auto",
               progress: Callable[[int, int], None] | None = None) -> dict:
    """Each token's log-probability under ``model`` and the text's perplexity.

    ``method``: "causal" (a left-to-right model: each token from the ones before it), "masked" (a masked
    LM: each token masked in turn, its pseudo-log-likelihood) or "auto" (what the model is). Returns
    ``{"model", "method", "text", "tokens": [{"token", "text", "start", "end", "logprob", "probability", "rank"}],
    "scored", "logprob", "mean_logprob", "perplexity", "notices"}``; perplexity = exp(-mean log-probability)
    over the scored tokens (a left-to-right model without a start token cannot score the first one).
    ``progress(done, total)`` follows the masked scorer's passes.
    """
    text = check_text(text, "text")
    chosen = _pick_method(model, method)
    loaded = _load_causal(model) if chosen == "causal" else _load_masked(model)
    result = _score_causal(loaded, text) if chosen == "causal" else _score_masked(loaded, text, progress)
    for record in result["tokens"]:
        record["probability"] = None if record["logprob"] is None else math.exp(record["logprob"])
    if not any(r["logprob"] is not None for r in result["tokens"]):
        raise UserError("perplexity.nothing_to_score", name=loaded.checkpoint)
    return {"model": loaded.checkpoint, "method": chosen, "text": text, **result, **_summary(result["tokens"])}


# ---------------------------------------------------------------------------- BERT vs GPT


def words_of(text: str) -> list[tuple[str, int, int]]:
    """The words and punctuation marks of ``text`` with their character spans (control and format
    characters, such as a zero-width space, are neither)."""
    return [(m.group(0), m.start(), m.end()) for m in _WORD.finditer(text)
            if not unicodedata.category(m.group(0)[0]).startswith("C")]


def _word_tokens(offsets: Sequence[tuple[int, int]], words: Sequence[tuple[str, int, int]]) -> list[list[int]]:
    """For each word, the indexes of the tokens that belong to it: a token belongs to the first word its
    characters overlap; a token of spaces only (GPT-2's ``Ġ`` before a digit) to the word after it."""
    owned: list[list[int]] = [[] for _ in words]
    for index, (start, end) in enumerate(offsets):
        word = next((w for w, (_, ws, we) in enumerate(words) if start < we and end > ws), None)
        if word is None:
            word = next((w for w, (_, ws, _) in enumerate(words) if ws >= end), None)
        if word is not None and end > start:
            owned[word].append(index)
    return owned


def _masked_words(loaded: LoadedModel, text: str, words: list,
                  progress: Callable | None) -> tuple[list, list, _Encoded]:
    """Per word: log P(word | both sides) (its tokens masked, scored left to right) and the top guess."""
    encoded = _Encoded(loaded, text, with_suffix=True)
    owned = _word_tokens(encoded.offsets, words)
    jobs = []  # (word, positions masked, position read)
    for word, indexes in enumerate(owned):
        positions = [encoded.start + i for i in indexes]
        jobs += [(word, positions[j:], positions[j]) for j in range(len(positions))]
    logprobs = _masked_logprobs(loaded, encoded.ids, [(masked, read) for _, masked, read in jobs], progress)
    totals: list[float | None] = [None] * len(words)
    guesses: list[str | None] = [None] * len(words)
    for (word, _, read), dist in zip(jobs, logprobs):
        if totals[word] is None:  # the word's first token, read with the whole word masked
            totals[word], guesses[word] = 0.0, loaded.tokenizer.decode([int(dist.argmax())]).strip()
        totals[word] += float(dist[encoded.ids[read]])
    return totals, guesses, encoded


def _causal_words(loaded: LoadedModel, text: str, words: list) -> tuple[list, list, _Encoded]:
    """Per word: log P(word | the words before it) (chain rule over its tokens) and the top guess."""
    encoded = _Encoded(loaded, text, with_suffix=False)
    logprobs = _causal_logprobs(loaded, encoded.ids)
    totals: list[float | None] = [None] * len(words)
    guesses: list[str | None] = [None] * len(words)
    for word, indexes in enumerate(_word_tokens(encoded.offsets, words)):
        positions = [encoded.start + i for i in indexes]
        if not positions or positions[0] == 0:  # no token, or nothing before it to predict it from
            continue
        guesses[word] = loaded.tokenizer.decode([int(logprobs[positions[0] - 1].argmax())]).strip()
        totals[word] = sum(float(logprobs[p - 1][encoded.ids[p]]) for p in positions)
    return totals, guesses, encoded


def attention_mask_of(text: str, model: str) -> dict:
    """Which positions each token may attend to in ``model``, read from its real attention weights: a key is
    allowed for a query when some head of some layer gives it weight. ``{"tokens", "allowed", "causal"}``."""
    from model_utils.attention import attention

    result = attention(text, model=model)
    weights = np.asarray(result["attentions"], dtype=np.float32)
    return {"model": result["checkpoint"], "tokens": result["tokens"], "causal": bool(result["causal"]),
            "allowed": (weights.max(axis=(0, 1)) > 0).astype(int).tolist()}


@gpu_task
def bert_vs_gpt(text: str, masked_model: str | None = None, causal_model: str | None = None,
                progress: Callable[[int, int], None] | None = None) -> dict:
    """The same sentence word by word: the probability a masked LM gives each true word from both sides, and
    a causal LM from the left side only, with each one's top guess there and both attention masks.

    Returns ``{"text", "masked_model", "causal_model", "words": [{"word", "start", "end", "masked_probability",
    "causal_probability", "masked_guess", "causal_guess"}], "masks": {"masked": ..., "causal": ...}
    (see :func:`attention_mask_of`), "notices"}``. A probability is None where a model cannot score the word
    (a causal LM without a start token has nothing before the first word).
    """
    text = check_text(text, "text")
    masked, causal = _load_masked(masked_model), _load_causal(causal_model)
    words = words_of(text)
    if not words:
        raise UserError("perplexity.no_words")
    masked_logs, masked_guesses, encoded = _masked_words(masked, text, words, progress)
    if encoded.total > len(encoded.body):  # cut: compare only the words that were read
        end = encoded.offsets[-1][1]
        text, words = text[:end], [w for w in words if w[2] <= end]
        masked_logs, masked_guesses = masked_logs[:len(words)], masked_guesses[:len(words)]
    causal_logs, causal_guesses, causal_encoded = _causal_words(causal, text, words)
    records = [{"word": word, "start": start, "end": end,
                "masked_probability": None if m is None else math.exp(m),
                "causal_probability": None if c is None else math.exp(c),
                "masked_guess": mg, "causal_guess": cg}
               for (word, start, end), m, c, mg, cg in zip(words, masked_logs, causal_logs, masked_guesses,
                                                          causal_guesses)]
    masks = {"masked": attention_mask_of(text, masked.checkpoint), "causal": attention_mask_of(text, causal.checkpoint)}
    return {"text": text, "masked_model": masked.checkpoint, "causal_model": causal.checkpoint, "words": records,
            "masks": masks, "notices": encoded.notices + causal_encoded.notices}
