"""Continued BERT pretraining with both of BERT's objectives: masked LM and next-sentence prediction.

The model is an ordinary :class:`transformers.BertForPreTraining` (``cls.predictions`` with its
decoder tied to the word embeddings, ``cls.seq_relationship``). The encoder is adapted with a LoRA
adapter (PEFT) and the heads are trained in full, so a run's result is a few MB: see
:mod:`model_utils.bundled` for how it is stored and reassembled.

Why this loop is faster than calling ``BertForPreTraining(..., labels=..., next_sentence_label=...)``:
the 30k-way vocabulary projection is applied only at the ~15% selected positions, not at every
position (on CPU that projection is a large share of the cost), and each batch runs as
length-sorted micro-batches padded only to their own longest sequence (same loss and gradient,
much less padding). ``benchmarks/bench_pretrain.py`` measures it.

Command line: ``python -m model_utils.pretrain --help``.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from transformers import (BertForPreTraining, DataCollatorForLanguageModeling, PreTrainedTokenizerBase,
                          get_linear_schedule_with_warmup)

from model_utils.data import Document, cap_source, parse_upsample, read_documents
from model_utils.adapters import add_encoder_adapter, load_delta_for_training, minilm_dir, save_delta
from model_utils.inputs import clip_cell
from model_utils.devices import training_device
from model_utils.knobs import KnobParser, check_ranges, knob
from model_utils.loading import serialized

IS_NEXT, NOT_NEXT = 0, 1  # BERT's convention for next_sentence_label
# A "sentence" longer than this (text without end punctuation) is cut before tokenizing: no sequence
# uses more than a few hundred tokens, and tokenizing a 10 MB run would take seconds and a GB.
MAX_SENTENCE_CHARS = 4000


@dataclass
class PretrainArguments:
    """Every knob of a pretraining run; shared by the CLI and the UI."""

    train_file: str = field(default="data/pretrain_train.jsonl", metadata={"help": "documents (.jsonl from model_utils.data)"})
    eval_file: str = field(default="data/pretrain_eval.jsonl", metadata={"help": "held-out documents"})
    base_model: str = field(default="minilm", metadata={"help": "'minilm' (the packaged encoder) or a checkpoint folder"})
    output_dir: str = field(default="runs/pretrain", metadata={"help": "where checkpoints and the log go"})
    max_steps: int = knob(2000, 1, 1_000_000, help="optimizer steps")
    batch_size: int = knob(32, 1, 256, help="sequences per step")
    learning_rate: float = knob(5e-4, 1e-7, 1.0, help="peak learning rate (linear warmup and decay)")
    warmup_ratio: float = field(default=0.06, metadata={"help": "share of steps spent warming up"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    max_seq_length: int = knob(128, 16, 512, help="tokens per sequence, [CLS] and [SEP]s included")
    mlm_probability: float = knob(0.15, 0.01, 0.5, help="share of tokens selected for MLM")
    nsp: bool = knob(True, help="train next-sentence prediction too")
    nsp_same_document: float = knob(0.1, 0.0, 1.0, help="share of NotNext pairs whose B is a non-adjacent sentence of the "
                                     "same document (the rest: another document of the same source)")
    wordnet_share: float = knob(1.0, 0.0, 1.0, help="most share of WordNet documents in the training and held-out "
                                "documents (1: no cap)")
    upsample: str = field(default="", metadata={"help": "extra passes over the training examples of some sources, "
                                                      "e.g. 'botchan=3,chat=3' (each pass draws new negatives)"})
    init_from: str = field(default="", metadata={"help": "bundled model whose adapter and heads start the run "
                                                          "(continued pretraining), e.g. bundled:minilm-pretrained"})
    lora_rank: int = field(default=32, metadata={"help": "LoRA rank on the encoder; 0 trains the encoder in full"})
    lora_alpha: int = field(default=64, metadata={"help": "LoRA scaling numerator"})
    eval_every: int = field(default=250, metadata={"help": "evaluate every N steps (0: only at the end)"})
    eval_examples: int = field(default=2000, metadata={"help": "held-out sequences per evaluation"})
    save_every: int = field(default=500, metadata={"help": "write a resumable checkpoint every N steps"})
    seed: int = field(default=42, metadata={"help": "seed for pairs, masking, dropout and order"})
    resume: bool = field(default=True, metadata={"help": "continue from output_dir/last if it exists"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0: torch's default)"})
    bf16: bool = field(default=False, metadata={"help": "bfloat16 autocast for the training forward (CPU or GPU)"})
    micro_batches: int = field(default=4, metadata={"help": "length-sorted parts per batch, each padded to its own longest"})

    def __post_init__(self) -> None:
        check_ranges(self)
        parse_upsample(self.upsample)


@dataclass
class Example:
    """One pretraining sequence before masking."""

    input_ids: list[int]
    token_type_ids: list[int]
    next_sentence_label: int  # IS_NEXT / NOT_NEXT, or -100 without NSP


# ---------------------------------------------------------------- examples

def tokenize_documents(docs: Sequence[Document], tokenizer: PreTrainedTokenizerBase) -> list[list[list[int]]]:
    """WordPiece ids (no special tokens) of every sentence of every document."""
    flat = [clip_cell(s, MAX_SENTENCE_CHARS)[0] for d in docs for s in d.sentences]
    ids = tokenizer(flat, add_special_tokens=False, truncation=False)["input_ids"] if flat else []
    out, i = [], 0
    for d in docs:
        out.append([x for x in ids[i:i + len(d.sentences)] if x])
        i += len(d.sentences)
    return out


def pack_pair(tokenizer: PreTrainedTokenizerBase, a: list[int], b: list[int] | None, max_len: int) -> tuple[list[int], list[int]]:
    """``[CLS] a [SEP] b [SEP]`` truncated longest-first to ``max_len``, with segment ids."""
    a, b = list(a), list(b or [])
    budget = max_len - (3 if b else 2)
    while len(a) + len(b) > budget:
        (a if len(a) >= len(b) else b).pop()
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    ids = [cls, *a, sep] + ([*b, sep] if b else [])
    types = [0] * (len(a) + 2) + [1] * (len(b) + 1 if b else 0)
    return ids, types


def build_examples(docs: list[list[list[int]]], tokenizer: PreTrainedTokenizerBase, max_len: int,
                   rng: random.Random, nsp: bool = True, sources: Sequence[str] | None = None,
                   same_document: float = 0.0) -> list[Example]:
    """Sentence-pair examples: B follows A in the same document 50% of the time, else B is a negative.

    Every adjacent pair (A, B) of a multi-sentence document yields one example; with probability
    0.5 B is replaced (label NotNext) by a sentence of another document *of the same source*
    (``sources[i]`` names document i's source; None: one source), so that a change of style is
    no shortcut; with probability ``same_document`` that negative is instead a sentence of A's own
    document that is neither A nor the one after it. A one-sentence document is a single-segment
    MLM-only example (NSP label -100). Without NSP, every sentence is its own single-segment example.
    """
    if not nsp:
        return [Example(*pack_pair(tokenizer, sent, None, max_len), -100) for doc in docs for sent in doc]
    donors = donors_by_source(docs, sources)
    examples = []
    for di, doc in enumerate(docs):
        if len(doc) == 1:
            examples.append(Example(*pack_pair(tokenizer, doc[0], None, max_len), -100))
            continue
        pool = donors[sources[di] if sources else None]
        for si in range(len(doc) - 1):
            second, label = doc[si + 1], IS_NEXT
            if rng.random() < 0.5:
                second, label = negative_sentence(docs, di, si, pool, rng, same_document), NOT_NEXT
            examples.append(Example(*pack_pair(tokenizer, doc[si], second, max_len), label))
    return examples


def donors_by_source(docs: list[list[list[int]]], sources: Sequence[str] | None) -> dict[str | None, list[int]]:
    """Indices of the non-empty documents of each source (key None when there are no sources); a source with a
    single document (one review among glosses) draws its negatives from every document instead."""
    donors: dict[str | None, list[int]] = {}
    for i, doc in enumerate(docs):
        if doc:
            donors.setdefault(sources[i] if sources else None, []).append(i)
    everyone = [i for ix in donors.values() for i in ix]
    if not donors or (len(everyone) < 2 and any(len(doc) > 1 for doc in docs)):
        raise ValueError("Next-sentence prediction needs at least two non-empty documents.")
    return {source: ix if len(ix) >= 2 else everyone for source, ix in donors.items()}


def negative_sentence(docs: list[list[list[int]]], di: int, si: int, pool: list[int], rng: random.Random,
                      same_document: float) -> list[int]:
    """A NotNext segment B for sentence ``si`` of document ``di``: from the same document
    (not A, not the next sentence) with probability ``same_document`` where possible, else from
    another document of ``pool``."""
    doc = docs[di]
    if len(doc) > 2 and rng.random() < same_document:
        return doc[rng.choice([j for j in range(len(doc)) if j not in (si, si + 1)])]
    other = di
    while other == di:
        other = rng.choice(pool)
    return rng.choice(docs[other])


def documents_to_examples(docs: Sequence[Document], tokenizer: PreTrainedTokenizerBase, args: "PretrainArguments",
                          seed: int) -> list[Example]:
    """The examples of ``docs`` as a run with ``args`` builds them (same-source negatives, seeded)."""
    return build_examples(tokenize_documents(docs, tokenizer), tokenizer, args.max_seq_length, random.Random(seed),
                          args.nsp, [d.source for d in docs], args.nsp_same_document)


# ---------------------------------------------------------------- batches

def collate(examples: Sequence[Example], tokenizer: PreTrainedTokenizerBase,
            masker: DataCollatorForLanguageModeling) -> dict[str, torch.Tensor]:
    """Pad a batch to its longest sequence and apply BERT's 80/10/10 masking to 15% of real tokens."""
    width = max(len(e.input_ids) for e in examples)
    pad = tokenizer.pad_token_id
    ids = torch.full((len(examples), width), pad, dtype=torch.long)
    types = torch.zeros_like(ids)
    attention = torch.zeros_like(ids)
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        types[i, :n] = torch.tensor(e.token_type_ids)
        attention[i, :n] = 1
    special = torch.tensor([tokenizer.get_special_tokens_mask(row, already_has_special_tokens=True)
                            for row in ids.tolist()], dtype=torch.bool) | (attention == 0)
    inputs, labels = masker.torch_mask_tokens(ids.clone(), special_tokens_mask=special)
    return {"input_ids": inputs, "token_type_ids": types, "attention_mask": attention, "labels": labels,
            "next_sentence_label": torch.tensor([e.next_sentence_label for e in examples])}


def make_masker(tokenizer: PreTrainedTokenizerBase, mlm_probability: float, seed: int) -> DataCollatorForLanguageModeling:
    """transformers' own MLM masking rule (80% [MASK], 10% random, 10% unchanged), seeded."""
    masker = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability, seed=seed)
    masker.create_rng("pt")  # otherwise made lazily on the first __call__, which we bypass
    return masker


