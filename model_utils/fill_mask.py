"""Fill-Mask: predict the words hidden behind mask tokens.

Users write ``[MASK]`` (or ``<mask>``) whatever the model's own mask token is. The work is
split like a transformers pipeline: :func:`preprocess` (normalise masks, tokenize, validate,
truncate around the masks with a notice) -> :func:`_forward` (the only device code) ->
:func:`postprocess` (plain records ``{"token_str", "score", "sequence", "token"}``).

Public API: :func:`fill_mask` (per-mask top-k, equal to ``pipeline("fill-mask")`` for a
single mask), :func:`fill_masks_jointly` (best joint filling, most confident mask first),
:func:`run_fill_mask` (everything the UI shows, for a batch of texts and one model) and
:func:`fill_mask_requests` (raw requests of the app's API, up to several models each). A batch
gives one record per item: a bad text or an unusable model fails only its own item
(``{"model", "error", "code", "params"}``), never the others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from model_utils.config import get_settings
from model_utils.errors import Notice, UserError, define, error_record, raise_if_error
from model_utils.inputs import check_text
from model_utils.manager import LoadedModel, get_manager, gpu_task
from model_utils.projection import logits_at
from model_utils.vocabulary import unreadable_notice

MASK_PATTERN = re.compile(r"\[mask\]|<mask>", re.IGNORECASE)

define({
    "fill_mask.no_mask_token": "This model's tokenizer has no mask token, so it cannot fill masks.",
    "fill_mask.empty": "Please enter a text containing [MASK].",
    "fill_mask.no_mask": "No mask found: write [MASK]{own} where a word is missing.",
    "fill_mask.too_many_masks": "Too many masks ({count}); at most {limit} are allowed.",
    "fill_mask.masks_far_apart": "The masks are {gap} tokens apart, but the model reads at most {limit} tokens at "
                                 "once; put them closer together.",
    "fill_mask.no_candidate": "None of the candidate words can be scored by this model.",
    "fill_mask.top_k": "top-k must be a number from 1 to {limit}.",
    "fill_mask.too_many_models": "Compare at most {limit} models at once.",
    "fill_mask.models_not_names": "Choose the models by name: a list of model names.",
    "fill_mask.window": "The text is {length} tokens long and the model reads at most {limit}: only tokens "
                        "{first}-{last} (around the masks) were used.",
    "fill_mask.candidate_unknown": "Candidate {word!r} is not in the vocabulary; ignored.",
    "fill_mask.candidate_split": "Candidate {word!r} is not one token; scored as {token!r}.",
})


@dataclass
class Prepared:
    """One tokenized input: token ids (with special tokens) and where its masks are."""

    input_ids: list[int]
    mask_positions: list[int]
    notices: list[Notice] = field(default_factory=list)


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


def _window_around_masks(tokenizer: Any, ids: list[int], limit: int) -> tuple[list[int], Notice]:
    """Cut ``ids`` to ``limit`` tokens keeping every mask; returns (ids, notice)."""
    lead, content, tail = _split_specials(tokenizer, ids)
    budget = limit - len(lead) - len(tail)
    masks = [i for i, t in enumerate(content) if t == tokenizer.mask_token_id]
    if masks[-1] - masks[0] + 1 > budget:
        raise UserError("fill_mask.masks_far_apart", gap=masks[-1] - masks[0] + 1, limit=limit)
    center = (masks[0] + masks[-1]) // 2
    start = min(max(0, center - budget // 2), len(content) - budget)
    notice = Notice("fill_mask.window", length=len(ids), limit=limit, first=start + 1, last=start + budget)
    return lead + content[start:start + budget] + tail, notice


def preprocess(text: str, tokenizer: Any, *, max_masks: int | None = None) -> Prepared:
    """Tokenize ``text`` for Fill-Mask; UserError for empty text, no mask or too many masks."""
    if tokenizer.mask_token is None:
        raise UserError("fill_mask.no_mask_token")
    if text is None or (isinstance(text, str) and not text.strip()):
        raise UserError("fill_mask.empty")
    check_text(text, "text")  # a string within the character limit, before anything is counted
    max_masks = max_masks or get_settings().max_masks
    count = len(MASK_PATTERN.findall(text))
    if count == 0:
        own = f" (or {tokenizer.mask_token})" if tokenizer.mask_token != "[MASK]" else ""
        raise UserError("fill_mask.no_mask", own=own, mask=tokenizer.mask_token)
    if count > max_masks:
        raise UserError("fill_mask.too_many_masks", count=count, limit=max_masks)
    ids = tokenizer(normalize_masks(text, tokenizer.mask_token))["input_ids"]
    notices = []
    limit = max_input_tokens(tokenizer)
    if len(ids) > limit:
        ids, notice = _window_around_masks(tokenizer, ids, limit)
        notices.append(notice)
    positions = [i for i, t in enumerate(ids) if t == tokenizer.mask_token_id]
    return Prepared(ids, positions, notices)


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
    with torch.inference_mode():
        picked = logits_at(loaded.model, {"input_ids": ids.to(loaded.device),
                                          "attention_mask": attention.to(loaded.device)}, rows, columns)
    probs = picked.float().softmax(-1).cpu()
    return list(probs.split([len(p.mask_positions) for p in batch]))


def target_ids(tokenizer: Any, targets: Sequence[str]) -> tuple[list[int], list[Notice]]:
    """Token ids of candidate words (pipeline rules: vocab entry, else first sub-token) + notices."""
    vocab = tokenizer.get_vocab()
    ids: list[int] = []
    notices: list[Notice] = []
    for target in targets:
        token_id = vocab.get(target)
        if token_id is None:
            pieces = tokenizer(target, add_special_tokens=False)["input_ids"]
            if not pieces:
                notices.append(Notice("fill_mask.candidate_unknown", word=target))
                continue
            token_id = pieces[0]
            notices.append(Notice("fill_mask.candidate_split", word=target,
                                  token=tokenizer.convert_ids_to_tokens(token_id)))
        if token_id not in ids:
            ids.append(token_id)
    if not ids:
        raise UserError("fill_mask.no_candidate")
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


def parse_targets(targets: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """Candidate words from a comma-separated string or a list (None when there are none)."""
    if targets is None:
        return None
    joined = targets if isinstance(targets, str) else ",".join(map(str, targets))
    check_text(joined, "candidate words", required=False)
    words = tuple(w.strip() for w in joined.split(",") if w.strip())
    return words or None


def parse_top_k(top_k: Any) -> int:
    """A top-k of any type as an int from 1 to ``PLM_MAX_TOP_K`` (5 when unset); UserError otherwise."""
    limit = get_settings().max_top_k
    try:
        number = float(5 if top_k is None else top_k)
    except (TypeError, ValueError):
        number = float("nan")
    if not 1 <= number <= limit:  # also False for NaN
        raise UserError("fill_mask.top_k", limit=limit)
    return int(number)


def parse_models(models: Any) -> tuple[str, ...]:
    """The chosen models (a name or a list of names; "" for the default), at most ``PLM_MAX_COMPARE``."""
    if isinstance(models, str) or models is None:
        models = [models]
    if not isinstance(models, (list, tuple)) or not all(isinstance(m, (str, type(None))) for m in models):
        raise UserError("fill_mask.models_not_names")
    chosen = tuple(dict.fromkeys(m.strip() for m in models if m and m.strip()))
    if len(chosen) > get_settings().max_compare:
        raise UserError("fill_mask.too_many_models", limit=get_settings().max_compare)
    return chosen or ("",)


@gpu_task
def run_fill_mask(texts: Sequence[str], model: str | None = None, top_k: int = 5,
                  targets: str | Sequence[str] | None = None, joint: bool = True) -> list[dict]:
    """Fill-Mask on a batch of texts with one model: one record per text.

    ``{"model", "predictions" (list per mask), "joint" (best joint filling or None for one
    mask), "notices" (truncation, candidate words)}``, or ``{"model", "error", "code",
    "params"}`` for a text that cannot be filled (or for every text, when the model cannot be
    used): one bad text never fails the others.
    """
    top_k = parse_top_k(top_k)
    try:
        words = parse_targets(targets)
        loaded = get_manager().get(model, "masked-lm", task="fill-mask")
    except Exception as err:  # noqa: BLE001 - the model's failure is each text's answer
        return [{"model": model or "", **error_record(err)}] * len(texts)
    with loaded.lock:
        tokenizer = loaded.tokenizer
        prepared = [_prepare(text, tokenizer) for text in texts]
        good = [p for p in prepared if isinstance(p, Prepared)]
        try:
            ids, target_notices = target_ids(tokenizer, words) if words else (None, [])
        except UserError as err:
            return [{"model": loaded.checkpoint, **error_record(err)}] * len(texts)
        probs = iter(_forward(loaded, good)) if good else iter(())
        joints = iter(_joint(loaded, [p for p in good if len(p.mask_positions) > 1]) if joint else [])
        records = []
        for text, p in zip(texts, prepared):
            if not isinstance(p, Prepared):
                records.append({"model": loaded.checkpoint, **error_record(p)})
                continue
            unreadable = unreadable_notice(tokenizer, text, p.input_ids, loaded.checkpoint)
            records.append({"model": loaded.checkpoint, "predictions": postprocess(p, next(probs), tokenizer, top_k, ids),
                            "joint": next(joints) if joint and len(p.mask_positions) > 1 else None,
                            "notices": p.notices + target_notices + ([unreadable] if unreadable else [])})
    return records


def _prepare(text: Any, tokenizer: Any) -> Prepared | UserError:
    """:func:`preprocess`, with a user's mistake returned rather than raised (a batch goes on)."""
    try:
        return preprocess(text, tokenizer)
    except UserError as err:
        return err


