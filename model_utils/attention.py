"""Attention explorer backend: attention weights, per-head statistics, rollout and the formula.

Public API:

* :func:`attention` ``(text, model=None, text_pair=None) -> dict``: tokens, segments, special-token
  flags and ``attentions[layer][head][query][key]`` of a checkpoint loaded through the model
  manager with the *eager* attention implementation (the only one that returns weights; other tabs
  keep SDPA). Inputs longer than ``settings.max_attention_tokens`` are truncated with a notice.
* :func:`attention_math` ``(text, model=None, text_pair=None, *, layer, head, query) -> dict``:
  ``softmax(q·K^T/sqrt(d_k))V`` for one query token, recomputed from the model's own Q/K/V
  projections (BERT, RoBERTa, ELECTRA, ALBERT, DistilBERT and GPT-2 layouts), causal mask included.
* Pure functions on ``[layer, head, query, key]`` arrays: :func:`head_summary` (entropy and share of
  attention to [CLS], [SEP], self, previous and next token) and :func:`attention_rollout`
  (Abnar & Zuidema, 2020).

Each task follows preprocess -> ``_forward`` (the only device code) -> postprocess; the
``*_from_model`` variants take an already loaded model and tokenizer (tests use them directly).
"""

from __future__ import annotations

import math
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from model_utils.errors import Notice, UserError, define
from model_utils.inputs import check_text, fit_pair, model_token_limit

# Attribute names of the query/key/value projections of the supported self-attention modules.
_SEPARATE_QKV = (("query", "key", "value"), ("q_lin", "k_lin", "v_lin"))
_FUSED_QKV = "c_attn"  # GPT-2: one Conv1D producing [q | k | v]

define({
    "attention.pair_needs_fast": "Sentence pairs need a fast tokenizer; this checkpoint has a slow one.",
    "attention.no_weights": "This model returned no attention weights; load it with attn_implementation='eager' "
                            "(the model manager does so for this tab).",
    "attention.math_unsupported": "The attention formula view does not support {model} yet.",
    "attention.out_of_range": "{what} must be between 0 and {last}, got {value!r}.",
    "attention.cut": "The input has {total} tokens; only the first {kept} are shown (limit {limit}).",
    "attention.cut_from": "Cut from text {segment}: “{snippet}”.",
})


# ---------------------------------------------------------------------------- loading


def _load(checkpoint: str | None) -> Any:
    """LoadedModel for ``checkpoint`` (None = the attention default) with eager attention."""
    from model_utils.manager import get_manager

    return get_manager().get(checkpoint, "base", task="attention", attn_implementation="eager")


def _max_tokens() -> int:
    from model_utils.config import get_settings

    return get_settings().max_attention_tokens


def attention(text: str, model: str | None = None, text_pair: str | None = None) -> dict:
    """Attention weights of ``model`` (checkpoint name; None = default) on ``text`` [+ ``text_pair``].

    Returns the dict of :func:`attention_from_model` (``attentions`` as nested lists), plus ``checkpoint``.
    """
    result = attention_arrays(text, model, text_pair)
    result["attentions"] = result.pop("weights").tolist()
    return result


def attention_arrays(text: str, model: str | None = None, text_pair: str | None = None) -> dict:
    """:func:`attention`, with the weights as one float32 numpy array ``weights`` ``[layer, head, query, key]``.

    One forward pass per (model, input) is kept in a small memory-bounded cache
    (``PLM_ATTENTION_CACHE_MB``), so every view of the same input, and the formula view, reuse it.
    """
    loaded = _load(model)
    with loaded.lock:
        record = _cached_record(loaded, text, text_pair)
    result = {**record.result, "weights": record.weights.numpy(), "checkpoint": loaded.checkpoint}
    result["truncation"] = dict(result["truncation"])
    return result


def attention_math(text: str, model: str | None = None, text_pair: str | None = None, *,
                   layer: int, head: int, query: int) -> dict:
    """The attention formula for one (layer, head, query token) of ``model``; see :func:`head_math`."""
    loaded = _load(model)
    with loaded.lock:
        record = _cached_record(loaded, text, text_pair)
        result = _math_from_record(loaded.model, record, layer=layer, head=head, query=query)
    result["checkpoint"] = loaded.checkpoint
    return result