def batches(examples: list[Example], batch_size: int, rng: random.Random) -> Iterator[list[Example]]:
    """Endless shuffled batches (a new order every epoch); all the examples in each batch when there are
    fewer than ``batch_size`` (a few pasted paragraphs), rather than none at all."""
    order = list(range(len(examples)))
    size = min(batch_size, len(order))
    while True:
        rng.shuffle(order)
        for i in range(0, len(order) - size + 1, size):
            yield [examples[j] for j in order[i:i + size]]


# ---------------------------------------------------------------- model and loss

def pretraining_losses(model: BertForPreTraining, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """MLM and NSP losses, projecting to the vocabulary only at the selected positions.

    Returns ``mlm_loss``, ``nsp_loss`` (0 when the batch has no NSP labels), ``loss`` (their sum),
    plus ``mlm_correct``/``mlm_count`` and ``nsp_correct``/``nsp_count`` for accuracy.
    """
    bert = model.bert
    out = bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
               token_type_ids=batch["token_type_ids"])
    labels = batch["labels"]
    selected = labels != -100
    logits = model.cls.predictions(out.last_hidden_state[selected])
    targets = labels[selected]
    mlm_loss = F.cross_entropy(logits, targets) if targets.numel() else logits.sum() * 0
    result = {"mlm_loss": mlm_loss, "mlm_correct": (logits.argmax(-1) == targets).sum(),
              "mlm_count": torch.tensor(targets.numel())}
    nsp_labels = batch["next_sentence_label"]
    has_nsp = nsp_labels != -100
    if has_nsp.any():
        nsp_logits = model.cls.seq_relationship(out.pooler_output[has_nsp])
        nsp_loss = F.cross_entropy(nsp_logits, nsp_labels[has_nsp])
        result.update(nsp_correct=(nsp_logits.argmax(-1) == nsp_labels[has_nsp]).sum(),
                      nsp_count=has_nsp.sum())
    else:
        nsp_loss = mlm_loss * 0
        result.update(nsp_correct=torch.tensor(0), nsp_count=torch.tensor(0))
    result.update(nsp_loss=nsp_loss, loss=mlm_loss + nsp_loss)
    return result


