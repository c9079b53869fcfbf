"""Continued pretraining from the app: the user's corpus in, a live run, a saved ``local:<name>`` out.

Built on :mod:`model_utils.pretrain` (the same MLM + NSP loop, masking rule and LoRA adapter
that made the bundled model) and adds what a person watching the run needs:

* corpus checks: pasted text or ``.txt`` files (size limit, binary detection) or the bundled
  corpus sample, split into documents by blank lines, with a clear minimum size;
* a held-out slice of the user's own text, evaluated on the base model before training and on
  the adapted model after it (the before/after table);
* a probe sentence with one ``[MASK]`` whose top-5 is recomputed every N steps (the timeline);
* one training example shown as the model sees it (:func:`masking_example`): which tokens were
  selected, which became ``[MASK]``, a random token or stayed unchanged, the NSP pair and its
  label, and the MLM loss ``-log p(true token)`` at every selected position;
* the adapted model merged and saved atomically as a full ``BertForPreTraining`` checkpoint with
  its tokenizer and a model card, so every tab can load it at once.

:func:`run_pretraining` is the whole job; it reports through ``on_event`` and polls
``should_stop`` so :mod:`model_utils.jobs` can run it in the background. Everything returned
is plain data (lists, dicts, floats, strings).
"""

from __future__ import annotations

import functools
import json
import math
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import torch

from model_utils import duration
from model_utils import pretrain as P
from model_utils.data import Document, documents_from_text, read_documents
from transformers import AutoConfig, AutoTokenizer, BertForPreTraining

from model_utils import registry
from model_utils.adapters import merge_adapter
from model_utils.bundled import load_bundled
from model_utils.checkpoints import (atomic_checkpoint, check_budget, check_name, dated_name, ensure_new, free_name,
                                     release_name, reserve_name, reserved_names)
from model_utils.config import get_settings, hub_offline
from model_utils.delta_checkpoints import (delta_base, delta_base_of, estimate_checkpoint_bytes, is_delta_checkpoint,
                                           load_delta_checkpoint, save_delta_checkpoint)
from model_utils.registry import LOCAL_PREFIX, check_within_reach, default_checkpoint, model_name, resolve
from model_utils.errors import Notice, UserError, define
from model_utils.inputs import check_text
from model_utils.devices import training_device
from model_utils.duration import Estimate, Workload
from model_utils.knobs import check_ranges, check_values, knob
from model_utils.loading import hub_location, serialized

BUNDLED_CORPUS = Path(__file__).resolve().parent / "bundled" / "data" / "pretrain_heldout_sample.jsonl"
BUNDLED_CORPUS_NAME = "bundled"  # the UI's name for the bundled corpus sample
MIN_DOCUMENTS = 2  # NSP negatives come from another document; the held-out slice needs two as well
MIN_SENTENCES = 12  # fewer gives no held-out slice worth measuring
MIN_PAIR_DOCUMENTS = 2  # documents with 2+ sentences (NSP needs true next-sentence pairs)
HELDOUT_SHARE = 0.15  # share of the text held out for the before/after metrics
DOCUMENT_SPLIT_MIN = 20  # from this many documents on, whole documents are held out
BINARY_SNIFF_BYTES = 8192  # bytes inspected for NUL/control characters
PROBE_TOP_K = 5
STATUS_NAMES = ("special", "kept", "mask", "random", "unchanged")  # how each token reached the model
_MINIMUM = ("at least {min_docs} documents (separate them with a blank line) and {min_sentences} sentences in all, "
            "with {min_pairs} or more documents of two sentences or more")

define({
    "pretrain.not_txt": "{name}: upload plain-text .txt files (documents separated by blank lines).",
    "pretrain.file_too_big": "{name} is {size_mb:.1f} MB; the limit is {limit_mb:.0f} MB.",
    "pretrain.binary": "{name} looks like a binary file, not text.",
    "pretrain.not_utf8": "{name} is not UTF-8 text ({reason} at byte {position}).",
    "pretrain.corpus_too_big": "The corpus is {size_mb:.1f} MB; the limit is {limit_mb:.0f} MB.",
    "pretrain.corpus_empty": "The corpus is empty. Paste text, upload .txt files or use the bundled corpus: "
                             + _MINIMUM + ".",
    "pretrain.corpus_small": "The corpus is too small ({docs} documents, {sentences} sentences, {pairs} with two "
                             "sentences or more); the minimum is " + _MINIMUM + ".",
    "pretrain.no_heldout": "The corpus is too small to hold out a slice for measuring; the minimum is " + _MINIMUM
                           + ", and two documents need four sentences or more.",
    "pretrain.no_examples": "The corpus gives no training example; the minimum is " + _MINIMUM + ".",
    "pretrain.not_bert": "{name} is a {family} model; continued pretraining with MLM + NSP supports BERT checkpoints "
                         "(BertForPreTraining or BertForMaskedLM).",
    "pretrain.no_mlm_head": "{name} has no trained masked-language-model head; choose a checkpoint with one (a "
                            "...ForMaskedLM or ...ForPreTraining model).",
    "pretrain.base_unloadable": "Could not load {name} (it needs .safetensors weights and a tokenizer): {detail}",
    "pretrain.delta_base_offline": "Could not rebuild {name}: its base {base} is not in the local cache while the "
                                   "Hub is unreachable.",
    "pretrain.new_nsp_head": "{name} has no next-sentence head: a new one starts from random weights.",
    "pretrain.probe_missing": "Write a probe sentence with one {mask}, e.g. 'The patient was given [MASK] for the "
                              "pain.'",
    "pretrain.probe_masks": "The probe sentence needs exactly one {mask} (it has {count}).",
    "pretrain.example_too_short": "This example is too short to mask any token; choose another example.",
})


