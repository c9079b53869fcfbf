"""Left-to-right (GPT-style) language models: the next-token distribution, sampling filters and generation.

* :func:`next_token`: the distribution over the next token, before and after each sampling filter
  (temperature, top-k, top-p: transformers' own logits warpers, in ``generate()``'s order), for the
  most likely tokens; ``continuation`` (token ids chosen one at a time) lets a caller step through.
* :func:`generate_stream` yields the generation after every new token (greedy or seeded sampling, a
  KV-cached loop of our own so each step's alternatives are known); beam search runs ``model.generate``
  and yields once. :func:`generate` returns the last record. Every token comes with its probability and
  rank under the model (temperature 1, no filter) and the model's top alternatives at that step.

Each follows preprocess (:func:`check_sampling`, :func:`check_generation`, :func:`encode_prompt`: the only
validation) -> ``_forward`` / ``_prefill_and_step`` (the only device code) -> plain records. Generation is
bounded: ``PLM_MAX_NEW_TOKENS`` tokens, ``PLM_GENERATE_TIME_LIMIT`` seconds, the model's context length.

The prompt is read as the tokenizer reads a text, without the special tokens it puts *after* one: GPT-2's
tokenizer adds nothing, a BERT tokenizer's ``[CLS]`` stays (``bundled:minilm-causal`` was trained on
``[CLS] text [SEP]``) but its ``[SEP]`` would tell the model the text is over.
"""

from __future__ import annotations

import functools
import inspect
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch
from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from model_utils.config import get_settings
from model_utils.errors import Notice, UserError, define
from model_utils.inputs import check_text, model_token_limit
from model_utils.manager import LoadedModel, get_manager, gpu_task
from model_utils.vocabulary import unreadable_notice

# A causal model whose vocabulary reads Chinese (and most scripts), named when a prompt is mostly [UNK].
MULTILINGUAL_GENERATOR = "Qwen/Qwen2.5-0.5B"

STRATEGIES: tuple[str, ...] = ("greedy", "sample", "beam")
MAX_TEMPERATURE = 100.0
MAX_SEED = 2**32 - 1
ALTERNATIVES = 5  # the model's top tokens kept with every generated token
MIN_SHOWN, MAX_SHOWN = 10, 40  # candidates next_token lists: those kept by the filters and a few removed

define({
    "generate.bad_number": "{what} must be a number, got {value!r}.",
    "generate.bad_temperature": "The temperature must be greater than 0 and at most {limit:g}, got {value!r}. "
                                "(Temperature 0 would always take the most likely token: that is the greedy "
                                "strategy.)",
    "generate.bad_top_k": "top-k must be a whole number, 0 (off) or more, got {value!r}.",
    "generate.bad_top_p": "top-p must be greater than 0 and at most 1 (1 = off), got {value!r}.",
    "generate.bad_max_new_tokens": "The number of new tokens must be a whole number from 1 to {limit} "
                                   "(PLM_MAX_NEW_TOKENS), got {value!r}.",
    "generate.bad_strategy": "The strategy must be one of {choices}, got {value!r}.",
    "generate.bad_beams": "Beam search needs a whole number of beams from 2 to {limit} (PLM_MAX_BEAMS), "
                          "got {value!r}.",
    "generate.bad_seed": "The seed must be a whole number from 0 to {limit}, got {value!r}.",
    "generate.bad_continuation": "The chosen tokens must be a list of the model's token ids (0 to {last}); "
                                 "got {value!r}.",
    "generate.too_many_steps": "{count} tokens were already added one at a time; the limit is {limit} "
                               "(PLM_MAX_NEW_TOKENS). Undo some or start again.",
    "generate.context_full": "The text so far fills the model's context ({limit} tokens): no token can be added.",
    "generate.prompt_cut": "The prompt has {total} tokens and the model reads at most {limit} here, so only its "
                           "last {kept} are used.",
    "generate.context_reached": "Generation stopped at the model's context length ({limit} tokens).",
    "generate.time_limit": "Generation stopped after {seconds:.0f} s (PLM_GENERATE_TIME_LIMIT) with {count} "
                           "new tokens.",
})


# ---------------------------------------------------------------------------- validation


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise UserError("generate.bad_number", what=what, value=value) from None
    return float(value)


