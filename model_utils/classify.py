"""Text classification with any sequence-classification checkpoint.

``classify(text, model=None, text_pair=None)`` returns ``[{"label", "score"}, ...]`` best
first, like ``transformers.pipeline("text-classification", top_k=None)``: softmax for
single-label models, sigmoid for multi-label ones (``config.problem_type``) and for a single
output, raw values for regression; label names come from the checkpoint's ``id2label``.

The work is split as in the transformers pipelines: :func:`preprocess` (validate, tokenize)
-> :func:`_forward` (the only code that touches the device) -> :func:`postprocess` (plain
records). :mod:`model_utils.batch` and :mod:`model_utils.explain` reuse these pieces.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from model_utils.errors import UserError, define
from model_utils.inputs import check_text as check_input, fit_pair, model_token_limit

define({
    "classify.not_classifier": "{name} is not a text classifier (its architecture is {architecture}). Choose a "
                               "sequence-classification checkpoint, or fine-tune one in the Fine-tune tab.",
})

HEAD = "sequence-classification"
TASK = "text-classification"


def load_classifier(model: Any = None, full_precision: bool = False) -> Any:
    """Return a loaded classifier (``LoadedModel``) for a checkpoint name, or None for the default.

    An object that already has ``model``, ``tokenizer``, ``device`` and ``lock`` attributes
    (a ``LoadedModel``) is passed through, so callers can load once and call many times.
    Raises ValueError when the checkpoint is not a text classifier. ``full_precision``: the float32 model
    even under ``PLM_QUANTIZE`` (gradients need it).
    """
    if model is None or not hasattr(model, "model") or (full_precision and getattr(model, "quantized", False)):  # a name; the manager refuses anything else clearly
        from model_utils.manager import get_manager

        name = getattr(model, "checkpoint", model)
        loaded = get_manager().get(name, HEAD, task=TASK, full_precision=full_precision)
    else:
        loaded = model
    ensure_classifier(loaded.model.config, getattr(loaded, "checkpoint", None))
    return loaded


def ensure_classifier(config: Any, checkpoint: str | None = None) -> None:
    """Raise ValueError unless ``config`` describes a trained sequence-classification model.

    A checkpoint saved with another head (e.g. ``BertForPreTraining``) would load with a
    randomly initialised classifier, whose answers would look real but mean nothing.
    """
    architectures = getattr(config, "architectures", None) or []
    if architectures and not any(a.endswith("ForSequenceClassification") for a in architectures):
        name = checkpoint or getattr(config, "name_or_path", "") or "this checkpoint"
        raise UserError("classify.not_classifier", name=name, architecture=architectures[0])


def max_length(tokenizer: Any, config: Any) -> int:
    """Longest input in tokens: the smallest of the settings, the model and the tokenizer limits."""
    from model_utils.config import get_settings

    return model_token_limit(config, tokenizer, get_settings().max_seq_len)


def check_text(text: Any, what: str = "text") -> str:
    """Return ``text`` if it is a non-blank string within the character limit, else raise a UserError."""
    return check_input(text, what)


def preprocess(
    tokenizer: Any, config: Any, text: str, text_pair: str | None = None, **tokenizer_kwargs: Any
) -> Any:
    """Validate and tokenize one text (or pair) into a batch of one, cut to the length limit.

    A pair is cut side by side on token ids first (:func:`model_utils.inputs.fit_pair`); the
    encoding's ``truncated`` attribute says whether anything was cut.
    """
    text = check_text(text)
    text_pair = check_input(text_pair, "second text", required=False)  # an empty second box means "no pair"
    limit = max_length(tokenizer, config)
    fitted = fit_pair(tokenizer, text, text_pair, limit)
    encoding = tokenizer(
        fitted.first,
        text_pair=fitted.second,
        truncation=True,
        max_length=limit,
        return_tensors="pt",
        **tokenizer_kwargs,
    )
    encoding.truncated = fitted.truncated or any(len(e.overflowing) for e in (encoding.encodings or []))
    return encoding


def was_truncated(encoding: Any) -> bool:
    """True if :func:`preprocess` cut tokens off ``encoding`` at the length limit."""
    return bool(getattr(encoding, "truncated", False))


def model_inputs(encoding: Any, model: Any, device: torch.device) -> dict[str, torch.Tensor]:
    """Tensors of ``encoding`` that ``model.forward`` accepts, moved to ``device``."""
    accepted = inspect.signature(model.forward).parameters
    return {k: v.to(device) for k, v in encoding.items() if k in accepted and torch.is_tensor(v)}


def _forward(model: Any, encoding: Any, device: torch.device) -> torch.Tensor:
    """Run the model without gradients; return float32 logits on the CPU, shape (batch, labels)."""
    with torch.inference_mode():
        logits = model(**model_inputs(encoding, model, device)).logits
    return logits.detach().float().cpu()


def score_function(config: Any) -> str:
    """'softmax', 'sigmoid' or 'none', chosen from the config exactly as the pipeline does."""
    problem_type = getattr(config, "problem_type", None)
    if problem_type == "regression":
        return "none"
    if problem_type == "multi_label_classification" or config.num_labels == 1:
        return "sigmoid"
    return "softmax"


def scores_from_logits(logits: torch.Tensor, config: Any) -> torch.Tensor:
    """Turn logits of shape (batch, labels) into scores with the config's score function."""
    function = score_function(config)
    if function == "sigmoid":
        return torch.sigmoid(logits)
    if function == "softmax":
        return torch.softmax(logits, dim=-1)
    return logits


def label_names(config: Any) -> list[str]:
    """Label names in id order, from ``config.id2label`` (``LABEL_<i>`` where one is missing)."""
    id2label = getattr(config, "id2label", None) or {}
    return [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(config.num_labels)]


def postprocess(scores: torch.Tensor, config: Any) -> list[dict]:
    """One row of scores -> ``[{"label", "score"}]`` sorted best first."""
    names = label_names(config)
    records = [{"label": names[i], "score": float(s)} for i, s in enumerate(scores.tolist())]
    return sorted(records, key=lambda r: r["score"], reverse=True)


def classify(text: str, model: Any = None, text_pair: str | None = None) -> list[dict]:
    """Classify ``text`` (optionally with ``text_pair``) with a checkpoint name or loaded model.

    Returns every label as ``{"label": str, "score": float}``, best first. Raises ValueError
    for an empty text or a checkpoint that is not a classifier.
    """
    check_text(text)
    loaded = load_classifier(model)
    with loaded.lock:
        encoding = preprocess(loaded.tokenizer, loaded.model.config, text, text_pair)
        logits = _forward(loaded.model, encoding, loaded.device)
    return postprocess(scores_from_logits(logits, loaded.model.config)[0], loaded.model.config)