@dataclass
class SessionOptions:
    """What a run from the app adds to :class:`model_utils.pretrain.PretrainArguments`."""

    base_model: str = field(default="", metadata={"help": "checkpoint with an MLM head (bundled:, local: or Hub id)"})
    checkpoint_name: str = field(default="", metadata={"help": "save the adapted model as local:<name>; empty: do not save"})
    probe_text: str = field(default="", metadata={"help": "a sentence with one [MASK], re-predicted during training"})
    probe_every: int = knob(10, 1, 100_000, help="recompute the probe every N steps")
    example_index: int = knob(0, 0, 100_000, help="which training example the masking panel shows (0: the first)")
    corpus_name: str = field(default="pasted text", metadata={"help": "where the corpus came from (model card)"})

    def __post_init__(self) -> None:
        check_ranges(self)


def app_arguments(**overrides) -> P.PretrainArguments:
    """PretrainArguments for a short interactive run (no resume, no intermediate checkpoints)."""
    base = dict(max_steps=60, batch_size=16, learning_rate=5e-4, max_seq_length=128, mlm_probability=0.15,
                nsp=True, eval_every=10, eval_examples=256, save_every=0, resume=False, warmup_ratio=0.1)
    return P.PretrainArguments(**{**base, **overrides})


# ---------------------------------------------------------------- corpus

def read_text_file(path: Path, max_bytes: int) -> str:
    """The UTF-8 text of an uploaded ``.txt`` file; ValueError for other types, binary data or size."""
    if path.suffix.lower() != ".txt":
        raise UserError("pretrain.not_txt", name=path.name)
    size = path.stat().st_size
    if size > max_bytes:
        raise UserError("pretrain.file_too_big", name=path.name, size_mb=size / 2**20, limit_mb=max_bytes / 2**20)
    data = path.read_bytes()
    head = data[:BINARY_SNIFF_BYTES]
    controls = sum(b < 9 or 13 < b < 32 for b in head)
    if b"\x00" in head or controls > len(head) // 100:
        raise UserError("pretrain.binary", name=path.name)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise UserError("pretrain.not_utf8", name=path.name, reason=err.reason, position=err.start) from None


@functools.lru_cache(maxsize=1)
def _bundled_documents() -> tuple[Document, ...]:
    """The bundled corpus sample, read once (every plan of every session's form reads it)."""
    return tuple(read_documents(BUNDLED_CORPUS))


def load_corpus(text: str = "", files: Sequence[str | Path] = (), use_bundled: bool = False,
                max_bytes: int | None = None) -> tuple[list[Document], str]:
    """Documents from the pasted text plus the uploaded files, or the bundled corpus sample.

    Returns ``(documents, description)``; ValueError when the input is too large or unreadable.
    """
    limit = max_bytes or get_settings().max_upload_bytes
    if use_bundled:
        return list(_bundled_documents()), "bundled corpus sample (600 documents)"
    parts, names = [], []
    if text and text.strip():
        parts.append(text)
        names.append("pasted text")
    for f in files or ():
        path = Path(f)
        parts.append(read_text_file(path, limit))
        names.append(path.name)
    total = sum(len(p.encode("utf-8")) for p in parts)
    if total > limit:
        raise UserError("pretrain.corpus_too_big", size_mb=total / 2**20, limit_mb=limit / 2**20)
    docs = [d for i, part in enumerate(parts) for d in documents_from_text(part, source=f"part{i}")]
    return docs, " + ".join(names) or "nothing"


def corpus_summary(docs: Sequence[Document]) -> dict:
    """Counts a user can check against the minimum: documents, sentences, words."""
    sentences = [s for d in docs for s in d.sentences]
    return {"documents": len(docs), "sentences": len(sentences), "words": sum(len(s.split()) for s in sentences),
            "pair_documents": sum(len(d.sentences) > 1 for d in docs)}


def minimum_text() -> str:
    """The minimum corpus, in words."""
    return _MINIMUM.format(min_docs=MIN_DOCUMENTS, min_sentences=MIN_SENTENCES, min_pairs=MIN_PAIR_DOCUMENTS)


