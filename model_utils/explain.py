"""Why did the classifier decide? Token attributions over the input words.

Two methods, both computed by Captum on the output of the word-embedding layer, for the
score (probability, or raw value for regression) of one chosen label:

- ``integrated-gradients``: Integrated Gradients from a baseline in which every non-special
  token is replaced by padding. Completeness is checked: the attributions must sum to
  f(x) - f(baseline) within :data:`IG_TOLERANCE` × max(1, |f(x) - f(baseline)|); when they do not,
  the number of steps is doubled (up to :data:`IG_MAX_STEPS`) and the final error is reported.
- ``gradient-x-input``: the gradient of the score times the embedding, summed over the hidden size.

Per-token attributions are summed over the WordPieces of each word, using the fast tokenizer's
word ids and character offsets, so the result maps back onto the user's text.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from model_utils.errors import UserError, define

from model_utils.classify import (
    check_text,
    label_names,
    load_classifier,
    model_inputs,
    was_truncated,
    preprocess,
    scores_from_logits,
)

METHODS = ("integrated-gradients", "gradient-x-input")

define({
    "explain.unknown_method": "Unknown explanation method {method!r}; choose one of {methods}.",
    "explain.unknown_label": "Unknown label {label!r}; this model's labels are: {labels}.",
    "explain.slow_tokenizer": "Explanations need a fast tokenizer (character offsets); this one has none.",
})
IG_STEPS = 50  # Gauss-Legendre steps of the first Integrated Gradients try
IG_MAX_STEPS = 400  # the steps are doubled up to this while completeness fails
IG_TOLERANCE = 0.01  # allowed |sum(attributions) - (f(x) - f(baseline))|, relative above 1
IG_INTERNAL_BATCH = 32  # interpolation steps evaluated per forward pass (bounds memory)


def explain(
    text: str,
    label: str | None = None,
    model: Any = None,
    text_pair: str | None = None,
    method: str = "integrated-gradients",
    n_steps: int = IG_STEPS,
) -> dict:
    """Attribute the score of ``label`` (default: the top label) to the words of the input.

    Returns plain data: ``{"label", "score", "method", "text", "text_pair", "truncated",
    "words": [{"word", "start", "end", "segment", "score"}], "baseline_score", "delta",
    "tolerance", "n_steps", "converged"}``; the last five are None for gradient × input. ``start``/``end`` index into
    ``text`` (segment 0) or ``text_pair`` (segment 1). Raises ValueError on bad input.
    """
    if method not in METHODS:
        raise UserError("explain.unknown_method", method=method, methods=", ".join(METHODS))
    check_text(text)
    loaded = load_classifier(model, full_precision=True)  # gradients: never the int8 model
    with loaded.lock:
        config = loaded.model.config
        encoding = preprocess(loaded.tokenizer, config, text, text_pair, return_offsets_mapping=True)
        inputs = model_inputs(encoding, loaded.model, loaded.device)
        target = _label_id(label, config, loaded.model, inputs)
        forward = _score_function(loaded.model, target)
        if method == "integrated-gradients":
            baseline = _baseline_ids(loaded.tokenizer, encoding, inputs["input_ids"])
            result = _integrated_gradients(loaded.model, forward, inputs, baseline, n_steps)
        else:
            result = _gradient_x_input(loaded.model, forward, inputs)
    pair = text_pair if text_pair and str(text_pair).strip() else None
    words = merge_words(encoding, result.pop("token_scores"), text, pair)
    return {"label": label_names(config)[target], "method": method, "text": text, "text_pair": pair,
            "words": words, "truncated": was_truncated(encoding), **result}


def _label_id(label: str | None, config: Any, model: Any, inputs: dict) -> int:
    """Index of ``label`` in the config, or of the top-scoring label when ``label`` is None."""
    names = label_names(config)
    if label is None or label == "":
        with torch.inference_mode():
            return int(model(**inputs).logits[0].float().argmax())
    if label not in names:
        raise UserError("explain.unknown_label", label=label, labels=", ".join(names))
    return names.index(label)


def _score_function(model: Any, target: int) -> Callable[..., torch.Tensor]:
    """f(input_ids, *extras) -> score of label ``target`` per batch row, as Captum expects."""

    def forward(input_ids: torch.Tensor, attention_mask: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        kwargs = {"token_type_ids": extra[0]} if extra else {}
        logits = model(input_ids=input_ids, attention_mask=attention_mask, **kwargs).logits.float()
        return scores_from_logits(logits, model.config)[:, target]

    return forward


def _extra_args(inputs: dict) -> tuple:
    """The forward arguments besides ``input_ids``, in the order :func:`_score_function` takes them."""
    extras = (inputs["attention_mask"],)
    return extras + ((inputs["token_type_ids"],) if "token_type_ids" in inputs else ())


def _baseline_ids(tokenizer: Any, encoding: Any, input_ids: torch.Tensor) -> torch.Tensor:
    """``input_ids`` with every token of the texts replaced by padding; [CLS]/[SEP] are kept.

    Tokens the template added have no sequence id; [UNK] stands for a real word, so it counts.
    """
    filler = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.unk_token_id
    added = [segment is None for segment in encoding.sequence_ids(0)]
    keep = torch.tensor(added, dtype=torch.bool, device=input_ids.device).unsqueeze(0)
    return torch.where(keep, input_ids, torch.full_like(input_ids, filler))


def _integrated_gradients(
    model: Any, forward: Callable, inputs: dict, baseline: torch.Tensor, n_steps: int
) -> dict:
    """Layer Integrated Gradients on the word embeddings, with the completeness check."""
    from captum.attr import LayerIntegratedGradients

    ig = LayerIntegratedGradients(forward, model.get_input_embeddings())
    extras = _extra_args(inputs)
    with torch.inference_mode():
        f_x = float(forward(inputs["input_ids"], *extras)[0])
        f_b = float(forward(baseline, *extras)[0])
    with torch.enable_grad():
        tolerance = IG_TOLERANCE * max(1.0, abs(f_x - f_b))
        steps = max(2, int(n_steps))
        while True:
            attributions, delta = ig.attribute(
                inputs["input_ids"], baselines=baseline, additional_forward_args=extras,
                n_steps=steps, internal_batch_size=IG_INTERNAL_BATCH, return_convergence_delta=True,
            )
            delta = float(delta.abs().max())
            if delta <= tolerance or steps * 2 > IG_MAX_STEPS:
                break
            steps *= 2
    return {"score": f_x, "token_scores": attributions[0].sum(-1).detach().float().cpu().tolist(),
            "baseline_score": f_b, "delta": delta, "tolerance": tolerance, "n_steps": steps,
            "converged": delta <= tolerance}


def _gradient_x_input(model: Any, forward: Callable, inputs: dict) -> dict:
    """Gradient of the label score times the word embedding, summed over the hidden size."""
    from captum.attr import LayerGradientXActivation

    gxi = LayerGradientXActivation(forward, model.get_input_embeddings())
    extras = _extra_args(inputs)
    with torch.inference_mode():
        score = float(forward(inputs["input_ids"], *extras)[0])
    with torch.enable_grad():
        attributions = gxi.attribute(inputs["input_ids"], additional_forward_args=extras)
    return {"score": score, "token_scores": attributions[0].sum(-1).detach().float().cpu().tolist(),
            "baseline_score": None, "delta": None, "tolerance": None, "n_steps": None, "converged": None}


def merge_words(encoding: Any, token_scores: list[float], text: str, text_pair: str | None) -> list[dict]:
    """Sum token scores over the WordPieces of each word; special tokens are left out.

    Returns ``[{"word", "start", "end", "segment", "score"}]`` in input order, where the word is
    the user's own spelling (``source[start:end]``), not the lower-cased WordPieces.
    """
    if not getattr(encoding, "is_fast", True):
        raise UserError("explain.slow_tokenizer")
    offsets = encoding["offset_mapping"][0].tolist()
    words: list[dict] = []
    for i, (segment, word_id) in enumerate(zip(encoding.sequence_ids(0), encoding.word_ids(0))):
        if segment is None or word_id is None:
            continue
        start, end = offsets[i]
        last = words[-1] if words else None
        if last and last["segment"] == segment and last["word_id"] == word_id:
            last["end"], last["score"] = max(last["end"], end), last["score"] + token_scores[i]
        else:
            words.append({"word_id": word_id, "segment": segment, "start": start, "end": end,
                          "score": token_scores[i]})
    sources = (text, text_pair or "")
    return [{"word": sources[w["segment"]][w["start"]:w["end"]], "start": w["start"], "end": w["end"],
             "segment": w["segment"], "score": float(w["score"])} for w in words]
