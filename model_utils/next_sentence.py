"""Next Sentence Prediction: does sentence B follow sentence A?

:func:`preprocess` (validate, tokenize the pair, truncate with a notice) -> :func:`_forward`
(the only device code) -> :func:`postprocess` (``{"is_next": p, "not_next": 1 - p}``).
Public API: :func:`next_sentence` for one pair, :func:`score_pairs` for many, and
:func:`score_paragraph`, which scores each consecutive pair of a paragraph's sentences
against a control that differs by construction: each sentence followed by a sentence of another
text (:data:`OTHER_TEXT`), the way BERT's pretraining built its "not next" pairs.
"""

from __future__ import annotations

import random
import re
from typing import Any, Sequence

import torch

from model_utils.config import get_settings
from model_utils.errors import Notice, UserError, define
from model_utils.inputs import check_text, fit_pair
from model_utils.vocabulary import unreadable_notice
from model_utils.manager import LoadedModel, get_manager, gpu_task

MAX_PARAGRAPH_SENTENCES = 32

define({
    "next_sentence.no_pairs": "No sentence pairs to score.",
    "next_sentence.paragraph_short": "Paragraph mode needs at least two sentences (ending with . ! or ?).",
    "next_sentence.pair_cut": "The pair is {length} tokens long and the model reads at most {limit}; the longer "
                              "sentence was cut.",
    "next_sentence.paragraph_cut": "Only the first {kept} of {total} sentences were scored.",
})
# A sentence runs to . ! ? (plus closing quotes) before a space or the end, or to 。！？.
# The lookbehind lets a run of . ! ? be tried from its first character only: without it the
# regex retried the run from every position inside it, quadratic in its length (100 kB of
# dots held the GIL, and so the whole app, for minutes).
_SENTENCE = re.compile(r"""\S.*?(?:(?<![.!?])[.!?]+["'”’)\]]*(?=\s|$)|[。！？]+["'”’)\]]*|$)""", re.S)


def split_sentences(paragraph: str) -> list[str]:
    """Split a paragraph into sentences at ., !, ? (and 。！？), dropping empty pieces."""
    return [s.strip() for s in _SENTENCE.findall(paragraph or "") if s.strip()]


def preprocess(first: str, second: str, tokenizer: Any) -> tuple[dict, list[str]]:
    """Tokenize a sentence pair, cut side by side to the token limit. Returns (encoding, notices).

    UserError if either sentence is missing, empty or over the character limit.
    """
    first = check_text(first, "sentence A")
    second = check_text(second, "sentence B")
    model_max = getattr(tokenizer, "model_max_length", 512)
    limit = min(get_settings().max_seq_len, model_max if model_max < 100_000 else 512)
    fitted = fit_pair(tokenizer, first, second, limit)
    encoding = tokenizer(fitted.first, fitted.second, truncation="longest_first", max_length=limit)
    notices = []
    if fitted.truncated:
        notices.append(Notice("next_sentence.pair_cut", length=fitted.total_tokens, limit=limit))
    return dict(encoding), notices


def _forward(loaded: LoadedModel, encodings: Sequence[dict]) -> torch.Tensor:
    """P(IsNext) of each encoded pair, as a CPU fp32 tensor."""
    padded = loaded.tokenizer.pad(list(encodings), return_tensors="pt")
    inputs = {k: v.to(loaded.device) for k, v in padded.items()}
    with torch.inference_mode():
        logits = loaded.model(**inputs).logits
    return logits.float().softmax(-1)[:, 0].cpu()  # label 0 is "B follows A"


def postprocess(p_is_next: float) -> dict:
    """Plain result of one pair."""
    return {"is_next": float(p_is_next), "not_next": 1.0 - float(p_is_next)}


def _load(model: str | None) -> LoadedModel:
    return get_manager().get(model, "next-sentence", task="next-sentence")


@gpu_task
def score_pairs(pairs: Sequence[tuple[str, str]], model: str | None = None) -> list[dict]:
    """Score many (A, B) pairs in one batch: ``[{"is_next", "not_next", "notices"}, ...]``."""
    if not pairs:
        raise UserError("next_sentence.no_pairs")
    loaded = _load(model)
    with loaded.lock:
        prepared = [preprocess(a, b, loaded.tokenizer) for a, b in pairs]
        probs = _forward(loaded, [encoding for encoding, _ in prepared])
        for (first, second), (encoding, notices) in zip(pairs, prepared):
            unreadable = unreadable_notice(loaded.tokenizer, f"{first} {second}", encoding["input_ids"],
                                           loaded.checkpoint)
            notices.extend([unreadable] if unreadable else [])
    return [{**postprocess(p), "notices": notices} for p, (_, notices) in zip(probs.tolist(), prepared)]


def next_sentence(first: str, second: str, model: str | None = None) -> dict:
    """Probability that ``second`` follows ``first``: ``{"is_next": p, "not_next": 1 - p, "notices"}`` (a cut
    pair, text the model cannot read)."""
    result = score_pairs([(first, second)], model)[0]
    return {"is_next": result["is_next"], "not_next": result["not_next"], "notices": result["notices"]}