# ---------------------------------------------------------------------------- one forward per input


@dataclass
class ForwardRecord:
    """One eager forward pass: the plain result (no weights), the weights and each attention call's input."""

    result: dict
    weights: torch.Tensor  # [layer, head, query, key], float32 on the CPU
    # The hidden states each attention module received, in model order (modules are looked up again when
    # needed, so a record never keeps an evicted model's layers alive).
    hidden: list[torch.Tensor]
    tokens: list[str]
    model: Any = field(repr=False)  # a weak reference to the model it came from

    def nbytes(self) -> int:
        """Memory held by the weights and the recorded hidden states."""
        hidden = sum(h.numel() * h.element_size() for h in self.hidden)
        return self.weights.numel() * self.weights.element_size() + hidden


class ForwardCache:
    """Least recently used forward passes, bounded in bytes; safe to share between threads."""

    def __init__(self) -> None:
        self._records: OrderedDict[tuple, ForwardRecord] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple, model: Any) -> ForwardRecord | None:
        """The record of ``key`` if it came from this very ``model`` object (not a reloaded one)."""
        with self._lock:
            record = self._records.get(key)
            if record is None or record.model() is not model:
                return None
            self._records.move_to_end(key)
            return record

    def put(self, key: tuple, record: ForwardRecord, budget: int) -> None:
        """Keep ``record``; drop the least recently used ones past ``budget`` bytes (0 = keep nothing)."""
        with self._lock:
            self._records[key] = record
            while self._records and sum(r.nbytes() for r in self._records.values()) > budget:
                self._records.popitem(last=False)

    def clear(self) -> None:
        """Forget every record."""
        with self._lock:
            self._records.clear()


FORWARD_CACHE = ForwardCache()


def _cached_record(loaded: Any, text: str, text_pair: str | None) -> ForwardRecord:
    """The forward pass of ``loaded`` on this input, from the cache or computed now (caller holds its lock)."""
    from model_utils.config import get_settings

    settings = get_settings()
    limit = _token_limit(loaded.model, settings.max_attention_tokens)
    key = (loaded.checkpoint, id(loaded.model), text, text_pair, limit)
    record = FORWARD_CACHE.get(key, loaded.model)
    if record is None:
        record = forward_record(loaded.model, loaded.tokenizer, text, text_pair, max_tokens=limit)
        FORWARD_CACHE.put(key, record, settings.attention_cache_bytes)
    return record


# ---------------------------------------------------------------------------- preprocess


def _token_limit(model: Any, max_tokens: int) -> int:
    """The smaller of the app's attention limit and the model's own position limit."""
    return model_token_limit(model.config, cap=max_tokens)


def preprocess(tokenizer: Any, text: str, text_pair: str | None, max_tokens: int) -> tuple[Any, dict]:
    """Tokenize (cut to ``max_tokens``, each side of a pair on its own ids) and describe what was cut.

    Returns ``(encoding, truncation)`` where truncation has ``truncated``, ``total_tokens``,
    ``kept_tokens``, ``max_tokens`` and ``dropped`` (segment index -> dropped text).
    """
    text = check_text(text, "text").strip()
    text_pair = check_text(text_pair, "second text", required=False)
    text_pair = text_pair.strip() if text_pair is not None else None
    if text_pair is not None and not getattr(tokenizer, "is_fast", False):
        raise UserError("attention.pair_needs_fast")
    fitted = fit_pair(tokenizer, text, text_pair, max_tokens)
    enc = tokenizer(fitted.first, fitted.second, truncation=True, max_length=max_tokens,
                    return_special_tokens_mask=True, return_tensors="pt")
    kept = enc["input_ids"].shape[1]
    dropped = {side: cut.strip() for side, cut in fitted.dropped.items() if cut.strip()}
    truncation = {"truncated": fitted.total_tokens > kept, "total_tokens": fitted.total_tokens,
                  "kept_tokens": kept, "max_tokens": max_tokens, "dropped": dropped}
    return enc, truncation