def check_corpus(docs: Sequence[Document]) -> dict:
    """Raise ValueError (stating the minimum) for a corpus too small to train and measure on."""
    counts = corpus_summary(docs)
    if not counts["documents"]:
        raise UserError("pretrain.corpus_empty", min_docs=MIN_DOCUMENTS, min_sentences=MIN_SENTENCES, min_pairs=MIN_PAIR_DOCUMENTS)
    if (counts["documents"] < MIN_DOCUMENTS or counts["sentences"] < MIN_SENTENCES
            or counts["pair_documents"] < MIN_PAIR_DOCUMENTS):
        raise UserError("pretrain.corpus_small", docs=counts["documents"], sentences=counts["sentences"],
                        pairs=counts["pair_documents"], min_docs=MIN_DOCUMENTS, min_sentences=MIN_SENTENCES, min_pairs=MIN_PAIR_DOCUMENTS)
    return counts


def split_heldout(docs: Sequence[Document], share: float = HELDOUT_SHARE) -> tuple[list[Document], list[Document]]:
    """``(train, held_out)``: every k-th whole document for large corpora, else each document's last sentences.

    Small corpora (a few pasted paragraphs) keep every document in training and hold out the
    tail of each document with 3+ sentences, so the held-out slice has the same mix of topics.
    """
    docs = list(docs)
    if len(docs) >= DOCUMENT_SPLIT_MIN:
        every = max(2, round(1 / share))
        return ([d for i, d in enumerate(docs) if i % every != every - 1],
                [d for i, d in enumerate(docs) if i % every == every - 1])
    train, held = [], []
    for d in docs:
        n = len(d.sentences)
        k = min(max(1, round(n * share)), n - 2) if n >= 3 else 0
        train.append(replace(d, sentences=d.sentences[:n - k]))
        if k:
            held.append(Document(d.source, d.id + ":heldout", d.sentences[n - k:]))
    if len(held) < 2 or not any(len(d.sentences) > 1 for d in held):
        held = _widen_tails(docs, train, held)
    return [d for d in train if d.sentences], held


def _widen_tails(docs: list[Document], train: list[Document], held: list[Document]) -> list[Document]:
    """Hold out two sentences of the longest documents when the proportional tails were too thin."""
    longest = sorted(range(len(docs)), key=lambda i: -len(docs[i].sentences))[:2]
    if any(len(docs[i].sentences) < 4 for i in longest):
        raise UserError("pretrain.no_heldout", min_docs=MIN_DOCUMENTS, min_sentences=MIN_SENTENCES, min_pairs=MIN_PAIR_DOCUMENTS)
    held = [h for h in held if not any(h.id == docs[i].id + ":heldout" for i in longest)]
    for i in longest:
        d = docs[i]
        train[i] = replace(d, sentences=d.sentences[:-2])
        held.append(Document(d.source, d.id + ":heldout", d.sentences[-2:]))
    return held


# ---------------------------------------------------------------- base model

def load_pretrain_base(name: str) -> tuple[torch.nn.Module, object, list[str]]:
    """A fresh, trainable ``BertForPreTraining`` of checkpoint ``name``; returns ``(model, tokenizer, notices)``.

    ValueError when the checkpoint is not BERT-family, has no trained MLM head, or cannot load.
    A checkpoint with an MLM head but no NSP head gets a new NSP head (and a notice).
    """

    info = registry.resolve(name)
    if info.source == "bundled":
        return (*_load_bundled_base(info), [])
    if info.family not in (None, "bert"):
        raise UserError("pretrain.not_bert", name=info.name, family=info.family)
    return _load_bert_base(info)


def expected_bytes(base_model: str) -> int:
    """About how large the checkpoint of a run from ``base_model`` will be (runs use a LoRA adapter)."""

    info = resolve(base_model)
    return estimate_checkpoint_bytes(info.source, info.location, delta=info.source in ("bundled", "hub"))


def _load_bundled_base(info) -> tuple:

    if "pretrain-base" not in info.tasks:
        raise UserError("pretrain.no_mlm_head", name=info.name)
    try:
        model, tokenizer = load_bundled(info.name, "pretraining")
    except FileNotFoundError as err:
        raise UserError("model.bundled_missing", name=info.name, detail=str(err)) from err
    return model.float(), tokenizer


@serialized
def _load_bert_base(info) -> tuple:

    local_only = info.source == "local" or hub_offline()
    opts = {"local_files_only": local_only, "trust_remote_code": False}
    if info.source == "local" and is_delta_checkpoint(info.location):
        return _load_delta_base(info)
    location = hub_location(info.location, local_only) if info.source == "hub" else info.location
    try:
        config = AutoConfig.from_pretrained(location, **opts)
        if config.model_type != "bert":
            raise UserError("pretrain.not_bert", name=info.name, family=config.model_type)
        model, loading = BertForPreTraining.from_pretrained(location, use_safetensors=True,
                                                            output_loading_info=True, **opts)
        tokenizer = AutoTokenizer.from_pretrained(location, **opts)
    except OSError as err:
        raise UserError("pretrain.base_unloadable", name=info.name, detail=str(err)[:300]) from err
    missing = set(loading.get("missing_keys", ())) - set(BertForPreTraining._tied_weights_keys or {})
    encoder_missing = any(k.startswith(("bert.embeddings", "bert.encoder")) for k in missing)
    if encoder_missing or any(k.startswith("cls.predictions") for k in missing):
        raise UserError("pretrain.no_mlm_head", name=info.name)
    notices = []
    if any(k.startswith(("cls.seq_relationship", "bert.pooler")) for k in missing):
        notices.append(Notice("pretrain.new_nsp_head", name=info.name))
    return model.float(), tokenizer, notices


