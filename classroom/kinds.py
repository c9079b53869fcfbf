"""Kinds of classroom item: what the instructor asks, what learners may answer, what the model says.

Each :class:`ItemKind` bundles three plain functions:

* ``build(fields)``: the instructor's fields checked and reduced to the item's ``payload``
  (UserError on bad input; no model is run);
* ``choices(payload, model)``: the answers offered to learners, or None for a free word;
* ``model_answer(payload, model)``: the model's answer from the existing ``model_utils`` task
  function, as ``{"model", "top": [{"answer", "score"}, ...] best first, "best", ...}``; called once
  per reveal and stored with the item, so every app process shows the same reveal.

Adding a kind (the Generate tab's next-token question, once it exists) is one more entry in
:data:`KINDS`: ``ItemKind("next-token", "generate", _build_text, _free_word, _next_token_answer)``.
Model code is imported lazily, so the storage layer and its tests never load torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from classroom.schema import ANSWER_CHARS
from model_utils.errors import UserError, define
from model_utils.inputs import check_text

define({
    "classroom.kind_unknown": "Unknown question kind {kind}; expected one of {kinds}.",
    "classroom.one_mask": "A Fill-Mask question needs exactly one [MASK] (found {count}).",
    "classroom.word_missing": "The word {word} is not in the sentence; its words are: {words}.",
    "classroom.layer_range": "{model} has layers 0-{last_layer} and heads 0-{last_head}; layer {layer}, "
                             "head {head} does not exist.",
    "classroom.too_many_tokens": "The sentence is {count} tokens long; an attention question takes at most {limit}.",
    "classroom.no_labels": "{model} has no labels to choose from.",
})

TOP_K = 10  # model answers kept per item
_MASK = re.compile(r"\[mask\]|<mask>", re.IGNORECASE)
QUESTION_CHARS = 2000  # longest text in a question: learners read it on a phone


@dataclass(frozen=True)
class ItemKind:
    """One kind of question: its name, the task whose default model answers it, and its three steps."""

    name: str
    task: str  # model_utils.config task name: the default checkpoint when the instructor names none
    build: Callable[[dict], dict]
    choices: Callable[[dict, str | None], list[str] | None]
    model_answer: Callable[[dict, str | None], dict]


def normalize_answer(value: str) -> str:
    """The form answers are compared and counted in: trimmed, inner spaces collapsed, casefolded."""
    return " ".join(value.split()).casefold()


def display_answer(value: str | None, choices: list[str] | None) -> str | None:
    """A stored (normalized) answer as learners saw it: the choice it names, else the word itself."""
    if value is None or not choices:
        return value
    return next((c for c in choices if normalize_answer(c) == value), value)


def _question_text(fields: dict, key: str = "text", what: str = "text") -> str:
    return check_text(fields.get(key), what, limit=QUESTION_CHARS).strip()


def _ranked(scores: dict[str, float] | list[tuple[str, float]], model: str, **extra: Any) -> dict:
    """``{"model", "top", "best"}`` from answer -> score pairs, best first, TOP_K kept."""
    pairs = scores.items() if isinstance(scores, dict) else scores
    top = sorted(({"answer": a, "score": float(s)} for a, s in pairs), key=lambda r: -r["score"])[:TOP_K]
    return {"model": model, "top": top, "best": top[0]["answer"] if top else "", **extra}


# ---------------------------------------------------------------- Fill-Mask: "which word fills the blank?"

def _build_fill_mask(fields: dict) -> dict:
    text = _question_text(fields)
    count = len(_MASK.findall(text))
    if count != 1:
        raise UserError("classroom.one_mask", count=count)
    return {"text": text}


def _free_word(_payload: dict, _model: str | None) -> None:
    return None


def _fill_mask_answer(payload: dict, model: str | None) -> dict:
    from model_utils.fill_mask import run_fill_mask

    (result,) = run_fill_mask([payload["text"]], model, top_k=TOP_K, joint=False)
    merged: dict[str, float] = {}  # "Paris" and "paris" are one answer to a class
    for candidate in result["predictions"][0]:
        word = candidate["token_str"].strip()[:ANSWER_CHARS]
        merged[word] = merged.get(word, 0.0) + candidate["score"]
    return _ranked(merged, result["model"], notices=[str(n) for n in result["notices"]])


# ---------------------------------------------------------------- Next Sentence: "does B follow A?"

NEXT_SENTENCE_CHOICES = ["IsNext", "NotNext"]


def _build_next_sentence(fields: dict) -> dict:
    return {"first": _question_text(fields, "text", "sentence A"),
            "second": _question_text(fields, "second", "sentence B")}


def _next_sentence_answer(payload: dict, model: str | None) -> dict:
    from model_utils.manager import get_manager
    from model_utils.next_sentence import next_sentence

    result = next_sentence(payload["first"], payload["second"], model)
    name = get_manager().resolve_checkpoint(model, "next-sentence", "next-sentence")
    return _ranked({"IsNext": result["is_next"], "NotNext": result["not_next"]}, name)


# ---------------------------------------------------------------- Classify: "positive or negative?"

def _build_classify(fields: dict) -> dict:
    return {"text": _question_text(fields)}


def _classify_choices(_payload: dict, model: str | None) -> list[str]:
    from model_utils.classify import label_names, load_classifier

    loaded = load_classifier(model)
    names = label_names(loaded.model.config)
    if not names:
        raise UserError("classroom.no_labels", model=loaded.checkpoint)
    return names


def _classify_answer(payload: dict, model: str | None) -> dict:
    from model_utils.classify import classify, load_classifier

    loaded = load_classifier(model)  # cached: classify() below gets the same model
    return _ranked([(r["label"], r["score"]) for r in classify(payload["text"], loaded)], loaded.checkpoint)


# ---------------------------------------------------------------- Attention: "which word does *it* attend to?"

def _build_attention(fields: dict) -> dict:
    text = _question_text(fields)
    word = check_text(fields.get("word"), "word", limit=ANSWER_CHARS).strip()
    layer, head = _whole_number(fields.get("layer")), _whole_number(fields.get("head"))
    return {"text": text, "word": word, "layer": layer, "head": head}


def _whole_number(value: Any) -> int:
    """A layer or head number from a form or API field (None or blank = 0); -1 for anything else."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return 0
    try:
        number = float(value)
    except (TypeError, ValueError):
        return -1
    return int(number) if number.is_integer() else -1