def _whole(value: Any, code: str, low: int, high: float | None = None, **params: Any) -> int:
    """``value`` as an int in [low, high]; UserError ``code`` for anything else (2.5, "x", None, nan)."""
    try:
        number = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError):
        number = float("nan")
    if not number.is_integer() or number < low or (high is not None and number > high):
        raise UserError(code, value=value, **params)
    return int(number)


def check_sampling(temperature: Any, top_k: Any, top_p: Any) -> tuple[float, int, float]:
    """The sampling filters as (temperature, top_k, top_p); UserError for a value that means nothing."""
    value = _number(temperature, "The temperature")
    if not 0 < value <= MAX_TEMPERATURE:  # also refuses nan
        raise UserError("generate.bad_temperature", value=temperature, limit=MAX_TEMPERATURE)
    k = _whole(top_k, "generate.bad_top_k", 0)
    p = _number(top_p, "top-p")
    if not 0 < p <= 1:
        raise UserError("generate.bad_top_p", value=top_p)
    return value, k, p


@dataclass(frozen=True)
class GenerationRequest:
    """A checked generation request (see :func:`check_generation`)."""

    strategy: str
    max_new_tokens: int
    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 1.0
    num_beams: int = 4
    seed: int = 0
    min_new_tokens: int = 0


def check_generation(strategy: Any, max_new_tokens: Any, temperature: Any = 1.0, top_k: Any = 50, top_p: Any = 1.0,
                     num_beams: Any = 4, seed: Any = 0, min_new_tokens: Any = 0) -> GenerationRequest:
    """Validate every knob of a generation at once; UserError names the first bad one and its range."""
    settings = get_settings()
    if strategy not in STRATEGIES:
        raise UserError("generate.bad_strategy", value=strategy, choices=", ".join(STRATEGIES))
    limit = settings.max_new_tokens
    new = _whole(max_new_tokens, "generate.bad_max_new_tokens", 1, limit, limit=limit)
    least = _whole(min_new_tokens, "generate.bad_max_new_tokens", 0, new, limit=new)
    temperature, top_k, top_p = check_sampling(temperature, top_k, top_p)
    beams = 1
    if strategy == "beam":
        beams = _whole(num_beams, "generate.bad_beams", 2, settings.max_beams, limit=settings.max_beams)
    seed = _whole(seed, "generate.bad_seed", 0, MAX_SEED, limit=MAX_SEED)
    return GenerationRequest(strategy, new, temperature, top_k, top_p, beams, seed, least)


# ---------------------------------------------------------------------------- the prompt