def _trimmed(batch: dict[str, torch.Tensor], rows: torch.Tensor) -> dict[str, torch.Tensor]:
    """The ``rows`` of a batch, cut to the longest of them (less padding to compute)."""
    part = {k: v[rows] for k, v in batch.items()}
    width = int(part["attention_mask"].sum(1).max())
    return {k: v[:, :width] if v.dim() == 2 else v for k, v in part.items()}


def pretraining_step(model: BertForPreTraining, batch: dict[str, torch.Tensor], micro_batches: int = 1,
                     bf16: bool = False) -> dict[str, float]:
    """Forward and backward of one batch; returns its ``loss``, ``mlm_loss``, ``nsp_loss``, ``mlm_accuracy``.

    The batch is sorted by length and cut into ``micro_batches`` parts, each padded only to its own
    longest sequence; each part's loss is weighted by its share of the batch's masked tokens and
    NSP pairs, so the gradient is the whole batch's (up to dropout and rounding).
    """
    order = batch["attention_mask"].sum(1).argsort(descending=True)
    mlm_total = max(int((batch["labels"] != -100).sum()), 1)
    nsp_total = max(int((batch["next_sentence_label"] != -100).sum()), 1)
    mlm_loss = nsp_loss = 0.0
    correct = 0
    device_type = batch["input_ids"].device.type
    for rows in order.chunk(max(1, micro_batches)):
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            part = pretraining_losses(model, _trimmed(batch, rows))
        mlm_part = part["mlm_loss"].float() * int(part["mlm_count"]) / mlm_total
        nsp_part = part["nsp_loss"].float() * int(part["nsp_count"]) / nsp_total
        (mlm_part + nsp_part).backward()
        mlm_loss += float(mlm_part.detach())
        nsp_loss += float(nsp_part.detach())
        correct += int(part["mlm_correct"])
    return {"loss": mlm_loss + nsp_loss, "mlm_loss": mlm_loss, "nsp_loss": nsp_loss,
            "mlm_accuracy": correct / mlm_total}


