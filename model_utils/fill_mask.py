"""Fill-Mask: predict the words hidden behind mask tokens.

Users write ``[MASK]`` (or ``<mask>``) whatever the model's own mask token is. The work is
split like a transformers pipeline: :func:`preprocess` (normalise masks, tokenize, validate,
truncate around the masks with a notice) -> :func:`_forward` (the only device code) ->
:func:`postprocess` (plain records ``{"token_str", "score", "sequence", "token"}``).

Public API: :func:`fill_mask` (per-mask top-k, equal to ``pipeline("fill-mask")`` for a
single mask), :func:`fill_masks_jointly` (best joint filling, most confident mask first)
and :func:`run_fill_mask` (everything the UI shows, for a batch of texts).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import torch

from model_utils.config import get_settings
from model_utils.inputs import check_text
from model_utils.manager import LoadedModel, get_manager, gpu_task

MASK_PATTERN = re.compile(r"\[mask\]|<mask>", re.IGNORECASE)
MAX_TOP_K = 50


@dataclass
class Prepared:
    """One tokenized input: token ids (with special tokens) and where its masks are."""

    input_ids: list[int]
    mask_positions: list[int]
    notices: list[str] = field(default_factory=list)


def normalize_masks(text: str, mask_token: str) -> str:
    """Replace every ``[MASK]``/``<mask>`` spelling (any case) by the model's own mask token."""
    return MASK_PATTERN.sub(lambda _: mask_token, text)


def max_input_tokens(tokenizer: Any) -> int:
    """Longest input (in tokens, specials included) for this tokenizer under the settings."""
    model_max = getattr(tokenizer, "model_max_length", 512)
    return min(get_settings().max_seq_len, model_max if model_max < 100_000 else 512)


def _split_specials(tokenizer: Any, ids: list[int]) -> tuple[list[int], list[int], list[int]]:
    """Split ids into (leading specials such as [CLS], content, trailing specials such as [SEP])."""
    lead_ids = {tokenizer.cls_token_id, tokenizer.bos_token_id} - {None}
    tail_ids = {tokenizer.sep_token_id, tokenizer.eos_token_id} - {None}
    start = 0
    while start < len(ids) and ids[start] in lead_ids:
        start += 1
    end = len(ids)
    while end > start and ids[end - 1] in tail_ids:
        end -= 1
    return ids[:start], ids[start:end], ids[end:]