def truncation_notices(truncation: dict) -> list[Notice]:
    """What was cut, one notice per sentence ([] when nothing was)."""
    if not truncation.get("truncated"):
        return []
    notices = [Notice("attention.cut", total=truncation["total_tokens"], kept=truncation["kept_tokens"],
                      limit=truncation["max_tokens"])]
    for segment, text in sorted(truncation["dropped"].items(), key=lambda kv: int(kv[0])):
        snippet = text if len(text) <= 200 else text[:200] + "…"
        notices.append(Notice("attention.cut_from", segment="AB"[int(segment)], snippet=snippet))
    return notices


def truncation_message(truncation: dict) -> str:
    """A sentence telling the user what was cut, or "" when nothing was."""
    return " ".join(truncation_notices(truncation))


# ---------------------------------------------------------------------------- forward


def _model_inputs(enc: Any, device: torch.device) -> dict[str, torch.Tensor]:
    keys = ("input_ids", "attention_mask", "token_type_ids")
    return {k: enc[k].to(device) for k in keys if k in enc}


def _device(model: Any) -> torch.device:
    return next(model.parameters()).device


def _forward(model: Any, enc: Any) -> torch.Tensor:
    """Attention weights ``[layer, head, query, key]`` as float32 on the CPU."""
    with torch.inference_mode():
        out = model(**_model_inputs(enc, _device(model)), output_attentions=True)
    attentions = [a for a in (out.attentions or ()) if a is not None]
    if not attentions:
        raise UserError("attention.no_weights")
    return torch.stack([a[0].detach().float().cpu() for a in attentions])


# ---------------------------------------------------------------------------- postprocess


def _positions(ids: list[int], token_id: int | None) -> list[int]:
    return [] if token_id is None else [i for i, t in enumerate(ids) if t == token_id]


def _segments(enc: Any) -> tuple[list[int], int | None]:
    """Segment id (0 = text A, 1 = text B) of every token and the index where B starts."""
    seq_ids = enc.sequence_ids(0) if enc.is_fast else None
    b_start = None
    if seq_ids is not None:
        b_start = next((i for i, s in enumerate(seq_ids) if s == 1), None)
    if "token_type_ids" in enc:
        return [int(t) for t in enc["token_type_ids"][0].tolist()], b_start
    n = enc["input_ids"].shape[1]
    return [0 if b_start is None or i < b_start else 1 for i in range(n)], b_start


def forward_record(model: Any, tokenizer: Any, text: str, text_pair: str | None = None, *,
                   max_tokens: int = 128) -> ForwardRecord:
    """Run an already loaded (eager) ``model`` once on ``text`` [+ ``text_pair``], recording what every view needs."""
    enc, truncation = preprocess(tokenizer, text, text_pair, _token_limit(model, max_tokens))
    calls, weights = _capture_attention_inputs(model, enc)
    ids = enc["input_ids"][0].tolist()
    segment_ids, b_start = _segments(enc)
    tokens = tokenizer.convert_ids_to_tokens(ids)
    result = {
        "model_type": getattr(model.config, "model_type", ""),
        "tokens": tokens,
        "token_ids": ids,
        "segment_ids": segment_ids,
        "sentence_b_start": b_start,
        "special_tokens": [bool(s) for s in enc["special_tokens_mask"][0].tolist()],
        "cls_positions": _positions(ids, getattr(tokenizer, "cls_token_id", None)),
        "sep_positions": _positions(ids, getattr(tokenizer, "sep_token_id", None)),
        "causal": any(getattr(m, "is_causal", False) for m in _attention_modules(model)),
        "num_layers": int(weights.shape[0]),
        "num_heads": int(weights.shape[1]),
        "truncation": truncation,
        "notice": truncation_message(truncation),
        "notices": truncation_notices(truncation),
    }
    return ForwardRecord(result, weights, [hidden for _, hidden in calls], tokens, weakref.ref(model))


def attention_from_model(model: Any, tokenizer: Any, text: str, text_pair: str | None = None, *,
                         max_tokens: int = 128) -> dict:
    """Attention of an already loaded (eager) ``model`` on ``text`` [+ ``text_pair``].

    Returns plain data: ``tokens``, ``token_ids``, ``segment_ids``, ``sentence_b_start``,
    ``special_tokens`` (bool per token), ``cls_positions``, ``sep_positions``, ``model_type``,
    ``causal``, ``num_layers``, ``num_heads``, ``attentions`` ([layer][head][query][key]),
    ``truncation`` (see :func:`preprocess`) and ``notice`` (what was cut, or "").
    """
    record = forward_record(model, tokenizer, text, text_pair, max_tokens=max_tokens)
    return {**record.result, "attentions": record.weights.tolist()}