@torch.inference_mode()
def evaluate(model: BertForPreTraining, eval_batches: Sequence[dict[str, torch.Tensor]]) -> dict[str, float]:
    """Held-out MLM loss/top-1 accuracy/perplexity and NSP loss/accuracy (fixed masks)."""
    was_training = model.training
    model.eval()
    sums = {"mlm_loss": 0.0, "nsp_loss": 0.0, "mlm_correct": 0, "mlm_count": 0, "nsp_correct": 0, "nsp_count": 0}
    device = next(model.parameters()).device
    for batch in eval_batches:
        r = pretraining_losses(model, {k: v.to(device) for k, v in batch.items()})
        sums["mlm_loss"] += float(r["mlm_loss"]) * int(r["mlm_count"])
        sums["nsp_loss"] += float(r["nsp_loss"]) * int(r["nsp_count"])
        for k in ("mlm_correct", "mlm_count", "nsp_correct", "nsp_count"):
            sums[k] += int(r[k])
    model.train(was_training)
    mlm_loss = sums["mlm_loss"] / max(sums["mlm_count"], 1)
    metrics = {"mlm_loss": mlm_loss, "mlm_accuracy": sums["mlm_correct"] / max(sums["mlm_count"], 1),
               "perplexity": math.exp(min(mlm_loss, 50.0)), "masked_tokens": sums["mlm_count"]}
    if sums["nsp_count"]:
        metrics.update(nsp_loss=sums["nsp_loss"] / sums["nsp_count"],
                       nsp_accuracy=sums["nsp_correct"] / sums["nsp_count"], nsp_pairs=sums["nsp_count"])
    return metrics