def special_tokens_around(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special tokens ``tokenizer`` puts before and after a text: ``([CLS]], [[SEP]])`` for BERT,
    ``([], [])`` for GPT-2."""
    full = tokenizer("a")["input_ids"]
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return list(full[:start]), list(full[start + len(plain):])
    return [], []


def special_prefix(tokenizer: Any) -> list[int]:
    """The special tokens ``tokenizer`` puts before a text (``[CLS]``, ``<s>``; none for GPT-2)."""
    return special_tokens_around(tokenizer)[0]


@dataclass
class Prompt:
    """What the model reads: ``ids`` = special prefix + prompt tokens (maybe cut) + continuation."""

    ids: list[int]
    prefix: int  # leading special tokens
    start: int  # index in ids where the continuation (the tokens added after the prompt) begins
    limit: int  # the model's context length here
    notices: list[Notice] = field(default_factory=list)


def context_limit(loaded: LoadedModel) -> int:
    """Most tokens the model reads at once here: its positions, its tokenizer, ``PLM_MAX_SEQ_LEN``."""
    return model_token_limit(loaded.model.config, loaded.tokenizer, cap=get_settings().max_seq_len)


def check_continuation(continuation: Any, vocab: int) -> list[int]:
    """Token ids chosen one at a time after the prompt; UserError for anything but a list of valid ids."""
    if continuation is None:
        return []
    if not isinstance(continuation, (list, tuple)):
        raise UserError("generate.bad_continuation", value=str(continuation)[:80], last=vocab - 1)
    ids = []
    for item in continuation:
        if isinstance(item, bool) or not isinstance(item, (int, float)) or not float(item).is_integer() \
                or not 0 <= item < vocab:
            raise UserError("generate.bad_continuation", value=str(item)[:80], last=vocab - 1)
        ids.append(int(item))
    limit = get_settings().max_new_tokens
    if len(ids) > limit:
        raise UserError("generate.too_many_steps", count=len(ids), limit=limit)
    return ids


def encode_prompt(loaded: LoadedModel, text: Any, continuation: Any = ()) -> Prompt:
    """Tokenize the prompt (its leading special tokens kept, trailing ones dropped) and append ``continuation``.

    A prompt too long for the model keeps its last tokens (the ones next to what comes after), with a
    notice; at least one position is left free for the next token.
    """
    text = check_text(text, "text")
    tokenizer = loaded.tokenizer
    added = check_continuation(continuation, loaded.model.get_input_embeddings().num_embeddings)
    prefix = special_prefix(tokenizer)
    body = tokenizer(text, add_special_tokens=False)["input_ids"]
    limit = context_limit(loaded)
    room = limit - 1 - len(prefix) - len(added)
    if room < 1:
        raise UserError("generate.context_full", limit=limit)
    unreadable = unreadable_notice(tokenizer, text, body, loaded.checkpoint, suggestion=MULTILINGUAL_GENERATOR)
    notices = [unreadable] if unreadable else []
    if len(body) > room:
        notices.append(Notice("generate.prompt_cut", total=len(body), limit=limit, kept=room))
        body = body[-room:]
    ids = prefix + body + added
    return Prompt(ids, len(prefix), len(prefix) + len(body), limit, notices)


# ---------------------------------------------------------------------------- filters and sampling


def filter_stages(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0,
                  top_p: float = 1.0) -> dict[str, torch.Tensor]:
    """Next-token probabilities at each stage: ``model`` (softmax of the logits), then after ``temperature``,
    ``top_k`` and ``top_p`` (the last is what sampling draws from).

    The filters are transformers' own ``TemperatureLogitsWarper``, ``TopKLogitsWarper`` and
    ``TopPLogitsWarper`` in the order ``generate()`` applies them; top-k 0 and top-p 1 are off.
    """
    scores = logits.detach().float().reshape(1, -1).cpu()
    no_ids = torch.zeros((1, 0), dtype=torch.long)  # the warpers do not look at the tokens so far
    stages = {"model": scores.softmax(-1)[0]}
    scores = TemperatureLogitsWarper(float(temperature))(no_ids, scores)
    stages["temperature"] = scores.softmax(-1)[0]
    if top_k:
        scores = TopKLogitsWarper(int(top_k))(no_ids, scores)
    stages["top_k"] = scores.softmax(-1)[0]
    if top_p < 1.0:
        scores = TopPLogitsWarper(float(top_p))(no_ids, scores)
    stages["top_p"] = scores.softmax(-1)[0]
    return stages


def sample_token(probabilities: torch.Tensor, seed: int, position: int) -> int:
    """A token drawn from ``probabilities`` with a generator seeded by (``seed``, ``position``).

    Seeding each position on its own makes a run reproducible and lets a step-by-step run (one token at
    a time, the model's choice each time) give the same tokens as a full run with the same seed.
    """
    generator = torch.Generator().manual_seed((seed * 1_000_003 + position) % 2**63)
    return int(torch.multinomial(probabilities.float().cpu(), 1, generator=generator))


def _rank(probabilities: torch.Tensor, token: int) -> int:
    return int((probabilities > probabilities[token]).sum()) + 1


# ---------------------------------------------------------------------------- the model


def _load(model: str | None) -> LoadedModel:
    return get_manager().get(model, "causal-lm", task="text-generation")


@functools.lru_cache(maxsize=64)
def _keeps_last_logits(model_class: type) -> bool:
    """Whether the model's forward takes ``logits_to_keep`` (then the prompt's other positions skip the LM head)."""
    return "logits_to_keep" in inspect.signature(model_class.forward).parameters


def _forward(loaded: LoadedModel, ids: Sequence[int]) -> torch.Tensor:
    """Next-token logits at every position of ``ids``: ``[len(ids), vocab]``, float32 on the CPU."""
    with loaded.lock, torch.inference_mode():
        logits = loaded.model(torch.tensor([list(ids)], device=loaded.device)).logits
    return logits[0].float().cpu()


class _Decoder:
    """Next-token logits one token at a time, with the model's KV cache (what ``model.generate`` does).

    The model's lock is held for each forward pass only: a generation that streams (and waits between
    tokens) never keeps other requests from the model.
    """

    def __init__(self, loaded: LoadedModel, ids: Sequence[int]) -> None:
        self.loaded = loaded
        self.ids = list(ids)
        self.cache: Any = None
        self.pending = list(ids)
        self.extra = {"logits_to_keep": 1} if _keeps_last_logits(type(loaded.model)) else {}

    def logits(self) -> torch.Tensor:
        """Logits of the token after ``self.ids`` (float32, CPU)."""
        feed = self.pending if self.cache is not None else self.ids
        with self.loaded.lock, torch.inference_mode():
            out = self.loaded.model(torch.tensor([feed], device=self.loaded.device), cache=self.cache,
                                    use_cache=True, **self.extra)
        self.cache = getattr(out, "cache", None)
        return out.logits[0, -1].float().cpu()

    def append(self, token: int) -> None:
        self.ids.append(token)
        self.pending = [token]


# ---------------------------------------------------------------------------- records


def _piece_texts(tokenizer: Any, before: Sequence[int], new: Sequence[int]) -> list[str]:
    """The text each token of ``new`` adds after ``before`` (their sum is the decoded continuation).

    A byte-level token may end inside a character: its text waits (``""``) until a later token
    completes it, as transformers' ``TextStreamer`` does.
    """
    shown = tokenizer.decode(list(before), skip_special_tokens=True)
    pieces = []
    for i in range(len(new)):
        text = tokenizer.decode(list(before) + list(new[:i + 1]), skip_special_tokens=True)
        if text.endswith("\ufffd") or not text.startswith(shown):
            pieces.append("")
            continue
        pieces.append(text[len(shown):])
        shown = text
    return pieces


def _token_text(tokenizer: Any, token: int) -> str:
    return tokenizer.decode([token])


def token_record(tokenizer: Any, probabilities: torch.Tensor, token: int, chosen_by: str,
                 sampled: torch.Tensor | None = None, specials: set[int] | None = None) -> dict:
    """One generated token: its probability and rank under the model, the top alternatives there."""
    top = torch.topk(probabilities, min(ALTERNATIVES, probabilities.numel()))
    specials = set(tokenizer.all_special_ids) if specials is None else specials
    return {
        "token_id": token, "token": tokenizer.convert_ids_to_tokens(token), "text": "",
        "probability": float(probabilities[token]), "rank": _rank(probabilities, token),
        "sampled_probability": None if sampled is None else float(sampled[token]),
        "special": token in specials, "chosen_by": chosen_by,
        "alternatives": [{"token_id": int(i), "text": _token_text(tokenizer, int(i)), "probability": float(p)}
                         for p, i in zip(top.values.tolist(), top.indices.tolist())],
    }


def score_tokens(loaded: LoadedModel, ids: Sequence[int], start: int, chosen_by: str = "given") -> list[dict]:
    """Records of the tokens ``ids[start:]`` (what the model gave each, from one forward pass over ``ids``)."""
    if start >= len(ids):
        return []
    logits = _forward(loaded, ids)
    records = []
    for position in range(start, len(ids)):
        probabilities = logits[position - 1].softmax(-1)
        records.append(token_record(loaded.tokenizer, probabilities, ids[position], chosen_by))
    return records


def _summary(records: list[dict]) -> dict:
    """Log-probability and perplexity of the generated tokens under the model."""
    logs = [math.log(max(r["probability"], 1e-45)) for r in records]
    if not logs:
        return {"logprob": 0.0, "perplexity": None}
    return {"logprob": sum(logs), "perplexity": math.exp(-sum(logs) / len(logs))}


# ---------------------------------------------------------------------------- next token


@gpu_task
def next_token(text: str, model: str | None = None, top_k: int = 10, temperature: float = 1.0,
               top_p: float = 1.0, continuation: Sequence[int] = ()) -> dict:
    """The next-token distribution of ``model`` after ``text`` (+ the token ids ``continuation``), before and
    after each filter.

    Returns ``{"model", "prompt", "prompt_tokens", "tokens" (the continuation's tokens, as :func:`generate`
    gives them), "temperature", "top_k", "top_p", "candidates": [{"token_id", "token", "text", "rank",
    "probability", "after_temperature", "after_top_k", "after_top_p", "removed_by"}], "rest": {same four for
    every other token}, "kept", "vocab_size", "notices"}``. Candidates are the most likely tokens under the
    model (every one the filters keep, up to 40, and a few they remove); ``after_top_p`` is what sampling
    draws from.
    """
    temperature, top_k, top_p = check_sampling(temperature, top_k, top_p)
    loaded = _load(model)
    with loaded.lock:
        prompt = encode_prompt(loaded, text, continuation)
        logits = _forward(loaded, prompt.ids)
        tokenizer = loaded.tokenizer
        added = prompt.ids[prompt.start:]
        tokens = [token_record(tokenizer, logits[position - 1].softmax(-1), prompt.ids[position], "given")
                  for position in range(prompt.start, len(prompt.ids))]
        for token, piece in zip(tokens, _piece_texts(tokenizer, prompt.ids[:prompt.start], added)):
            token["text"] = piece
        return {
            "model": loaded.checkpoint,
            "prompt": tokenizer.decode(prompt.ids[:prompt.start], skip_special_tokens=True),
            "prompt_tokens": tokenizer.convert_ids_to_tokens(prompt.ids[:prompt.start]),
            "tokens": tokens,
            "temperature": temperature, "top_k": top_k, "top_p": top_p,
            **_candidates(tokenizer, stages=filter_stages(logits[-1], temperature, top_k, top_p)),
            "notices": prompt.notices,
        }


def _candidates(tokenizer: Any, stages: dict[str, torch.Tensor]) -> dict:
    """The most likely tokens with their probability at each stage, and the mass of all the others."""
    model, after_k, final = stages["model"], stages["top_k"], stages["top_p"]
    kept = int((final > 0).sum())
    shown = min(model.numel(), MAX_SHOWN, max(MIN_SHOWN, kept + 5))
    order = torch.topk(model, shown).indices.tolist()
    names = {"probability": "model", "after_temperature": "temperature", "after_top_k": "top_k",
             "after_top_p": "top_p"}
    candidates = []
    for rank, token in enumerate(order, start=1):
        removed = None if final[token] > 0 else ("top_k" if after_k[token] == 0 else "top_p")
        candidates.append({"token_id": token, "token": tokenizer.convert_ids_to_tokens(token),
                           "text": _token_text(tokenizer, token), "rank": rank, "removed_by": removed,
                           **{key: float(stages[stage][token]) for key, stage in names.items()}})
    index = torch.tensor(order)
    rest = {key: max(0.0, float(1.0 - stages[stage][index].sum())) for key, stage in names.items()}
    return {"candidates": candidates, "rest": rest, "kept": kept, "vocab_size": int(model.numel())}


# ---------------------------------------------------------------------------- generation


def eos_token_ids(loaded: LoadedModel) -> set[int]:
    """Tokens that end a text for this model (its config's, else its tokenizer's end token)."""
    eos = getattr(loaded.model.generation_config, "eos_token_id", None)
    if eos is None:
        eos = getattr(loaded.model.config, "eos_token_id", None)
    if eos is None:
        eos = loaded.tokenizer.eos_token_id
    return set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])


class _Run:
    """The record of one generation, updated token by token (what :func:`generate_stream` yields)."""

    def __init__(self, loaded: LoadedModel, prompt: Prompt, request: GenerationRequest) -> None:
        self.loaded, self.prompt, self.request = loaded, prompt, request
        self.started = time.monotonic()
        self.first_token_s: float | None = None
        self.specials = set(loaded.tokenizer.all_special_ids)
        self.given = len(prompt.ids) - prompt.start
        self.tokens: list[dict] = score_tokens(loaded, prompt.ids, prompt.start)  # the continuation given
        given_ids = prompt.ids[prompt.start:]
        for token, text in zip(self.tokens, _piece_texts(loaded.tokenizer, prompt.ids[:prompt.start], given_ids)):
            token["text"] = text
        self.ids = list(prompt.ids)
        self.shown = loaded.tokenizer.decode(self.ids[:prompt.start], skip_special_tokens=True) + \
            "".join(t["text"] for t in self.tokens)
        self.notices: list[Notice] = list(prompt.notices)

    def add(self, record: dict) -> None:
        """Append a generated token, with the text it adds (``""`` while it ends inside a character)."""
        if self.first_token_s is None:
            self.first_token_s = time.monotonic() - self.started
        self.ids.append(record["token_id"])
        text = self.loaded.tokenizer.decode(self.ids, skip_special_tokens=True)
        if not text.endswith("\ufffd") and text.startswith(self.shown):
            record["text"], self.shown = text[len(self.shown):], text
        self.tokens.append(record)

    def _flush(self) -> None:
        """At the end, bytes that never completed a character are the last token's text (as decode shows them)."""
        text = self.loaded.tokenizer.decode(self.ids, skip_special_tokens=True)
        if self.tokens and text.startswith(self.shown) and len(text) > len(self.shown):
            self.tokens[-1]["text"] += text[len(self.shown):]
            self.shown = text

    def record(self, finished: str | None) -> dict:
        tokenizer, prompt = self.loaded.tokenizer, self.prompt
        if finished is not None:
            self._flush()
        elapsed = time.monotonic() - self.started
        generated = len(self.tokens) - self.given
        return {
            "model": self.loaded.checkpoint, "strategy": self.request.strategy,
            "settings": {k: getattr(self.request, k) for k in ("max_new_tokens", "temperature", "top_k", "top_p",
                                                                "num_beams", "seed")},
            "prompt": tokenizer.decode(prompt.ids[:prompt.start], skip_special_tokens=True),
            "prompt_tokens": tokenizer.convert_ids_to_tokens(prompt.ids[:prompt.start]),
            "tokens": [dict(t) for t in self.tokens],
            "text": "".join(t["text"] for t in self.tokens),
            "finished": finished, "generated": generated, "elapsed_s": elapsed,
            "first_token_s": self.first_token_s,
            "tokens_per_s": generated / elapsed if elapsed > 0 and generated else None,
            **_summary(self.tokens), "notices": list(self.notices),
        }