def _window_around_masks(tokenizer: Any, ids: list[int], limit: int) -> tuple[list[int], str]:
    """Cut ``ids`` to ``limit`` tokens keeping every mask; returns (ids, notice)."""
    lead, content, tail = _split_specials(tokenizer, ids)
    budget = limit - len(lead) - len(tail)
    masks = [i for i, t in enumerate(content) if t == tokenizer.mask_token_id]
    if masks[-1] - masks[0] + 1 > budget:
        raise ValueError(f"The masks are {masks[-1] - masks[0] + 1} tokens apart, but the model reads "
                         f"at most {limit} tokens at once; put them closer together.")
    center = (masks[0] + masks[-1]) // 2
    start = min(max(0, center - budget // 2), len(content) - budget)
    notice = (f"The text is {len(ids)} tokens long and the model reads at most {limit}: only "
              f"tokens {start + 1}-{start + budget} (around the masks) were used.")
    return lead + content[start:start + budget] + tail, notice


def preprocess(text: str, tokenizer: Any, *, max_masks: int | None = None) -> Prepared:
    """Tokenize ``text`` for Fill-Mask; ValueError for empty text, no mask or too many masks."""
    if tokenizer.mask_token is None:
        raise ValueError("This model's tokenizer has no mask token, so it cannot fill masks.")
    if text is None or (isinstance(text, str) and not text.strip()):
        raise ValueError("Please enter a text containing [MASK].")
    check_text(text, "text")  # a string within the character limit, before anything is counted
    max_masks = max_masks or get_settings().max_masks
    count = len(MASK_PATTERN.findall(text))
    if count == 0:
        own = f" (or {tokenizer.mask_token})" if tokenizer.mask_token != "[MASK]" else ""
        raise ValueError(f"No mask found: write [MASK]{own} where a word is missing.")
    if count > max_masks:
        raise ValueError(f"Too many masks ({count}); at most {max_masks} are allowed.")
    ids = tokenizer(normalize_masks(text, tokenizer.mask_token))["input_ids"]
    notices = []
    limit = max_input_tokens(tokenizer)
    if len(ids) > limit:
        ids, notice = _window_around_masks(tokenizer, ids, limit)
        notices.append(notice)
    positions = [i for i, t in enumerate(ids) if t == tokenizer.mask_token_id]
    return Prepared(ids, positions, notices)


@contextlib.contextmanager
def _head_only_at(model: Any, rows: torch.Tensor, columns: torch.Tensor) -> Iterator[bool]:
    """While active, the encoder hands the MLM head only the hidden states at (rows, columns).

    The vocabulary projection is the costliest layer of a small masked LM (30k x hidden per
    token), and Fill-Mask needs it at the masks only; the head is position-wise, so its output
    there is unchanged. Yields False (and changes nothing) for a model without a separate encoder.
    """
    encoder = getattr(model, "base_model", model)
    if encoder is model:
        yield False
        return

    def gather(_module: Any, _inputs: Any, output: Any) -> Any:
        picked = output[0][rows, columns].unsqueeze(0)  # (1, number of masks, hidden)
        if isinstance(output, tuple):
            return (picked, *output[1:])
        output.last_hidden_state = picked
        return output

    handle = encoder.register_forward_hook(gather)
    try:
        yield True
    finally:
        handle.remove()


def _forward(loaded: LoadedModel, batch: Sequence[Prepared]) -> list[torch.Tensor]:
    """Run the model on a padded batch; returns per input the probabilities at its masks (CPU fp32)."""
    pad_id = loaded.tokenizer.pad_token_id or 0
    width = max(len(p.input_ids) for p in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for row, prepared in enumerate(batch):
        ids[row, :len(prepared.input_ids)] = torch.tensor(prepared.input_ids)
        attention[row, :len(prepared.input_ids)] = 1
    rows = torch.tensor([r for r, p in enumerate(batch) for _ in p.mask_positions], device=loaded.device)
    columns = torch.tensor([c for p in batch for c in p.mask_positions], device=loaded.device)
    with torch.inference_mode(), _head_only_at(loaded.model, rows, columns) as sparse:
        logits = loaded.model(input_ids=ids.to(loaded.device),
                              attention_mask=attention.to(loaded.device)).logits
    picked = logits[0] if sparse else logits[rows, columns]  # (number of masks, vocabulary)
    probs = picked.float().softmax(-1).cpu()
    return list(probs.split([len(p.mask_positions) for p in batch]))


def target_ids(tokenizer: Any, targets: Sequence[str]) -> tuple[list[int], list[str]]:
    """Token ids of candidate words (pipeline rules: vocab entry, else first sub-token) + notices."""
    vocab = tokenizer.get_vocab()
    ids: list[int] = []
    notices: list[str] = []
    for target in targets:
        token_id = vocab.get(target)
        if token_id is None:
            pieces = tokenizer(target, add_special_tokens=False)["input_ids"]
            if not pieces:
                notices.append(f"Candidate {target!r} is not in the vocabulary; ignored.")
                continue
            token_id = pieces[0]
            notices.append(f"Candidate {target!r} is not one token; scored as "
                           f"{tokenizer.convert_ids_to_tokens(token_id)!r}.")
        if token_id not in ids:
            ids.append(token_id)
    if not ids:
        raise ValueError("None of the candidate words can be scored by this model.")
    return ids, notices


def _decode_filled(tokenizer: Any, ids: list[int], single_mask: bool) -> str:
    """Readable text of ids: drop [CLS]/[SEP]/padding, keep other masks visible when several."""
    if single_mask:
        return tokenizer.decode([t for t in ids if t != tokenizer.pad_token_id], skip_special_tokens=True)
    drop = set(tokenizer.all_special_ids) - {tokenizer.mask_token_id, tokenizer.unk_token_id}
    return tokenizer.decode([t for t in ids if t not in drop])


def postprocess(prepared: Prepared, probs: torch.Tensor, tokenizer: Any, top_k: int,
                targets: list[int] | None = None) -> list[list[dict]]:
    """Top-k records per mask, best first: ``{"token_str", "score", "sequence", "token"}``."""
    if targets is not None:
        probs = probs[:, targets]
    values, indices = probs.topk(min(top_k, probs.shape[-1]))
    single = len(prepared.mask_positions) == 1
    results = []
    for mask_no, position in enumerate(prepared.mask_positions):
        row = []
        for score, index in zip(values[mask_no].tolist(), indices[mask_no].tolist()):
            token = targets[index] if targets is not None else index
            ids = list(prepared.input_ids)
            ids[position] = token
            row.append({"token_str": tokenizer.decode([token]), "score": score, "token": token,
                        "sequence": _decode_filled(tokenizer, ids, single)})
        results.append(row)
    return results


def _joint(loaded: LoadedModel, batch: list[Prepared]) -> list[dict]:
    """Fill each input's masks one at a time, most confident first (one forward pass per step)."""
    current = [Prepared(list(p.input_ids), list(p.mask_positions)) for p in batch]
    steps: list[list[dict]] = [[] for _ in batch]
    while any(p.mask_positions for p in current):
        todo = [i for i, p in enumerate(current) if p.mask_positions]
        for i, probs in zip(todo, _forward(loaded, [current[i] for i in todo])):
            best_scores, best_tokens = probs.max(-1)
            pick = int(best_scores.argmax())
            position = current[i].mask_positions.pop(pick)
            token = int(best_tokens[pick])
            current[i].input_ids[position] = token
            original = batch[i].mask_positions.index(position)
            steps[i].append({"mask": original, "token_str": loaded.tokenizer.decode([token]),
                             "score": float(best_scores[pick])})
    results = []
    for prepared, filled in zip(current, steps):
        joint_score = 1.0
        for step in filled:
            joint_score *= step["score"]
        results.append({"sequence": _decode_filled(loaded.tokenizer, prepared.input_ids, True),
                        "steps": filled, "score": joint_score})
    return results


def _clean_targets(targets: str | Sequence[str] | None) -> list[str] | None:
    if targets is None:
        return None
    if isinstance(targets, str):
        check_text(targets, "candidate words", required=False)
    else:
        check_text(",".join(map(str, targets)), "candidate words", required=False)
    words = targets.split(",") if isinstance(targets, str) else list(targets)
    words = [w.strip() for w in words if w and w.strip()]
    return words or None


def _check_top_k(top_k: int) -> int:
    top_k = int(top_k)
    if not 1 <= top_k <= MAX_TOP_K:
        raise ValueError(f"top_k must be between 1 and {MAX_TOP_K}, got {top_k}.")
    return top_k


def check_request(text: str, model: str | None = None, top_k: int = 5,
                  targets: str | Sequence[str] | None = None) -> None:
    """Raise ValueError if the request would fail; loads (and caches) the model, runs no forward pass."""
    _check_top_k(top_k)
    loaded = get_manager().get(model, "masked-lm", task="fill-mask")
    words = _clean_targets(targets)
    with loaded.lock:
        preprocess(text, loaded.tokenizer)
        if words:
            target_ids(loaded.tokenizer, words)


@gpu_task
def run_fill_mask(texts: Sequence[str], model: str | None = None, top_k: int = 5,
                  targets: str | Sequence[str] | None = None, joint: bool = True) -> list[dict]:
    """Fill-Mask on a batch of texts with one model.

    Returns one dict per text: ``{"model", "predictions" (list per mask), "joint" (best joint
    filling or None for one mask), "notices" (truncation, candidate words)}``.
    """
    top_k = _check_top_k(top_k)
    loaded = get_manager().get(model, "masked-lm", task="fill-mask")
    words = _clean_targets(targets)
    with loaded.lock:
        tokenizer = loaded.tokenizer
        batch = [preprocess(text, tokenizer) for text in texts]
        ids, target_notices = target_ids(tokenizer, words) if words else (None, [])
        probs = _forward(loaded, batch)
        joints = _joint(loaded, [p for p in batch if len(p.mask_positions) > 1]) if joint else []
    joints_iter = iter(joints)
    return [{"model": loaded.checkpoint,
             "predictions": postprocess(p, pr, tokenizer, top_k, ids),
             "joint": next(joints_iter) if joint and len(p.mask_positions) > 1 else None,
             "notices": p.notices + target_notices}
            for p, pr in zip(batch, probs)]


def fill_mask(text: str, model: str | None = None, top_k: int = 5,
              targets: str | Sequence[str] | None = None) -> list[list[dict]]:
    """Top-k fillers of each mask in ``text``, best first: one list per mask of
    ``{"token_str", "score", "sequence", "token"}``. ``model=None`` uses the default checkpoint;
    ``targets`` restricts the candidates (a list or a comma-separated string)."""
    return run_fill_mask([text], model, top_k, targets, joint=False)[0]["predictions"]


def fill_masks_jointly(text: str, model: str | None = None) -> dict:
    """Best joint filling of all masks (most confident first): ``{"sequence", "steps", "score"}``."""
    loaded = get_manager().get(model, "masked-lm", task="fill-mask")
    with loaded.lock:
        return _joint(loaded, [preprocess(text, loaded.tokenizer)])[0]