def _load_attention_model(model: str | None) -> Any:
    from model_utils.manager import get_manager

    # The same cache entry as model_utils.attention uses (eager attention returns the weights).
    return get_manager().get(model, "base", task="attention", attn_implementation="eager")


def word_groups(tokenizer: Any, text: str) -> list[tuple[str, list[int]]]:
    """The words of ``text`` as the tokenizer splits it, each with its token positions (specials left out)."""
    encoding = tokenizer(text)
    if not getattr(tokenizer, "is_fast", False):  # no word ids: each ordinary token is a word
        special = set(tokenizer.all_special_ids)
        tokens = tokenizer.convert_ids_to_tokens(encoding["input_ids"])
        return [(tok, [i]) for i, (tok, tid) in enumerate(zip(tokens, encoding["input_ids"])) if tid not in special]
    groups: dict[int, tuple[str, list[int]]] = {}
    for position, word_id in enumerate(encoding.word_ids()):
        if word_id is not None:
            span = encoding.word_to_chars(word_id)
            groups.setdefault(word_id, (text[span.start:span.end], []))[1].append(position)
    return list(groups.values())


def _attention_setup(payload: dict, model: str | None) -> tuple[Any, list[tuple[str, list[int]]]]:
    """(loaded model, word groups) once the question is checked against the model."""
    from model_utils.config import get_settings

    loaded = _load_attention_model(model)
    config = loaded.model.config
    last_layer, last_head = config.num_hidden_layers - 1, config.num_attention_heads - 1
    if not (0 <= payload["layer"] <= last_layer and 0 <= payload["head"] <= last_head):
        raise UserError("classroom.layer_range", model=loaded.checkpoint, last_layer=last_layer,
                        last_head=last_head, layer=payload["layer"], head=payload["head"])
    with loaded.lock:
        count = len(loaded.tokenizer(payload["text"])["input_ids"])
        groups = word_groups(loaded.tokenizer, payload["text"])
    limit = get_settings().max_attention_tokens
    if count > limit:
        raise UserError("classroom.too_many_tokens", count=count, limit=limit)
    words = [w for w, _ in groups]
    if normalize_answer(payload["word"]) not in {normalize_answer(w) for w in words}:
        raise UserError("classroom.word_missing", word=payload["word"], words=", ".join(words))
    return loaded, groups


def _attention_choices(payload: dict, model: str | None) -> list[str]:
    _, groups = _attention_setup(payload, model)
    unique: dict[str, str] = {}
    for word, _ in groups:
        unique.setdefault(normalize_answer(word), word[:ANSWER_CHARS])
    return list(unique.values())


def _attention_answer(payload: dict, model: str | None) -> dict:
    """Share of the query word's attention (its first token, at the item's layer and head) per word."""
    from model_utils.attention import attention

    loaded, groups = _attention_setup(payload, model)
    result = attention(payload["text"], loaded.checkpoint)
    query_key = normalize_answer(payload["word"])
    query = next(positions[0] for word, positions in groups if normalize_answer(word) == query_key)
    row = result["attentions"][payload["layer"]][payload["head"]][query]
    shares: dict[str, float] = {}
    names: dict[str, str] = {}
    for word, positions in groups:  # a word that occurs twice is one answer: its attention adds up
        key = normalize_answer(word)
        names.setdefault(key, word[:ANSWER_CHARS])
        shares[key] = shares.get(key, 0.0) + sum(row[p] for p in positions)
    on_words = sum(shares.values()) or 1.0
    return _ranked({names[k]: v / on_words for k, v in shares.items()}, result["checkpoint"],
                   special_share=max(0.0, 1.0 - on_words))


KINDS: dict[str, ItemKind] = {kind.name: kind for kind in (
    ItemKind("fill-mask", "fill-mask", _build_fill_mask, _free_word, _fill_mask_answer),
    ItemKind("next-sentence", "next-sentence", _build_next_sentence,
             lambda _p, _m: list(NEXT_SENTENCE_CHOICES), _next_sentence_answer),
    ItemKind("classify", "text-classification", _build_classify, _classify_choices, _classify_answer),
    ItemKind("attention", "attention", _build_attention, _attention_choices, _attention_answer),
)}


def get_kind(name: str) -> ItemKind:
    """The kind called ``name``; UserError for an unknown one."""
    if name not in KINDS:
        raise UserError("classroom.kind_unknown", kind=str(name)[:40], kinds=", ".join(KINDS))
    return KINDS[name]