def _choose(request: GenerationRequest, logits: torch.Tensor, position: int,
            banned: set[int]) -> tuple[int, torch.Tensor, torch.Tensor | None]:
    """(token, the model's probabilities, the sampling probabilities or None) for one step."""
    probabilities = logits.softmax(-1)
    if banned:  # min_new_tokens: no end of text yet (transformers' MinNewTokensLengthLogitsProcessor does the same)
        logits = logits.clone()
        logits[list(banned)] = -float("inf")
    if request.strategy == "greedy":
        return int(torch.argmax(logits)), probabilities, None
    sampled = filter_stages(logits, request.temperature, request.top_k, request.top_p)["top_p"]
    return sample_token(sampled, request.seed, position), probabilities, sampled


def _step_loop(run: _Run, should_stop: Callable[[], bool] | None, every_token: bool = True) -> Iterator[dict]:
    """Greedy or sampled tokens one at a time, a record after each (``every_token``) and a last one that says
    why it ended."""
    loaded, request, prompt = run.loaded, run.request, run.prompt
    decoder = _Decoder(loaded, prompt.ids)
    eos = eos_token_ids(loaded)
    limit_s = get_settings().generate_time_limit_s
    for step in range(request.max_new_tokens):
        if len(decoder.ids) >= prompt.limit:
            run.notices.append(Notice("generate.context_reached", limit=prompt.limit))
            yield run.record("context")
            return
        position = len(decoder.ids) - prompt.start
        token, probabilities, sampled = _choose(request, decoder.logits(), position,
                                                eos if step < request.min_new_tokens else set())
        run.add(token_record(loaded.tokenizer, probabilities, token, "model", sampled, run.specials))
        decoder.append(token)
        if token in eos:
            yield run.record("eos")
            return
        if time.monotonic() - run.started > limit_s and step + 1 < request.max_new_tokens:
            run.notices.append(Notice("generate.time_limit", seconds=limit_s, count=step + 1))
            yield run.record("time_limit")
            return
        if should_stop is not None and should_stop():
            yield run.record("stopped")
            return
        if every_token:
            yield run.record(None)
    yield run.record("max_new_tokens")