# ---------------------------------------------------------------- probe

def probe_ids(tokenizer, text: str, max_length: int = 128) -> torch.Tensor:
    """Token ids of a probe sentence; ValueError unless it has exactly one mask token."""
    text = (check_text(text, "probe sentence", required=False) or "").strip()
    mask = tokenizer.mask_token
    if not text:
        raise UserError("pretrain.probe_missing", mask=mask)
    text = text.replace("<mask>", mask).replace("[mask]", mask)
    ids = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")["input_ids"]
    count = int((ids == tokenizer.mask_token_id).sum())
    if count != 1:
        raise UserError("pretrain.probe_masks", mask=mask, count=count)
    return ids


@torch.inference_mode()
def probe_top_k(model, tokenizer, ids: torch.Tensor, k: int = PROBE_TOP_K) -> list[dict]:
    """Top-``k`` fillers of the probe's mask: ``[{"token", "token_str", "score"}]`` (model left as it was)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    ids = ids.to(device)
    hidden = model.bert(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
    logits = model.cls.predictions(hidden[ids == tokenizer.mask_token_id]).float()
    probs = logits.softmax(-1)[0]
    model.train(was_training)
    top = probs.topk(min(k, probs.numel()))
    return [{"token": int(i), "token_str": tokenizer.decode([int(i)]).strip(), "score": float(s)}
            for s, i in zip(top.values.cpu(), top.indices.cpu())]


# ---------------------------------------------------------------- masking made visible

def training_examples(docs: Sequence[Document], tokenizer, args: P.PretrainArguments) -> list[P.Example]:
    """The training sequences exactly as :func:`model_utils.pretrain.train` builds them (before masking)."""
    return P.documents_to_examples(list(docs), tokenizer, args, args.seed)


def masked_example(example: P.Example, tokenizer, args: P.PretrainArguments) -> dict[str, torch.Tensor]:
    """One example masked by the training masking rule (a draw with at least one selected token)."""
    for attempt in range(20):
        batch = P.collate([example], tokenizer, P.make_masker(tokenizer, args.mlm_probability, args.seed + attempt))
        if (batch["labels"] != -100).any():
            return batch
    raise UserError("pretrain.example_too_short")


def token_statuses(batch: dict[str, torch.Tensor], tokenizer) -> list[dict]:
    """Per token: original and input token, segment, and how it reached the model (see STATUS_NAMES)."""
    inputs, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    special = set(tokenizer.all_special_ids)
    rows = []
    for pos, (inp, label, seg) in enumerate(zip(inputs, labels, batch["token_type_ids"][0].tolist())):
        original = inp if label == -100 else label
        if label == -100:
            status = "special" if inp in special else "kept"
        elif inp == tokenizer.mask_token_id:
            status = "mask"
        else:
            status = "unchanged" if inp == label else "random"
        rows.append({"position": pos, "original": tokenizer.convert_ids_to_tokens(original),
                     "input": tokenizer.convert_ids_to_tokens(inp), "segment": seg, "status": status})
    return rows


@torch.inference_mode()
def score_selected(model, batch: dict[str, torch.Tensor], tokenizer, top_k: int = 3) -> dict:
    """MLM loss ``-log p(true token)`` at each selected position, top guesses there, and P(IsNext)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    b = {k: v.to(device) for k, v in batch.items()}
    out = model.bert(input_ids=b["input_ids"], attention_mask=b["attention_mask"], token_type_ids=b["token_type_ids"])
    selected = b["labels"][0] != -100
    log_probs = model.cls.predictions(out.last_hidden_state[0][selected]).float().log_softmax(-1)
    nsp = model.cls.seq_relationship(out.pooler_output).float().softmax(-1)[0, P.IS_NEXT]
    model.train(was_training)
    targets = b["labels"][0][selected]
    nll = -log_probs.gather(1, targets[:, None])[:, 0]
    top = log_probs.topk(top_k, dim=-1)
    positions = selected.nonzero()[:, 0].tolist()
    return {"positions": [{"position": pos, "nll": float(nll[i]), "prob": math.exp(-float(nll[i])),
                           "top": [{"token_str": tokenizer.convert_ids_to_tokens(int(t)), "prob": math.exp(float(v))}
                                   for v, t in zip(top.values[i].cpu(), top.indices[i].cpu())]}
                          for i, pos in enumerate(positions)],
            "mean_nll": float(nll.mean()), "p_is_next": float(nsp)}