# ---------------------------------------------------------------------------- statistics


def _as_array(attentions: Any) -> np.ndarray:
    array = np.asarray(attentions, dtype=np.float64)
    if array.ndim != 4 or array.shape[2] != array.shape[3]:
        raise ValueError(f"Expected attentions [layer][head][query][key], got shape {array.shape}.")
    return array


def head_summary(attentions: Any, cls_positions: list[int] = (), sep_positions: list[int] = ()) -> list[dict]:
    """Per-head statistics, averaged over query tokens, one record per (layer, head).

    Keys: ``layer``, ``head``, ``entropy`` (bits), ``cls``, ``sep`` (share of attention going to
    those positions; None when the model has no such token), ``self``, ``previous``, ``next``.
    """
    a = _as_array(attentions)
    n = a.shape[-1]
    entropy = -(a * np.log2(np.clip(a, 1e-12, None))).sum(-1).mean(-1)
    diagonal = np.diagonal(a, 0, -2, -1).mean(-1)
    previous = np.diagonal(a, -1, -2, -1).mean(-1) if n > 1 else np.zeros(a.shape[:2])
    following = np.diagonal(a, 1, -2, -1).mean(-1) if n > 1 else np.zeros(a.shape[:2])

    def share(positions: list[int]) -> np.ndarray | None:
        return a[..., list(positions)].sum(-1).mean(-1) if len(positions) else None

    cls, sep = share(cls_positions), share(sep_positions)
    return [
        {"layer": layer, "head": head, "entropy": float(entropy[layer, head]),
         "cls": None if cls is None else float(cls[layer, head]),
         "sep": None if sep is None else float(sep[layer, head]),
         "self": float(diagonal[layer, head]), "previous": float(previous[layer, head]),
         "next": float(following[layer, head])}
        for layer in range(a.shape[0]) for head in range(a.shape[1])
    ]


def attention_rollout(attentions: Any, residual: float = 0.5) -> list[list[list[float]]]:
    """Attention rollout (Abnar & Zuidema, 2020): ``[layer][query][key]``, cumulative up to each layer.

    Each layer's head-averaged attention is mixed with the identity (``residual`` stands for the
    skip connection), rows renormalised, and the layers multiplied: R_l = Ã_l · R_{l-1}.
    """
    a = _as_array(attentions).mean(axis=1)
    identity = np.eye(a.shape[-1])
    rollout, current = [], identity
    for layer_attention in a:
        mixed = (1.0 - residual) * layer_attention + residual * identity
        mixed /= mixed.sum(axis=-1, keepdims=True)
        current = mixed @ current
        rollout.append(current.tolist())
    return rollout


# ---------------------------------------------------------------------------- the formula


def _attention_modules(model: Any) -> list[torch.nn.Module]:
    """Self-attention modules whose Q/K/V projections we know how to read, in model order."""
    found = []
    for module in model.modules():
        has_separate = any(all(hasattr(module, n) for n in names) for names in _SEPARATE_QKV)
        is_cross = getattr(module, "is_cross_attention", False)
        if (has_separate or hasattr(module, _FUSED_QKV)) and not is_cross:
            found.append(module)
    return found