def _beam_search(run: _Run) -> dict:
    """Beam search through ``model.generate`` (bounded by tokens, context and time); tokens scored after."""
    loaded, request, prompt = run.loaded, run.request, run.prompt
    new = min(request.max_new_tokens, prompt.limit - len(prompt.ids))
    pad = loaded.tokenizer.pad_token_id
    eos = eos_token_ids(loaded)
    with loaded.lock, torch.inference_mode():
        out = loaded.model.generate(
            torch.tensor([prompt.ids], device=loaded.device), do_sample=False, num_beams=request.num_beams,
            max_new_tokens=new, min_new_tokens=request.min_new_tokens, early_stopping=True,
            max_time=get_settings().generate_time_limit_s,
            pad_token_id=pad if pad is not None else next(iter(eos), 0))
    generated = out[0, len(prompt.ids):].tolist()
    ended = next((i for i, token in enumerate(generated) if token in eos), None)
    generated = generated[:ended + 1] if ended is not None else generated
    for record in score_tokens(loaded, prompt.ids + generated, len(prompt.ids), "model"):
        run.add(record)
    finished = "eos" if ended is not None else "max_new_tokens" if len(generated) == request.max_new_tokens \
        else "context" if len(prompt.ids) + len(generated) >= prompt.limit else "time_limit"
    if finished == "context":
        run.notices.append(Notice("generate.context_reached", limit=prompt.limit))
    elif finished == "time_limit":
        run.notices.append(Notice("generate.time_limit", seconds=get_settings().generate_time_limit_s,
                                  count=len(generated)))
    return run.record(finished)