def shuffled_order(count: int, seed: int = 0) -> list[int]:
    """A permutation of range(count) with as few original neighbours kept as a few tries find."""
    rng = random.Random(seed)
    best = list(range(count))[::-1]
    best_kept = count
    for _ in range(50):
        order = list(range(count))
        rng.shuffle(order)
        kept = sum(order[i + 1] == order[i] + 1 for i in range(count - 1))
        if kept < best_kept:
            best, best_kept = order, kept
        if kept == 0:
            break
    return best


# Sentences of other texts on unrelated topics: the second half of each control pair. Shuffling the
# paragraph's own sentences made pairs on the same topic that an NSP head scores as "next" anyway (no
# contrast); a sentence from another text is "not next" by construction, as in BERT's pretraining.
OTHER_TEXT = {
    "en": ["The comet's tail always points away from the sun.",
           "Add the butter to the flour and rub it in with your fingertips.",
           "The striker scored twice in the last ten minutes of the match.",
           "Granite forms when magma cools slowly deep underground.",
           "The orchestra tuned to the oboe before the overture began.",
           "Tax returns must be filed by the end of April.",
           "Penguins huddle together to survive the Antarctic winter.",
           "The printer on the third floor is out of toner again.",
           "Medieval castles were built with thick walls and narrow windows.",
           "Water the tomato plants early in the morning, before the heat.",
           "The train to the airport leaves every fifteen minutes.",
           "A chess player loses on time if the flag falls first."],
    "zh": ["彗星的尾巴总是背向太阳。", "把黄油加入面粉里，用手指搓匀。", "这名前锋在比赛最后十分钟内进了两个球。",
           "花岗岩是岩浆在地下深处慢慢冷却形成的。", "乐团在序曲开始前按双簧管定音。", "企鹅挤在一起度过南极的冬天。",
           "三楼的打印机又没有墨粉了。", "去机场的火车每十五分钟一班。"],
}


def control_pairs(sentences: Sequence[str], seed: int = 0) -> list[tuple[str, str]]:
    """For each consecutive pair of ``sentences``, the same first sentence followed by a sentence of another
    text (:data:`OTHER_TEXT`, Chinese ones for Chinese text): pairs that are "not next" by construction. The
    other text's sentences sharing the fewest words with the paragraph are used, their order set by ``seed``."""
    text = " ".join(sentences)
    pool = OTHER_TEXT["zh" if re.search(r"[\u3400-\u9fff]", text) else "en"]
    words = set(re.findall(r"\w+", text.lower()))
    ranked = sorted(pool, key=lambda other: len(words & set(re.findall(r"\w+", other.lower()))))
    chosen = ranked[:max(2, len(pool) // 2)]
    random.Random(seed).shuffle(chosen)
    return [(first, chosen[i % len(chosen)]) for i, first in enumerate(sentences[:-1])]


def score_paragraph(paragraph: str, model: str | None = None, seed: int = 0) -> dict:
    """Score each consecutive sentence pair of ``paragraph`` and a control (:func:`control_pairs`): each of
    its sentences followed by a sentence of another text.

    Returns ``{"sentences", "pairs": [{"index", "first", "second", "is_next"}], "control": [...same for the
    control pairs], "mean_is_next", "mean_control", "contrast" (mean_is_next - mean_control), "notices"}``.
    """
    sentences = split_sentences(check_text(paragraph, "paragraph"))
    if len(sentences) < 2:
        raise UserError("next_sentence.paragraph_short")
    notices = []
    if len(sentences) > MAX_PARAGRAPH_SENTENCES:
        notices.append(Notice("next_sentence.paragraph_cut", kept=MAX_PARAGRAPH_SENTENCES, total=len(sentences)))
        sentences = sentences[:MAX_PARAGRAPH_SENTENCES]
    original = list(zip(sentences, sentences[1:]))
    control = control_pairs(sentences, seed)
    scores = score_pairs(original + control, model)
    for result in scores:
        for notice in result["notices"]:  # once per kind (the shares of unknown tokens differ by pair)
            if getattr(notice, "code", notice) not in {getattr(n, "code", n) for n in notices}:
                notices.append(notice)

    def records(pairs: list[tuple[str, str]], results: list[dict]) -> list[dict]:
        return [{"index": i + 1, "first": a, "second": b, "is_next": r["is_next"]}
                for i, ((a, b), r) in enumerate(zip(pairs, results))]

    pairs = records(original, scores[:len(original)])
    control_records = records(control, scores[len(original):])
    mean_is_next = sum(p["is_next"] for p in pairs) / len(pairs)
    mean_control = sum(p["is_next"] for p in control_records) / len(control_records)
    return {"sentences": sentences, "pairs": pairs, "control": control_records, "mean_is_next": mean_is_next,
            "mean_control": mean_control, "contrast": mean_is_next - mean_control, "notices": notices}