def _project_qkv(module: torch.nn.Module, hidden: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(Q, K, V) of ``hidden`` ``[tokens, hidden]`` through the module's own projections."""
    if hasattr(module, _FUSED_QKV):
        width = getattr(module, "split_size", hidden.shape[-1])
        return tuple(module.c_attn(hidden).split(width, dim=-1))
    for names in _SEPARATE_QKV:
        if all(hasattr(module, n) for n in names):
            return tuple(getattr(module, n)(hidden) for n in names)
    raise ValueError(f"Unsupported attention module {type(module).__name__}.")


def _head_dim(module: torch.nn.Module, width: int) -> int:
    for name in ("attention_head_size", "head_dim"):
        if isinstance(getattr(module, name, None), int):
            return getattr(module, name)
    heads = getattr(module, "num_attention_heads", None) or getattr(module, "num_heads", None) or getattr(module, "n_heads")
    return width // heads


def head_math(module: torch.nn.Module, hidden: torch.Tensor, head: int, query: int) -> dict:
    """``softmax(q·K^T · scale + mask) V`` for one head and query of ``module``'s input ``hidden``.

    ``hidden`` is the tensor ``[tokens, hidden]`` the module received. Returns lists: ``scores``
    (q·k), ``scaled`` (scores × scale), ``masked`` (bool per key), ``weights`` (softmax),
    ``output`` (weighted sum of values) and the ``query_vector``, ``key_vectors``,
    ``value_vectors`` of that head, plus ``head_dim``, ``scale`` and ``causal``.
    """
    q_all, k_all, v_all = (t.detach().float() for t in _project_qkv(module, hidden))
    d = _head_dim(module, q_all.shape[-1])
    cols = slice(head * d, (head + 1) * d)
    q, keys, values = q_all[query, cols], k_all[:, cols], v_all[:, cols]
    scale = float(getattr(module, "scaling", d ** -0.5))
    causal = bool(getattr(module, "is_causal", False))
    scores = keys @ q
    scaled = scores * scale
    masked = torch.arange(keys.shape[0], device=keys.device) > query if causal else torch.zeros_like(scaled, dtype=torch.bool)
    weights = torch.softmax(scaled.masked_fill(masked, float("-inf")), dim=-1)
    return {
        "head_dim": d, "scale": scale, "sqrt_dk": math.sqrt(d), "causal": causal,
        "scores": scores.tolist(), "scaled": scaled.tolist(), "masked": masked.tolist(),
        "weights": weights.tolist(), "output": (weights @ values).tolist(),
        "query_vector": q.tolist(), "key_vectors": keys.tolist(), "value_vectors": values.tolist(),
    }


def _capture_attention_inputs(model: Any, enc: Any) -> tuple[list[tuple[torch.nn.Module, torch.Tensor]], torch.Tensor]:
    """Run the model once, recording (module, input hidden states) of every attention call."""
    calls: list[tuple[torch.nn.Module, torch.Tensor]] = []

    def record(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        hidden = args[0] if args else kwargs.get("hidden_states")
        calls.append((module, hidden[0].detach()))

    hooks = [m.register_forward_pre_hook(record, with_kwargs=True) for m in _attention_modules(model)]
    try:
        weights = _forward(model, enc)
    finally:
        for hook in hooks:
            hook.remove()
    return calls, weights


def attention_math_from_model(model: Any, tokenizer: Any, text: str, text_pair: str | None = None, *,
                              layer: int, head: int, query: int, max_tokens: int = 128) -> dict:
    """:func:`head_math` for (``layer``, ``head``, ``query``) of an already loaded eager model.

    Adds ``tokens``, ``layer``, ``head``, ``query``, ``query_token``, ``model_weights`` (the row the
    model itself returned) and ``max_abs_diff`` between the two.
    """
    record = forward_record(model, tokenizer, text, text_pair, max_tokens=max_tokens)
    return _math_from_record(model, record, layer=layer, head=head, query=query)


def _math_from_record(model: Any, record: ForwardRecord, *, layer: int, head: int, query: int) -> dict:
    """:func:`head_math` on the hidden states recorded by one forward pass."""
    weights, tokens = record.weights, record.tokens
    modules = _attention_modules(model)
    n_layers, n_heads, n_tokens = weights.shape[0], weights.shape[1], weights.shape[2]
    if len(record.hidden) != n_layers or len(modules) != n_layers:
        raise UserError("attention.math_unsupported", model=type(model).__name__)
    for name, value, limit in (("layer", layer, n_layers), ("head", head, n_heads), ("query", query, n_tokens)):
        if not isinstance(value, int) or not 0 <= value < limit:
            raise UserError("attention.out_of_range", what=name, last=limit - 1, value=value)
    with torch.inference_mode():
        result = head_math(modules[layer], record.hidden[layer], head, query)
    model_row = weights[layer, head, query]
    result.update({
        "tokens": list(tokens), "layer": layer, "head": head, "query": query, "query_token": tokens[query],
        "model_weights": model_row.tolist(),
        "max_abs_diff": float((torch.tensor(result["weights"]) - model_row).abs().max()),
        "notice": record.result["notice"],
        "notices": list(record.result["notices"]),
    })
    return result