def masking_example(docs: Sequence[Document], tokenizer, args: P.PretrainArguments, index: int = 0) -> dict:
    """Training example ``index`` as the model sees it (plain data), with the masked batch to score it."""
    examples = training_examples(docs, tokenizer, args)
    if not examples:
        raise UserError("pretrain.no_examples", min_docs=MIN_DOCUMENTS, min_sentences=MIN_SENTENCES,
                        min_pairs=MIN_PAIR_DOCUMENTS)
    index = int(index) % len(examples)
    example = examples[index]
    batch = masked_example(example, tokenizer, args)
    sep = example.input_ids.index(tokenizer.sep_token_id)
    label = example.next_sentence_label
    return {"index": index, "count": len(examples), "tokens": token_statuses(batch, tokenizer),
            "sentence_a": tokenizer.decode(example.input_ids[1:sep]),
            "sentence_b": tokenizer.decode(example.input_ids[sep + 1:-1]) if label != -100 else "",
            "nsp_label": {P.IS_NEXT: "IsNext", P.NOT_NEXT: "NotNext"}.get(label),
            "mlm_probability": args.mlm_probability, "batch": batch}


def attach_scores(view: dict, model, tokenizer, key: str) -> dict:
    """Add ``key`` ("base" or "adapted") scores of ``model`` to a :func:`masking_example` view."""
    view.setdefault("scores", {})[key] = score_selected(model, view["batch"], tokenizer)
    return view


def plain_view(view: dict) -> dict:
    """A masking view without its tensors (JSON-ready)."""
    return {k: v for k, v in view.items() if k != "batch"}


# ---------------------------------------------------------------- planning a run from the app

APP_KNOBS = ["max_steps", "batch_size", "learning_rate", "max_seq_length", "mlm_probability", "nsp"]
SESSION_KNOBS = ["probe_every", "example_index"]
_MASKS = re.compile(r"\[MASK\]|<mask>", re.IGNORECASE)


# Presets of the app's form (APP_KNOBS values) per training device: "quick" finishes in about two minutes on
# 2 CPU cores with the bundled corpus sample (benchmarks/bench_presets.py measures it); "full" trains longer.
PRESETS: dict[str, dict[str, dict]] = {
    "cpu": {"quick": {"max_steps": 150, "batch_size": 16, "max_seq_length": 128},
            "full": {"max_steps": 600, "batch_size": 16, "max_seq_length": 128}},
    "gpu": {"quick": {"max_steps": 600, "batch_size": 32, "max_seq_length": 128},
            "full": {"max_steps": 3000, "batch_size": 32, "max_seq_length": 128}},
}


def preset(name: str, device: str | None = None) -> dict:
    """Knob values of preset ``name`` ("quick", "full") for ``device`` (default: the training device)."""
    device = device or training_device().type
    return dict(PRESETS["cpu" if device in ("cpu", "mps") else "gpu"][name])


@dataclass
class Plan:
    """A pretraining run from the app, checked from end to end before it is queued."""

    args: P.PretrainArguments
    options: SessionOptions
    docs: list[Document]
    workload: Workload | None = None  # what it computes, counted for the time estimate
    requested_name: str = ""  # the checkpoint name asked for, when it was taken and another is used
    counts: dict = field(default_factory=dict)  # documents, sentences, examples, held-out sequences

    def estimate(self) -> Estimate:
        """How long the run should take on this machine."""
        return duration.estimate(self.workload)

    def summary(self) -> dict:
        """What the run will do, as plain data: corpus counts, steps, sequences, the time estimate."""
        return {**self.counts, "steps": self.args.max_steps, "batch_size": self.args.batch_size,
                "max_seq_length": self.args.max_seq_length, "checkpoint": self.options.checkpoint_name,
                "requested_name": self.requested_name, "estimate": duration.describe(self.estimate())}

    def release(self) -> None:
        """Withdraw this run's promise of its checkpoint name (it saved, stopped or failed)."""

        if self.options.checkpoint_name:
            release_name(self.options.checkpoint_name)


def _pair_lengths(docs: Sequence[Document], args: P.PretrainArguments) -> list[int]:
    """About how many tokens each training sequence of ``docs`` has (as :func:`P.build_examples` pairs them)."""
    lengths = []
    for doc in docs:
        sizes = [duration.approx_tokens(s) for s in doc.sentences]
        if not args.nsp:
            lengths += [size + 2 for size in sizes]
        elif len(sizes) > 1:
            lengths += [a + b + 3 for a, b in zip(sizes, sizes[1:])]
        elif sizes:
            lengths.append(sizes[0] + 2)
    return [min(args.max_seq_length, n) for n in lengths]