@gpu_task
def generate_stream(text: str, model: str | None = None, max_new_tokens: int = 30, strategy: str = "greedy",
                    temperature: float = 1.0, top_k: int = 50, top_p: float = 1.0, num_beams: int = 4,
                    seed: int = 0, continuation: Sequence[int] = (), min_new_tokens: int = 0,
                    should_stop: Callable[[], bool] | None = None) -> Iterator[dict]:
    """Generate after ``text`` (+ the token ids ``continuation``), yielding the record after every new token.

    ``strategy``: "greedy" (the most likely token each time, as ``model.generate(do_sample=False)``),
    "sample" (drawn after temperature, top-k and top-p, seeded per position by ``seed``) or "beam"
    (``num_beams`` beams; one record at the end). ``min_new_tokens`` forbids the end-of-text token before
    that many. Stops at the end-of-text token, ``max_new_tokens``, the model's context length, the time
    limit or when ``should_stop()`` says so. The record: ``{"model", "strategy", "settings", "prompt",
    "prompt_tokens", "tokens": [{"token_id", "token", "text", "probability", "rank",
    "sampled_probability", "special", "chosen_by", "alternatives"}], "text", "finished" (None while
    running; "eos", "max_new_tokens", "context", "time_limit", "stopped"), "generated", "elapsed_s",
    "first_token_s", "tokens_per_s", "logprob", "perplexity", "notices"}``.
    """
    yield from _records(text, model, check_generation(strategy, max_new_tokens, temperature, top_k, top_p,
                                                       num_beams, seed, min_new_tokens),
                        continuation, should_stop, every_token=True)


def _records(text: str, model: str | None, request: GenerationRequest, continuation: Sequence[int],
             should_stop: Callable[[], bool] | None, every_token: bool) -> Iterator[dict]:
    loaded = _load(model)
    with loaded.lock:
        run = _Run(loaded, encode_prompt(loaded, text, continuation), request)
    if request.strategy == "beam":
        yield _beam_search(run)
        return
    yield from _step_loop(run, should_stop, every_token)


@gpu_task
def generate(text: str, model: str | None = None, max_new_tokens: int = 30, strategy: str = "greedy",
             temperature: float = 1.0, top_k: int = 50, top_p: float = 1.0, num_beams: int = 4, seed: int = 0,
             continuation: Sequence[int] = (), min_new_tokens: int = 0) -> dict:
    """The finished record of :func:`generate_stream` (same arguments; no record is built before the end)."""
    request = check_generation(strategy, max_new_tokens, temperature, top_k, top_p, num_beams, seed, min_new_tokens)
    *_, record = _records(text, model, request, continuation, None, every_token=False)
    return record