def fill_mask_requests(requests: Sequence[dict]) -> list[dict]:
    """The app's Fill-Mask API for a batch of raw requests (``{"text", "models", "top_k", "targets"}``).

    Returns one ``{"text", "results": [one run_fill_mask record per model]}`` per request, or
    ``{"text", "error", "code", "params"}`` for a request whose values are wrong. Requests that share
    a model, a top-k and candidates run as one forward pass.
    """
    outputs: list[dict] = []
    groups: dict[tuple, list[tuple[int, int]]] = {}
    for index, raw in enumerate(requests):
        try:
            models, top_k, words = parse_models(raw.get("models")), parse_top_k(raw.get("top_k")), \
                parse_targets(raw.get("targets"))
        except UserError as err:
            outputs.append({"text": raw.get("text"), "results": [], **error_record(err)})
            continue
        outputs.append({"text": raw.get("text"), "results": [None] * len(models)})
        for slot, name in enumerate(models):
            groups.setdefault((name, top_k, words), []).append((index, slot))
    for (name, top_k, words), members in groups.items():
        records = run_fill_mask([outputs[i]["text"] for i, _ in members], name or None, top_k, words)
        for (index, slot), record in zip(members, records):
            outputs[index]["results"][slot] = record
    return outputs


def fill_mask(text: str, model: str | None = None, top_k: int = 5,
              targets: str | Sequence[str] | None = None) -> list[list[dict]]:
    """Top-k fillers of each mask in ``text``, best first: one list per mask of
    ``{"token_str", "score", "sequence", "token"}``. ``model=None`` uses the default checkpoint;
    ``targets`` restricts the candidates (a list or a comma-separated string). UserError on bad input."""
    record = run_fill_mask([text], model, top_k, targets, joint=False)[0]
    raise_if_error(record)
    return record["predictions"]


def fill_masks_jointly(text: str, model: str | None = None) -> dict:
    """Best joint filling of all masks (most confident first): ``{"sequence", "steps", "score"}``."""
    loaded = get_manager().get(model, "masked-lm", task="fill-mask")
    with loaded.lock:
        return _joint(loaded, [preprocess(text, loaded.tokenizer)])[0]