# ---------------------------------------------------------------- adapter, delta, checkpoints

@serialized
def load_base(base_model: str) -> tuple[BertForPreTraining, PreTrainedTokenizerBase]:
    """A ``BertForPreTraining`` to continue from: the packaged MiniLM (new heads) or a checkpoint folder."""
    from transformers import AutoTokenizer

    if base_model.startswith("bundled:"):
        from model_utils.bundled import load_bundled

        return load_bundled(base_model, "pretraining")
    path = minilm_dir() if base_model == "minilm" else Path(base_model)
    model = BertForPreTraining.from_pretrained(str(path), use_safetensors=True)
    return model, AutoTokenizer.from_pretrained(str(path))


def save_checkpoint(path: Path, model, optimizer, scheduler, masker, step: int, log: list[dict]) -> None:
    """Atomically write a resumable checkpoint (delta + optimizer + RNG states) to ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    save_delta(model, tmp)
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(), "masker_rng": masker.generator.get_state()},
               tmp / "trainer_state.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, "log": log}))
    if path.exists():
        import shutil

        shutil.rmtree(path)
    tmp.rename(path)


def artifact_of(name: str) -> Path:
    """The delta folder of a bundled model name, or ``name`` itself as a folder."""
    if name.startswith("bundled:"):
        from model_utils.bundled import artifact_dir

        return artifact_dir(name)
    return Path(name)


def load_checkpoint(path: Path, model, optimizer, scheduler, masker) -> tuple[int, list[dict]]:
    """Restore a checkpoint written by :func:`save_checkpoint`; returns ``(step, log)``."""
    load_delta_for_training(model, path)
    state = torch.load(path / "trainer_state.pt", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    masker.generator.set_state(state["masker_rng"])
    info = json.loads((path / "state.json").read_text())
    return info["step"], info["log"]


# ---------------------------------------------------------------- training loop

def make_optimizer(model: torch.nn.Module, args: PretrainArguments, total_steps: int):
    """AdamW over the trainable parameters (no decay on biases and LayerNorms) + linear schedule."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "LayerNorm" in name else decay).append(p)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=args.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(args.warmup_ratio * total_steps), total_steps)
    return optimizer, scheduler


def heldout_batches(docs: list[Document], tokenizer, args: PretrainArguments) -> list[dict[str, torch.Tensor]]:
    """Fixed, pre-masked evaluation batches (same pairs and masks for every evaluation)."""
    docs = cap_source(docs, "wordnet", args.wordnet_share, random.Random(args.seed + 1))
    held_out = documents_to_examples(docs, tokenizer, args, args.seed + 1)
    random.Random(args.seed + 2).shuffle(held_out)
    held_out = held_out[:args.eval_examples]
    eval_masker = make_masker(tokenizer, args.mlm_probability, args.seed + 3)
    return [collate(held_out[i:i + 64], tokenizer, eval_masker) for i in range(0, len(held_out), 64)]


def prepare_examples(args: PretrainArguments, tokenizer, train_docs: list[Document], eval_docs: list[Document]):
    """Training examples and fixed, pre-masked evaluation batches."""
    train_docs = cap_source(train_docs, "wordnet", args.wordnet_share, random.Random(args.seed))
    train = documents_to_examples(train_docs, tokenizer, args, args.seed)
    for source, passes in parse_upsample(args.upsample).items():
        own = [d for d in train_docs if d.source == source]
        for k in range(1, passes):  # same-source negatives, so the source's documents alone suffice
            train += documents_to_examples(own, tokenizer, args, args.seed + 1000 * k)
    eval_batches = heldout_batches(eval_docs, tokenizer, args)
    if not train or not eval_batches:
        raise ValueError("Not enough text: need sentences for both training and evaluation.")
    return train, eval_batches