def count_workload(args: P.PretrainArguments, options: SessionOptions, train_docs: Sequence[Document],
                   held: Sequence[Document]) -> tuple[Workload, dict]:
    """What a run computes (steps, tokens of training, evaluations and probes), counted without a tokenizer;
    and the counts a user checks: training sequences, held-out sequences, evaluations."""
    config = duration.base_config(options.base_model)
    train, evaluated = _pair_lengths(train_docs, args), _pair_lengths(held, args)[:args.eval_examples]
    batch = min(args.batch_size, max(1, len(train)))
    epoch_tokens = duration.padded_tokens(train, max(1, batch // args.micro_batches), multiple=1)
    train_tokens = round(epoch_tokens * args.max_steps * batch / max(1, len(train)))
    evals = 2 + (args.max_steps - 1) // args.eval_every if args.eval_every else 2  # before, during, after
    probes = (args.max_steps // max(1, options.probe_every) + 2) * 16 if options.probe_text else 0
    eval_tokens = evals * duration.padded_tokens(evaluated, 64, multiple=1) + probes
    # The MLM head projects the selected positions (about mlm_probability of the tokens) onto the vocabulary.
    head = args.mlm_probability * int(config.get("hidden_size") or 768) * int(config.get("vocab_size") or 30522)
    workload = Workload("pretrain", duration.encoder_weights(config) + round(head), args.max_steps, train_tokens,
                        eval_tokens, 0.15)
    return workload, {"train_sequences": len(train), "heldout_sequences": len(evaluated), "evaluations": evals}


def plan(text: str, files: Sequence[str | Path], use_bundled: bool, base_model: str, name: str, probe: str,
         knobs: dict, reserve: bool = False) -> Plan:
    """Check everything about a run once: knob ranges, the probe, the corpus (and its held-out slice), the base
    model's MLM head, the checkpoint's name and the disk budget; UserError for the first problem. Count what
    it will compute.

    ``knobs``: values of :data:`APP_KNOBS` (PretrainArguments) and :data:`SESSION_KNOBS` (SessionOptions).
    An empty ``base_model`` is the settings' pretraining base; an empty ``name`` a dated one. A name that is
    taken is replaced by the first free ``<name>-2``, ``<name>-3``... (``requested_name`` keeps the one asked
    for); ``reserve`` promises it to this run until :meth:`Plan.release`.
    """

    values = check_values(P.PretrainArguments, {k: knobs[k] for k in APP_KNOBS})
    args = app_arguments(**values, eval_every=max(1, values["max_steps"] // 8))
    session = check_values(SessionOptions, {k: knobs[k] for k in SESSION_KNOBS})
    probe = check_text(probe, "probe sentence", required=False) or ""
    masks = len(_MASKS.findall(probe))
    if probe.strip() and masks != 1:
        raise UserError("pretrain.probe_masks", mask="[MASK]", count=masks)
    docs, source = load_corpus(text or "", files, bool(use_bundled))
    check_corpus(docs)
    split_heldout(docs)
    base_model = model_name(base_model) or default_checkpoint("pretrain-base")
    info = resolve(base_model)
    if "pretrain-base" not in info.tasks:  # refused now, not after the job waited for its turn
        raise UserError("pretrain.no_mlm_head", name=base_model)
    check_within_reach(info)
    requested = check_name((name or "").strip() or dated_name("pretrained"))
    check_budget(expected_bytes(base_model))
    chosen = reserve_name(requested) if reserve else free_name(requested, taken=reserved_names())
    ensure_new(chosen)
    options = SessionOptions(base_model=base_model, checkpoint_name=chosen, probe_text=probe, corpus_name=source,
                             **session)
    workload, counts = count_workload(args, options, *split_heldout(docs))
    counts = {**corpus_summary(docs), **counts}
    return Plan(args, options, docs, workload, requested if requested != chosen else "", counts)


def run_plan(checked: Plan, on_event: Callable[[dict], None] | None = None,
             should_stop: Callable[[], bool] | None = None, owner: str | None = None) -> dict:
    """The whole job of a :func:`plan` (the app's background job). A run that finishes corrects the time
    calibration (:func:`model_utils.duration.observe`)."""
    started = time.perf_counter()
    summary = run_pretraining(checked.args, checked.options, checked.docs, on_event, should_stop, owner=owner)
    if not summary["stopped"] and checked.workload is not None:
        duration.observe(checked.workload, time.perf_counter() - started)
    return summary


# ---------------------------------------------------------------- the whole job

def run_pretraining(args: P.PretrainArguments, options: SessionOptions, docs: Sequence[Document],
                    on_event: Callable[[dict], None] | None = None, should_stop: Callable[[], bool] | None = None,
                    model_and_tokenizer: tuple | None = None, owner: str | None = None) -> dict:
    """Check, measure the base, train, measure again, save ``local:<name>``; returns plain data.

    Events: ``data`` (corpus counts), ``before`` (base metrics, probe, masking view), the
    ``train``/``eval`` events of :func:`model_utils.pretrain.train`, ``probe`` (top-5 every
    ``probe_every`` steps) and ``done``. A stopped run saves nothing (``"stopped": True``). ``owner``:
    the session the saved checkpoint belongs to (None: the command line).
    """

    emit = on_event or (lambda event: None)
    if options.checkpoint_name:
        ensure_new(options.checkpoint_name)  # fail before training, not after
        check_budget(expected_bytes(options.base_model))
    counts = check_corpus(docs)
    train_docs, held = split_heldout(docs)
    emit({"kind": "phase", "phase": "loading"})
    model, tokenizer, notices = (*model_and_tokenizer, []) if model_and_tokenizer else load_pretrain_base(options.base_model)
    ids = probe_ids(tokenizer, options.probe_text, args.max_seq_length) if (options.probe_text or "").strip() else None
    emit({"kind": "phase", "phase": "tokenizing"})
    examples, eval_batches = _prepared(args, tokenizer, train_docs, held)
    model.to(training_device())
    data = {**counts, "train_sequences": len(examples), "heldout_sentences": sum(len(d.sentences) for d in held),
            "heldout_sequences": sum(len(b["input_ids"]) for b in eval_batches), "notices": notices}
    emit({"kind": "data", **data})
    emit({"kind": "phase", "phase": "evaluating"})
    view = attach_scores(masking_example(train_docs, tokenizer, args, options.example_index), model, tokenizer, "base")
    before = {"metrics": P.evaluate(model, eval_batches), "probe": probe_top_k(model, tokenizer, ids) if ids is not None else []}
    emit({"kind": "before", **before, "masking": plain_view(view)})
    timeline = [{"step": 0, "predictions": before["probe"]}] if ids is not None else []
    emit({"kind": "phase", "phase": "training"})
    result = _train(args, options, train_docs, held, (model, tokenizer), ids, timeline, emit, should_stop)
    stopped = result["steps"] < args.max_steps
    emit({"kind": "phase", "phase": "evaluating"})
    after = {"metrics": result["metrics"], "probe": probe_top_k(model, tokenizer, ids) if ids is not None else []}
    if ids is not None and timeline[-1]["step"] != result["steps"]:
        timeline.append({"step": result["steps"], "predictions": after["probe"]})
    attach_scores(view, model, tokenizer, "adapted")
    summary = {"stopped": stopped, "steps": result["steps"], "seconds": result["seconds"], "data": data,
               "before": before, "after": after, "timeline": timeline, "log": result["log"],
               "masking": plain_view(view), "checkpoint": None, "base_model": options.base_model,
               "probe_text": options.probe_text, "arguments": _card_arguments(args)}
    summary["removed"] = []
    if options.checkpoint_name and not stopped:
        emit({"kind": "phase", "phase": "saving"})
        summary["checkpoint"] = save_adapted(model, tokenizer, options, summary, owner)
    emit({"kind": "done", "stopped": stopped, "checkpoint": summary["checkpoint"], "steps": result["steps"],
          "removed": summary["removed"]})
    return summary


def _prepared(args: P.PretrainArguments, tokenizer, train_docs: list[Document], held: list[Document]):
    """Training examples and held-out batches, with the minimum restated when there are none."""
    try:
        return P.prepare_examples(args, tokenizer, train_docs, held)
    except ValueError as err:
        raise UserError("pretrain.no_examples", min_docs=MIN_DOCUMENTS, min_sentences=MIN_SENTENCES, min_pairs=MIN_PAIR_DOCUMENTS) from err


def _train(args, options, train_docs, held, model_and_tokenizer, ids, timeline, emit, should_stop) -> dict:
    """:func:`model_utils.pretrain.train` in a scratch folder, with the probe recomputed every N steps."""
    model, tokenizer = model_and_tokenizer
    every = max(1, int(options.probe_every or 1))

    def on_event(event: dict) -> None:
        emit(event)
        if ids is not None and event["kind"] == "train" and event["step"] % every == 0:
            timeline.append({"step": event["step"], "predictions": probe_top_k(model, tokenizer, ids)})
            emit({"kind": "probe", **timeline[-1]})

    with tempfile.TemporaryDirectory(prefix="plm-pretrain-") as scratch:
        run_args = replace(args, output_dir=scratch, resume=False, save_every=0)
        return P.train(run_args, train_docs, held, on_event=on_event, should_stop=should_stop,
                       model_and_tokenizer=model_and_tokenizer)


def _card_arguments(args: P.PretrainArguments) -> dict:
    keep = ("max_steps", "batch_size", "learning_rate", "warmup_ratio", "weight_decay", "max_seq_length",
            "mlm_probability", "nsp", "lora_rank", "lora_alpha", "eval_examples", "seed")
    return {k: v for k, v in asdict(args).items() if k in keep}


METRIC_NAMES = {"mlm_loss": "held-out MLM loss", "mlm_accuracy": "held-out masked-token accuracy",
                "perplexity": "held-out perplexity", "nsp_loss": "held-out NSP loss",
                "nsp_accuracy": "held-out NSP accuracy", "probe_top5": "probe top-5",
                "probe_top1": "probe top-1 probability"}


def _load_delta_base(info) -> tuple:
    """A ``BertForPreTraining`` rebuilt from a checkpoint saved as a LoRA delta (its MLM head required)."""

    try:
        model, tokenizer, unfilled = load_delta_checkpoint(info.location, BertForPreTraining, local_only=hub_offline())
    except OSError as err:
        raise UserError("pretrain.delta_base_offline", name=info.name, base=delta_base_of(info.location)) from err
    if any(k.startswith("cls.predictions") for k in unfilled):
        raise UserError("pretrain.no_mlm_head", name=info.name)
    notices = [Notice("pretrain.new_nsp_head", name=info.name)] if any(
        k.startswith("cls.seq_relationship") for k in unfilled) else []
    return model.float(), tokenizer, notices


def before_after_rows(summary: dict) -> list[dict]:
    """Rows ``{"key", "metric", "base", "adapted", "change"}`` of the before/after table (probe rows included);
    ``metric`` is the English name (:data:`METRIC_NAMES`) of ``key``."""
    before, after = summary["before"]["metrics"], summary["after"]["metrics"]
    rows = [{"key": k, "base": before[k], "adapted": after[k], "change": after[k] - before[k]}
            for k in METRIC_NAMES if k in before and k in after]
    probe_b, probe_a = summary["before"]["probe"], summary["after"]["probe"]
    if probe_b and probe_a:
        rows.append({"key": "probe_top5", "base": ", ".join(p["token_str"] for p in probe_b),
                     "adapted": ", ".join(p["token_str"] for p in probe_a), "change": ""})
        rows.append({"key": "probe_top1", "base": probe_b[0]["score"], "adapted": probe_a[0]["score"],
                     "change": probe_a[0]["score"] - probe_b[0]["score"]})
    return [{"key": r["key"], "metric": METRIC_NAMES[r["key"]], **r} for r in rows]


def model_card(summary: dict, options: SessionOptions, name: str) -> str:
    """Markdown model card of an adapted model: data, hyperparameters, before/after metrics, time."""
    data = summary["data"]
    params = "\n".join(f"| {k} | {v} |" for k, v in summary["arguments"].items())
    fmt = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)  # noqa: E731
    table = "\n".join(f"| {r['metric']} | {fmt(r['base'])} | {fmt(r['adapted'])} |" for r in before_after_rows(summary))
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (f"# {name}\n\nContinued pretraining (masked LM{' + next-sentence prediction' if summary['arguments']['nsp'] else ''}) "
            f"of `{options.base_model}` with PLM Playground ({when}). A LoRA adapter over the encoder and the "
            "heads were trained: this folder holds that delta over the base (or, over a local base, the merged "
            "model); the app rebuilds an ordinary `BertForPreTraining` from it.\n\n"
            f"## Data\n\n- source: {options.corpus_name}\n- documents: {data['documents']}, sentences: "
            f"{data['sentences']}, words: {data['words']}\n- training sequences: {data['train_sequences']}; "
            f"held-out slice: {data['heldout_sentences']} sentences ({data['heldout_sequences']} sequences)\n\n"
            f"## Hyperparameters\n\n| name | value |\n|---|---|\n{params}\n\n"
            f"## Base vs adapted (held-out slice of the same text)\n\n| metric | base | adapted |\n|---|---|---|\n{table}\n\n"
            f"## Time\n\n{summary['steps']} optimisation steps in {summary['seconds']:.1f} s.\n\n"
            "The training log, probe timeline and masking example are in `training_log.json`.\n")


def save_adapted(model, tokenizer, options: SessionOptions, summary: dict, owner: str | None = None) -> str:
    """Write the adapted model atomically as ``local:<name>``; returns that name.

    Over a bundled or Hub base only the LoRA delta is saved (:mod:`model_utils.delta_checkpoints`); over a
    local base the merged model in full (that base may be deleted later). Checkpoints removed to make
    room are listed in ``summary["removed"]``.
    """

    info = resolve(options.base_model)
    base = delta_base(info.location, info.source, model)
    model = model if base else merge_adapter(model)
    name = options.checkpoint_name.strip().removeprefix(LOCAL_PREFIX)
    model.config.plm_description = f"continued pretraining of {options.base_model} on {options.corpus_name}"
    model.config.architectures = ["BertForPreTraining"]
    summary.setdefault("removed", [])
    with atomic_checkpoint(name, owner=owner, kind="pretrain", removed=summary["removed"]) as tmp:
        if base:
            save_delta_checkpoint(model, tokenizer, tmp, base)
        else:
            model.save_pretrained(str(tmp), safe_serialization=True)
            tokenizer.save_pretrained(str(tmp))
        (tmp / "README.md").write_text(model_card(summary, options, name), encoding="utf-8")
        log = {k: summary[k] for k in ("arguments", "data", "before", "after", "timeline", "log", "masking", "steps", "seconds")}
        (tmp / "training_log.json").write_text(json.dumps(log, indent=1, default=str), encoding="utf-8")
    return LOCAL_PREFIX + name