def train(args: PretrainArguments, train_docs: list[Document] | None = None, eval_docs: list[Document] | None = None,
          on_event: Callable[[dict], None] | None = None, should_stop: Callable[[], bool] | None = None,
          model_and_tokenizer=None) -> dict:
    """Run (or resume) continued pretraining; returns ``{"metrics", "log", "steps", "seconds", "output"}``.

    ``on_event`` gets ``{"kind": "train"|"eval", "step", ...}`` dicts (for live charts); ``should_stop``
    is polled every step. The final delta is written to ``output_dir/final``.
    """
    from tqdm.auto import tqdm

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model, tokenizer = model_and_tokenizer or load_base(args.base_model)
    add_encoder_adapter(model, args.lora_rank, args.lora_alpha)
    if args.init_from:
        load_delta_for_training(model, artifact_of(args.init_from))
    device = training_device()
    model.to(device)
    train_docs = train_docs if train_docs is not None else read_documents(Path(args.train_file))
    eval_docs = eval_docs if eval_docs is not None else read_documents(Path(args.eval_file))
    examples, eval_batches = prepare_examples(args, tokenizer, train_docs, eval_docs)
    masker = make_masker(tokenizer, args.mlm_probability, args.seed)
    optimizer, scheduler = make_optimizer(model, args, args.max_steps)
    out = Path(args.output_dir)
    step, log = 0, []
    if args.resume and (out / "last").is_dir():
        step, log = load_checkpoint(out / "last", model, optimizer, scheduler, masker)
    stream = batches(examples, args.batch_size, random.Random(args.seed))
    for _ in range(step):  # replay the data order up to the resumed step
        next(stream)
    model.train()
    emit = on_event or (lambda event: None)
    started = time.perf_counter()
    bar = tqdm(total=args.max_steps, initial=step, desc="pretrain", unit="step")
    while step < args.max_steps and not (should_stop and should_stop()):
        batch = {k: v.to(device) for k, v in collate(next(stream), tokenizer, masker).items()}
        result = pretraining_step(model, batch, args.micro_batches, args.bf16)
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        record = {"kind": "train", "step": step, "total": args.max_steps, **result, "lr": scheduler.get_last_lr()[0]}
        log.append(record)
        emit(record)
        emit({"kind": "progress", "step": step, "total": args.max_steps})
        bar.update(1)
        bar.set_postfix(mlm=f"{record['mlm_loss']:.2f}", nsp=f"{record['nsp_loss']:.2f}")
        if args.eval_every and step % args.eval_every == 0 and step < args.max_steps:
            log.append(_eval_record(model, eval_batches, step, bar))
            emit(log[-1])
        if args.save_every and step % args.save_every == 0 and step < args.max_steps:
            save_checkpoint(out / "last", model, optimizer, scheduler, masker, step, log)
    bar.close()
    seconds = time.perf_counter() - started
    final = _eval_record(model, eval_batches, step, None)
    log.append(final)
    emit(final)
    save_delta(model, out / "final")
    (out / "log.json").write_text(json.dumps({"args": asdict(args), "log": log, "seconds": seconds}, indent=1))
    return {"metrics": final, "log": log, "steps": step, "seconds": seconds, "output": str(out / "final"),
            "model": model, "tokenizer": tokenizer}


def _eval_record(model, eval_batches, step: int, bar) -> dict:
    metrics = evaluate(model, eval_batches)
    if bar is not None:
        bar.write(f"step {step}: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
    return {"kind": "eval", "step": step, **metrics}


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = KnobParser(PretrainArguments)
    (args,) = parser.parse_args_into_dataclasses(args=argv)
    result = train(args)
    print(json.dumps({"steps": result["steps"], "seconds": round(result["seconds"], 1), **result["metrics"]}, indent=2))


if __name__ == "__main__":
    main()
