"""Fine-tune a BERT-family encoder for text classification with the Hugging Face ``Trainer``.

The recipe is the canonical one (``BertForSequenceClassification`` + ``TrainingArguments(
num_train_epochs=3, per_device_train_batch_size=16, per_device_eval_batch_size=16)`` +
``Trainer.train()``), plus dynamic padding, accuracy/macro-F1 and an optional LoRA adapter
(PEFT) for low-memory runs. Every knob is defined once, as dataclasses parsed by
``HfArgumentParser``, and shared by the command line and the UI.

:func:`run` is the whole job (check the checkpoint name, train, optionally train the same
architecture from scratch for comparison, save atomically into the checkpoints directory with a
model card and the training log); it reports progress through ``on_event`` and polls
``should_stop``, so :mod:`model_utils.jobs` can run it in the background for the UI.

Command line: ``python -m model_utils.finetune --help``; the same entry point runs under
``torchrun --nproc_per_node N`` or ``accelerate launch`` (the Trainer's DDP; rank 0 saves).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                          TrainerCallback, TrainingArguments, set_seed)

from model_utils import registry
from model_utils import duration
from model_utils.adapters import add_encoder_adapter, merge_adapter, minilm_dir, save_delta
from model_utils.delta_checkpoints import (delta_base, delta_base_of, estimate_checkpoint_bytes, is_delta_checkpoint,
                                           load_delta_checkpoint, save_delta_checkpoint)
from model_utils.checkpoints import (atomic_checkpoint, check_budget, check_name, checkpoint_path, ensure_new,
                                     free_name, release_name, reserve_name, reserved_names)
from model_utils.devices import training_device
from model_utils.duration import Estimate, Workload
from model_utils.data import stable_bucket
from model_utils.inputs import clip_cell, fit_pairs, model_token_limit
from model_utils.loading import hub_location, pretrained_kwargs, serialized
from model_utils.errors import UserError, define
from model_utils.knobs import KnobParser, check_ranges, check_values, knob
from model_utils.tables import Limits, classification_metrics, read_table, require_columns
from model_utils.registry import LOCAL_PREFIX

# Dynamic padding to a multiple of 16: few distinct shapes, so CPU kernels (oneDNN) and GPU tensor
# cores are not re-planned for every new batch length.
PAD_MULTIPLE = 16
FOLDER_PREFIXES = ("/", "./", "../", "~/")  # how a base model given as a folder path starts (command line)

define({
    "finetune.one_class": "Need at least two classes; the label column has {count}: {values}.",
    "finetune.too_many_labels": "The label column has {count} distinct values (limit {limit}); is it really the "
                                "label column?",
    "finetune.no_usable_rows": "Every row has an empty {text!r} or {label!r}; nothing to train on.",
    "finetune.split_empty": "Need rows for both training ({train}) and validation ({validation}); add rows or change "
                            "the split.",
    "finetune.unseen_labels": "Validation labels not seen in training: {labels}.",
    "finetune.delta_base_offline": "Could not rebuild the base model from its saved delta: its own base {base} is not "
                                   "in the local cache while the Hub is unreachable.",
    "finetune.base_unloadable": "Could not load the base model {name!r} ({why}); it needs safetensors weights and a "
                                "tokenizer.",
    "finetune.not_classifiable": "{name!r} cannot be fine-tuned for classification: {detail}",
    "finetune.lora_bert_only": "LoRA fine-tuning supports BERT-family encoders only; set the LoRA rank to 0.",
})


@dataclass
class DataArguments:
    """Where the examples come from and how they are read."""

    train_file: str = field(default="", metadata={"help": "CSV, TSV or JSONL file (default: the bundled sentiment sample)"})
    validation_file: str = field(default="", metadata={"help": "optional separate validation file"})
    text_column: str = field(default="text", metadata={"help": "column with the text"})
    text_pair_column: str = field(default="", metadata={"help": "optional column with a second text"})
    label_column: str = field(default="label", metadata={"help": "column with the label (string or integer)"})
    split_column: str = field(default="split", metadata={"help": "column whose 'test'/'validation' rows are the validation set, if present"})
    validation_percent: int = field(default=10, metadata={"help": "held-out share when there is no validation file or split column"})
    max_length: int = knob(128, 8, 512, help="tokens per example (longer ones are cut)")
    max_train_rows: int = knob(0, 0, 10_000_000, help="train on at most this many rows, drawn at random in the "
                                                   "labels' proportions (0: every row)")
    max_validation_rows: int = knob(0, 0, 10_000_000, help="validate on at most this many rows, drawn the same way "
                                                         "(0: every row)")
    max_rows: int = field(default=200_000, metadata={"help": "refuse files with more rows"})
    max_labels: int = field(default=100, metadata={"help": "refuse label columns with more distinct values"})

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass
class ModelArguments:
    """What is fine-tuned, and how."""

    base_model: str = field(default="", metadata={"help": "a bundled:/local: name, a Hub id, 'minilm' (the packaged "
                                                          "encoder) or a checkpoint folder (/path or ./path); default: the settings' "
                                                          "fine-tune base (bundled:minilm-pretrained offline)"})
    lora_rank: int = knob(0, 0, 256, help="LoRA rank over the encoder (0: train all weights)")
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator"})
    from_scratch: bool = field(default=False, metadata={"help": "random initialisation of the same architecture"})
    compare_from_scratch: bool = knob(False, help="also train the same recipe from a random initialisation, to "
                                                   "compare validation curves")
    checkpoint_name: str = field(default="", metadata={"help": "save as local:<name> in the checkpoints directory "
                                                               "(atomic, never overwrites); default: output_dir/final"})

    def __post_init__(self) -> None:
        check_ranges(self)


def default_train_file() -> Path:
    """The bundled movie-review sentiment sample (text,label,split)."""
    from model_utils.bundled import SAMPLE_SENTIMENT_CSV

    return SAMPLE_SENTIMENT_CSV


def split_rows(rows: list[dict[str, str]], data: DataArguments) -> tuple[list[dict], list[dict]]:
    """Train/validation rows: a validation file, else the split column, else a stable hash split."""
    if data.validation_file:
        return rows, read_table(Path(data.validation_file), file_limits(data))[1]
    if rows and data.split_column in rows[0]:
        held = {"test", "validation", "valid", "dev", "eval"}
        return ([r for r in rows if r[data.split_column].strip().lower() not in held],
                [r for r in rows if r[data.split_column].strip().lower() in held])
    train, valid = [], []
    for i, r in enumerate(rows):
        key = f"{i}:{r.get(data.text_column, '')}"
        (valid if stable_bucket(key) < data.validation_percent else train).append(r)
    return train, valid


def clean_rows(rows: list[dict[str, str]], data: DataArguments) -> tuple[list[dict], int]:
    """Keep rows with a non-empty text and label; returns ``(rows, skipped)``."""
    if rows:
        require_columns(list(rows[0]), data.text_column, data.label_column)
    kept = [r for r in rows if (r.get(data.text_column) or "").strip() and (r.get(data.label_column) or "").strip()]
    return kept, len(rows) - len(kept)


def label_names(rows: Sequence[dict[str, str]], data: DataArguments) -> list[str]:
    """Sorted distinct labels (integers sorted numerically); at least 2, at most ``max_labels``."""
    values = {r[data.label_column].strip() for r in rows}
    if len(values) < 2:
        raise UserError("finetune.one_class", count=len(values), values=str(sorted(values))[:200])
    if len(values) > data.max_labels:
        raise UserError("finetune.too_many_labels", count=len(values), limit=data.max_labels)
    numeric = all(v.lstrip("-").isdigit() for v in values)
    return sorted(values, key=int) if numeric else sorted(values)


def file_limits(data: DataArguments) -> Limits:
    """How much of a file the command line reads: ``data.max_rows`` rows (the app reads uploads under
    the upload limits instead)."""
    return Limits(max_bytes=2**40, max_rows=data.max_rows)


def load_rows(data: DataArguments) -> list[dict[str, str]]:
    """Rows of ``data.train_file`` (the bundled sample when empty), at most ``data.max_rows``."""
    path = Path(data.train_file) if data.train_file else default_train_file()
    return read_table(path, file_limits(data))[1]


@dataclass
class PreparedData:
    """Cleaned training and validation rows with their label names."""

    train_rows: list[dict[str, str]]
    valid_rows: list[dict[str, str]]
    labels: list[str]  # sorted label names; index = class id
    skipped: int  # rows dropped for an empty text or label
    available_train: int = 0  # training rows before max_train_rows drew from them
    available_validation: int = 0  # validation rows before max_validation_rows drew from them


def draw_rows(rows: list[dict[str, str]], limit: int, label_column: str, seed: int = 0) -> list[dict[str, str]]:
    """At most ``limit`` of ``rows`` (all when ``limit`` is 0 or more than there are), drawn at random but
    reproducibly, each label keeping its share (largest remainders), in a shuffled order: the first rows
    of a file sorted by label are not all of one label."""
    if not limit or limit >= len(rows):
        return list(rows)
    rng = random.Random(seed)
    groups: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        groups.setdefault(row[label_column].strip(), []).append(row)
    shares = {label: limit * len(group) / len(rows) for label, group in groups.items()}
    counts = {label: int(share) for label, share in shares.items()}
    by_remainder = sorted(shares, key=lambda label: (counts[label] - shares[label], label))
    for label in by_remainder[:limit - sum(counts.values())]:
        counts[label] += 1
    drawn = [row for label in sorted(groups) for row in rng.sample(groups[label], counts[label])]
    rng.shuffle(drawn)
    return drawn


def prepare_data(rows: list[dict[str, str]], data: DataArguments) -> PreparedData:
    """Clean, split and label-map ``rows``; ValueError with a clear message when they cannot be trained on."""
    if not rows:
        raise UserError("table.no_rows")
    rows, skipped = clean_rows(rows, data)
    if not rows:
        raise UserError("finetune.no_usable_rows", text=data.text_column, label=data.label_column)
    train_rows, valid_rows = split_rows(rows, data)
    if data.validation_file:
        valid_rows, valid_skipped = clean_rows(valid_rows, data)
        skipped += valid_skipped
    if not train_rows or not valid_rows:
        raise UserError("finetune.split_empty", train=len(train_rows), validation=len(valid_rows))
    labels = label_names(train_rows, data)
    unknown = {r[data.label_column].strip() for r in valid_rows} - set(labels)
    if unknown:
        raise UserError("finetune.unseen_labels", labels=str(sorted(unknown)[:5]))
    drawn_train = draw_rows(train_rows, data.max_train_rows, data.label_column)
    drawn_valid = draw_rows(valid_rows, data.max_validation_rows, data.label_column, seed=1)
    label_names(drawn_train, data)  # so few rows drawn that one label is left: refused as such
    return PreparedData(drawn_train, drawn_valid, labels, skipped, len(train_rows), len(valid_rows))


class Encoded(torch.utils.data.Dataset):
    """Tokenised examples (no padding: the collator pads each batch to its longest)."""

    def __init__(self, rows: Sequence[dict[str, str]], tokenizer, data: DataArguments, label2id: dict[str, int],
                 limit: int):
        texts = [clip_cell(r[data.text_column])[0] for r in rows]
        pairs = [clip_cell(r.get(data.text_pair_column) or "")[0] or None for r in rows] if data.text_pair_column \
            else [None] * len(rows)
        fitted = fit_pairs(tokenizer, texts, pairs, limit)  # each side cut on its own ids: linear
        firsts = [f.first for f in fitted]
        seconds = [f.second or "" for f in fitted] if data.text_pair_column else None
        self.features = tokenizer(firsts, seconds, truncation=True, max_length=limit)
        self.labels = [label2id[r[data.label_column].strip()] for r in rows]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        item = {k: v[i] for k, v in self.features.items()}
        item["labels"] = self.labels[i]
        return item


def compute_metrics(eval_pred) -> dict[str, float]:
    """Accuracy and macro-F1 from ``(logits, labels)`` (the Trainer's evaluation hook)."""
    logits, labels = eval_pred
    predicted = np.asarray(logits).argmax(-1)
    names = sorted(set(np.asarray(labels).tolist()) | set(predicted.tolist()))
    metrics = classification_metrics(np.asarray(labels).tolist(), predicted.tolist(), names)
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}


def resolve_base(name: str) -> tuple[str, str]:
    """``(source, location)`` of a base model: ``minilm``, a bundled:/local: name, a Hub id or a folder.

    Names go through the registry (ValueError with a clear message for unknown or invalid ones); a
    folder is accepted only as an explicit path (``/...``, ``./...``, ``../...``, ``~/...``) that exists:
    command-line use, as the app's own model pickers refuse paths. ``org/name`` is always a Hub id, even
    if a folder of that name exists here.
    """
    name = (name or "").strip() or default_base_model()
    if name == "minilm":
        return "folder", str(minilm_dir())
    if name.startswith(FOLDER_PREFIXES) and Path(name).expanduser().is_dir():
        return "folder", str(Path(name).expanduser())
    info = registry.resolve(name)
    return info.source, info.location


def default_base_model() -> str:
    """The fine-tune base when none is given (the bundled pretrained encoder while offline)."""
    return registry.default_checkpoint("fine-tune-base")


def _bundled_classifier(name: str, id2label: dict[int, str]):
    """A ``BertForSequenceClassification`` over a bundled encoder, with a new classifier for ``id2label``."""
    from transformers import BertForSequenceClassification

    from model_utils.bundled import load_bundled

    try:
        encoder, tokenizer = load_bundled(name, "base")
    except FileNotFoundError as err:
        raise UserError("model.bundled_missing", name=name, detail=str(err)) from err
    config = copy.deepcopy(encoder.config)
    config.update({"id2label": id2label, "label2id": {v: k for k, v in id2label.items()},
                   "architectures": ["BertForSequenceClassification"]})
    model = BertForSequenceClassification(config)
    model.bert = encoder
    return model, tokenizer


@serialized
def _pretrained_classifier(source: str, location: str, id2label: dict[int, str]):
    """A sequence classifier from a Hub id or a folder, with a new head sized for ``id2label``."""
    from model_utils.config import hub_offline
    local_only = source != "hub" or hub_offline()
    labels = {"num_labels": len(id2label), "id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}
    if source == "local" and is_delta_checkpoint(location):
        try:
            model, tokenizer, _ = load_delta_checkpoint(location, AutoModelForSequenceClassification,
                                                        local_only=hub_offline(), config_overrides=labels)
        except OSError as err:
            raise UserError("finetune.delta_base_offline", base=delta_base_of(location)) from err
        return model, tokenizer
    try:
        location = hub_location(location, local_only) if source == "hub" else location
        tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=local_only, trust_remote_code=False)
        model = AutoModelForSequenceClassification.from_pretrained(
            location, num_labels=len(id2label), id2label=id2label, label2id={v: k for k, v in id2label.items()},
            ignore_mismatched_sizes=True, **pretrained_kwargs(local_only))
    except OSError as err:
        where = "the Hub is unreachable and it is not in the local cache" if source == "hub" and local_only else err
        raise UserError("finetune.base_unloadable", name=location, why=str(where)[:300]) from err
    except ValueError as err:
        raise UserError("finetune.not_classifiable", name=location, detail=str(err)[:300]) from err
    return model, tokenizer


def load_model(args: ModelArguments, labels: list[str]):
    """A sequence classifier with ``len(labels)`` outputs on top of the chosen base; returns ``(model, tokenizer)``.

    The base's own classification head (if any) is replaced by a new one for ``labels``; with
    ``from_scratch`` every weight is re-initialised (same architecture and tokenizer).
    """
    id2label = dict(enumerate(labels))
    source, location = resolve_base(args.base_model)
    if source == "bundled":
        model, tokenizer = _bundled_classifier(location, id2label)
    else:
        model, tokenizer = _pretrained_classifier(source, location, id2label)
    model.num_labels = len(labels)
    if args.from_scratch:
        model = type(model)(model.config)
    if args.lora_rank:
        if not hasattr(model, "bert"):
            raise UserError("finetune.lora_bert_only")
        add_encoder_adapter(model, args.lora_rank, args.lora_alpha)
    return model, tokenizer


@dataclass
class RecipeArguments(TrainingArguments):
    """The ``Trainer``'s arguments with BERT's fine-tuning recipe as defaults (3 epochs, batch size 16),
    mixed precision on GPUs, and the range of every knob the app exposes (checked here and in the form)."""

    output_dir: str = field(default="runs/finetune", metadata={"help": "where the Trainer writes its files"})
    num_train_epochs: float = knob(3.0, 0.01, 100, help="passes over the training rows")
    per_device_train_batch_size: int = knob(16, 1, 512, help="examples per optimisation step (per device)")
    per_device_eval_batch_size: int = knob(16, 1, 512, help="examples per evaluation batch (per device)")
    learning_rate: float = knob(5e-5, 1e-7, 1.0, help="peak learning rate (AdamW, linear decay)")
    warmup_steps: float = knob(0.0, 0, 1_000_000, help="warm-up: a share of the steps below 1, else a count")
    weight_decay: float = knob(0.0, 0, 1, help="AdamW weight decay")
    max_steps: int = knob(-1, -1, 1_000_000, help="stop after this many steps (-1: run every epoch)")
    seed: int = knob(42, 0, 2**32 - 1, help="seed of the new head, the data order and dropout")
    eval_strategy: str = field(default="epoch", metadata={"help": "when to evaluate: no, steps or epoch"})
    save_strategy: str = field(default="no", metadata={"help": "the Trainer's own checkpoints (the model is saved at the end)"})
    logging_steps: float = field(default=10, metadata={"help": "log the training loss every N steps (a share below 1)"})
    report_to: str = field(default="none", metadata={"help": "experiment trackers to report to"})
    mixed_precision: str = field(default="auto", metadata={"help": "auto: bf16 (or fp16) on GPUs, fp32 on CPU; no"})

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.mixed_precision == "auto" and not (self.bf16 or self.fp16):
            for flag, value in precision_flags().items():
                setattr(self, flag, value)
        super().__post_init__()


def precision_flags() -> dict[str, bool]:
    """Mixed precision for the Trainer: bf16 on GPUs that support it, else fp16 on GPU, none on CPU."""
    if not torch.cuda.is_available():
        return {}
    return {"bf16": True} if torch.cuda.is_bf16_supported() else {"fp16": True}


def build_training_arguments(output_dir: str, **overrides) -> RecipeArguments:
    """The recipe's ``TrainingArguments`` in ``output_dir``, ``overrides`` applied (build it inside the job:
    building it resets accelerate's process-wide state)."""
    return RecipeArguments(output_dir=output_dir, **overrides)


class EventCallback(TrainerCallback):
    """Forward the Trainer's progress to ``on_event`` dicts and stop when ``should_stop()`` says so.

    Events: ``{"kind": "progress", "step", "total"}`` after each step, ``{"kind": "train", "step",
    "loss", "epoch"}`` at each log, ``{"kind": "eval", "step", "accuracy", "macro_f1", "loss"}`` after
    each evaluation; each also carries ``"run"`` (e.g. "pretrained" or "scratch").
    """

    def __init__(self, on_event: Callable[[dict], None] | None, should_stop: Callable[[], bool] | None,
                 run: str = "pretrained"):
        self.on_event = on_event or (lambda event: None)
        self.should_stop = should_stop or (lambda: False)
        self.run = run
        self.stopped = False

    def _check(self, control):
        if self.should_stop():
            self.stopped = True
            control.should_training_stop = True
            control.should_evaluate = False
        return control

    def on_step_end(self, args, state, control, **kwargs):
        self.on_event({"kind": "progress", "run": self.run, "step": state.global_step, "total": state.max_steps})
        return self._check(control)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" in logs:
            self.on_event({"kind": "train", "run": self.run, "step": state.global_step,
                           "loss": float(logs["loss"]), "epoch": float(logs.get("epoch") or 0)})
        if "eval_accuracy" in logs:
            self.on_event({"kind": "eval", "run": self.run, "step": state.global_step,
                           "accuracy": float(logs["eval_accuracy"]), "macro_f1": float(logs["eval_macro_f1"]),
                           "loss": float(logs.get("eval_loss", float("nan"))), "epoch": float(logs.get("epoch") or 0)})
        return self._check(control)


def _phase(callbacks: Sequence[Any], phase: str) -> None:
    """Tell the job's followers what it is doing now (through its EventCallback)."""
    for callback in callbacks:
        if isinstance(callback, EventCallback):
            callback.on_event({"kind": "phase", "phase": phase, "run": callback.run})


def evaluate_predictions(trainer: Trainer, dataset: Encoded, labels: list[str]) -> dict:
    """Accuracy, macro-F1, per-label figures and the confusion matrix on ``dataset`` (plain data)."""
    output = trainer.predict(dataset)
    predicted = np.asarray(output.predictions).argmax(-1)
    return classification_metrics([labels[i] for i in dataset.labels], [labels[i] for i in predicted], labels)


def finetune(data: DataArguments, model_args: ModelArguments, training: TrainingArguments, callbacks=(),
             rows: list[dict[str, str]] | None = None, prepared: PreparedData | None = None) -> dict:
    """Train and evaluate one model; returns ``{"metrics", "evaluation", "log", "seconds", "trainer", ...}``.

    ``rows`` (already read, e.g. an upload checked against the app's limits) or ``prepared`` replace
    reading ``data.train_file``. A callback that stops training makes ``"stopped"`` true.
    """
    prepared = prepared or prepare_data(rows if rows is not None else load_rows(data), data)
    labels = prepared.labels
    set_seed(training.seed)  # the new head (and a from-scratch model) start the same way each run
    _phase(callbacks, "loading")
    model, tokenizer = load_model(model_args, labels)
    _phase(callbacks, "tokenizing")
    label2id = {v: k for k, v in enumerate(labels)}
    limit = model_token_limit(model.config, tokenizer, data.max_length)  # max_length, or what the model takes
    valid = Encoded(prepared.valid_rows, tokenizer, data, label2id, limit)
    trainer = Trainer(model=model, args=training, train_dataset=Encoded(prepared.train_rows, tokenizer, data, label2id,
                                                                        limit),
                      eval_dataset=valid, processing_class=tokenizer,
                      data_collator=DataCollatorWithPadding(tokenizer, pad_to_multiple_of=PAD_MULTIPLE), compute_metrics=compute_metrics,
                      callbacks=list(callbacks))
    started = time.perf_counter()
    _phase(callbacks, "training")
    trainer.train()
    seconds = time.perf_counter() - started
    stopped = any(getattr(c, "stopped", False) for c in callbacks)
    if not stopped:
        _phase(callbacks, "evaluating")
    evaluation = None if stopped else evaluate_predictions(trainer, valid, labels)  # a stop must end fast
    if evaluation is not None:
        metrics = {"accuracy": evaluation["accuracy"], "macro_f1": evaluation["macro_f1"]}
    else:  # the last evaluation during training, if any
        evals = [e for e in trainer.state.log_history if "eval_accuracy" in e]
        metrics = {"accuracy": evals[-1]["eval_accuracy"], "macro_f1": evals[-1]["eval_macro_f1"]} if evals else {}
    return {"metrics": metrics, "evaluation": evaluation, "log": trainer.state.log_history, "seconds": seconds,
            "trainer": trainer, "labels": labels, "skipped": prepared.skipped, "stopped": stopped,
            "steps": trainer.state.global_step, "max_steps": trainer.state.max_steps,
            "train_rows": len(prepared.train_rows), "validation_rows": len(prepared.valid_rows)}


def hyperparameters(data: DataArguments, model_args: ModelArguments, training: TrainingArguments) -> dict:
    """The knobs that define a run, for the model card (plain data)."""
    return {"base_model": model_args.base_model or default_base_model(), "from_scratch": model_args.from_scratch,
            "lora_rank": model_args.lora_rank, "num_train_epochs": training.num_train_epochs,
            "max_steps": training.max_steps, "per_device_train_batch_size": training.per_device_train_batch_size,
            "learning_rate": training.learning_rate, "warmup_steps": training.warmup_steps,
            "weight_decay": training.weight_decay, "max_length": data.max_length, "seed": training.seed,
            "precision": "bf16" if training.bf16 else "fp16" if training.fp16 else "fp32",
            "processes": training.world_size}


def model_card(result: dict, data: DataArguments, model_args: ModelArguments, training: TrainingArguments,
               name: str) -> str:
    """Markdown model card: data, hyperparameters, metrics and time of a finished run."""
    source = Path(data.train_file).name if data.train_file else "bundled sample sentiment data"
    params = "\n".join(f"| {k} | {v} |" for k, v in hyperparameters(data, model_args, training).items())
    metrics = "\n".join(f"| {k} | {v:.4f} |" for k, v in result["metrics"].items())
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    stopped = " (stopped by the user; metrics from the last evaluation before the stop)" if result["stopped"] else ""
    return (f"# {name}\n\nText classifier fine-tuned with PLM Playground ({when}).\n\n"
            f"## Data\n\n- source: {source} (text column `{data.text_column}`, label column `{data.label_column}`)\n"
            f"- training rows: {result['train_rows']}, validation rows: {result['validation_rows']}, "
            f"skipped rows (empty text or label): {result['skipped']}\n"
            f"- labels: {', '.join(result['labels'])}\n\n"
            f"## Hyperparameters\n\n| name | value |\n|---|---|\n{params}\n\n"
            f"## Validation metrics\n\n| metric | value |\n|---|---|\n{metrics}\n\n"
            f"## Time\n\n{result['steps']} of {result['max_steps']} optimisation steps in "
            f"{result['seconds']:.1f} s of training{stopped}.\n\n"
            "The training log is in `training_log.json`.\n")


def save_checkpoint(result: dict, name: str, data: DataArguments, model_args: ModelArguments,
                    training: TrainingArguments, root: Path | None = None, owner: str | None = None) -> Path:
    """Write the trained model atomically as checkpoint ``name`` (weights, tokenizer, card, log).

    A LoRA run over a bundled or Hub base is saved as a small delta over that base
    (:mod:`model_utils.delta_checkpoints`), anything else in full. ``owner``: the session that made it
    (None: the command line). ``result["removed"]`` lists checkpoints removed to make room.
    """
    trainer = result["trainer"]
    source, location = resolve_base(model_args.base_model)
    base = None if model_args.from_scratch else delta_base(location, source, trainer.model)
    model = trainer.model if base else merge_adapter(trainer.model)
    card = model_card(result, data, model_args, training, name)
    model.config.plm_description = f"fine-tuned from {hyperparameters(data, model_args, training)['base_model']}"
    result["removed"] = []
    with atomic_checkpoint(name, root, owner=owner, kind="fine-tune", removed=result["removed"]) as tmp:
        if base:
            save_delta_checkpoint(model, trainer.processing_class, tmp, base)
        else:
            model.save_pretrained(str(tmp), safe_serialization=True)
            trainer.processing_class.save_pretrained(str(tmp))
        (tmp / "README.md").write_text(card, encoding="utf-8")
        log = {"log": result["log"], "metrics": result["metrics"], "evaluation": result["evaluation"],
               "seconds": result["seconds"], "hyperparameters": hyperparameters(data, model_args, training)}
        (tmp / "training_log.json").write_text(json.dumps(log, indent=1, default=str), encoding="utf-8")
    return checkpoint_path(name, root)


def expected_bytes(model_args: ModelArguments) -> int:
    """About how large the checkpoint of this run will be (a LoRA delta, or a full copy of the base)."""
    source, location = resolve_base(model_args.base_model)
    delta = bool(model_args.lora_rank) and not model_args.from_scratch and source in ("bundled", "hub")
    return estimate_checkpoint_bytes(source, location, delta)


# Presets of the app's form: knob values (DataArguments and RecipeArguments fields) per training device.
# "quick" finishes in about two minutes on 2 CPU cores (benchmarks/bench_presets.py measures it); "full"
# is the BERT recipe on every row. A GPU does the same in seconds, so its presets train on more.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "cpu": {
        "quick": {"max_train_rows": 800, "max_validation_rows": 200, "num_train_epochs": 3.0,
                  "per_device_train_batch_size": 16, "max_length": 128, "max_steps": -1},
        "full": {"max_train_rows": 0, "max_validation_rows": 0, "num_train_epochs": 3.0,
                 "per_device_train_batch_size": 16, "max_length": 128, "max_steps": -1},
    },
    "gpu": {
        "quick": {"max_train_rows": 4000, "max_validation_rows": 500, "num_train_epochs": 3.0,
                  "per_device_train_batch_size": 32, "max_length": 128, "max_steps": -1},
        "full": {"max_train_rows": 0, "max_validation_rows": 0, "num_train_epochs": 3.0,
                 "per_device_train_batch_size": 32, "max_length": 128, "max_steps": -1},
    },
}


def preset(name: str, device: str | None = None) -> dict[str, Any]:
    """Knob values of preset ``name`` ("quick", "full") for ``device`` (default: the training device)."""
    device = device or training_device().type
    return dict(PRESETS["cpu" if device in ("cpu", "mps") else "gpu"][name])


@dataclass
class Plan:
    """A fine-tuning run checked from end to end before it is queued: nothing is left to refuse."""

    data: DataArguments
    model: ModelArguments
    training: dict[str, Any]  # RecipeArguments values, range-checked (the arguments are built in the job)
    prepared: PreparedData
    workload: Workload | None = None  # what it computes, counted for the time estimate
    requested_name: str = ""  # the checkpoint name asked for, when it was taken and another is used

    def training_arguments(self, output_dir: str) -> RecipeArguments:
        """The Trainer's arguments (build them inside the job: building resets accelerate's state)."""
        return build_training_arguments(output_dir, **self.training)

    def estimate(self) -> Estimate:
        """How long the run should take on this machine."""
        return duration.estimate(self.workload)

    def summary(self) -> dict[str, Any]:
        """What the run will do, as plain data: rows used (of how many), steps, epochs, the time estimate."""
        training, prepared = self.training, self.prepared
        return {"train_rows": len(prepared.train_rows), "available_train_rows": prepared.available_train,
                "validation_rows": len(prepared.valid_rows), "available_validation_rows": prepared.available_validation,
                "steps": self.workload.steps, "epochs": float(training.get("num_train_epochs", 3.0)),
                "max_steps": int(training.get("max_steps", -1)), "batch_size": int(training.get(
                    "per_device_train_batch_size", 16)), "max_length": self.data.max_length,
                "labels": prepared.labels, "checkpoint": self.model.checkpoint_name,
                "requested_name": self.requested_name, "estimate": duration.describe(self.estimate())}

    def release(self) -> None:
        """Withdraw this run's promise of its checkpoint name (it saved, stopped or failed)."""
        if self.model.checkpoint_name:
            release_name(self.model.checkpoint_name)


def training_steps(rows: int, training: dict[str, Any]) -> tuple[int, int]:
    """``(steps, steps per epoch)`` of the Trainer on ``rows`` training rows with these arguments."""
    per_epoch = max(1, math.ceil(rows / int(training.get("per_device_train_batch_size", 16))))
    max_steps = int(training.get("max_steps", -1))
    return (max_steps if max_steps > 0 else math.ceil(float(training.get("num_train_epochs", 3.0)) * per_epoch),
            per_epoch)


def evaluations(steps: int, per_epoch: int, training: dict[str, Any]) -> int:
    """How many times the validation rows are evaluated (during training, and once at the end)."""
    strategy = str(training.get("eval_strategy", "epoch"))
    if strategy == "steps":
        every = float(training.get("eval_steps") or 500)
        every = math.ceil(every * steps) if every < 1 else int(every)
        return steps // max(1, every) + 1
    return (math.ceil(steps / per_epoch) if strategy == "epoch" else 0) + 1


def count_workload(prepared: PreparedData, data: DataArguments, model_args: ModelArguments,
                   training: dict[str, Any]) -> Workload:
    """What a run computes (steps, padded tokens of training and evaluation), counted without a tokenizer."""
    config = duration.base_config(model_args.base_model or default_base_model())
    limit = min(data.max_length, int(config.get("max_position_embeddings") or 512))

    def lengths(rows: list[dict[str, str]]) -> list[int]:
        pair = data.text_pair_column
        return [min(limit, duration.approx_tokens(r.get(data.text_column, "")) + 2
                    + (duration.approx_tokens(r.get(pair) or "") + 1 if pair else 0)) for r in rows]

    batch = int(training.get("per_device_train_batch_size", 16))
    steps, per_epoch = training_steps(len(prepared.train_rows), training)
    epoch_tokens = duration.padded_tokens(lengths(prepared.train_rows), batch)
    train_tokens = round(epoch_tokens * steps / per_epoch)
    eval_tokens = evaluations(steps, per_epoch, training) * duration.padded_tokens(
        lengths(prepared.valid_rows), int(training.get("per_device_eval_batch_size", batch)))
    runs = 2 if model_args.compare_from_scratch else 1  # the from-scratch twin trains the same
    return Workload("fine-tune", duration.encoder_weights(config), steps * runs, train_tokens * runs,
                    eval_tokens * runs, 0.1 if model_args.lora_rank else 1.0)


def plan(rows: list[dict[str, str]], data: dict[str, Any], model: dict[str, Any], training: dict[str, Any],
         reserve: bool = False) -> Plan:
    """Check everything about a run once: knob ranges, the base model, the checkpoint's name and the disk
    budget, the rows (classes, splits); UserError for the first problem. Count what it will compute.

    ``data``, ``model`` and ``training``: field values of DataArguments, ModelArguments and RecipeArguments,
    as a form sends them (checked and converted here; the training arguments are built in the job). A
    checkpoint name that is taken is replaced by the first free ``<name>-2``, ``<name>-3``... (the plan's
    ``requested_name`` keeps the one asked for); ``reserve`` promises that name to this run until
    :meth:`Plan.release`, so that two runs started at once never get the same one.
    """
    data_args = DataArguments(**check_values(DataArguments, data))
    model_args = ModelArguments(**check_values(ModelArguments, model))
    training = check_values(RecipeArguments, training)
    source, _ = resolve_base(model_args.base_model)
    if source == "hub":  # refused now, not after the job waited for its turn
        registry.check_within_reach(registry.resolve(model_args.base_model))
    requested = model_args.checkpoint_name
    if requested:
        check_budget(expected_bytes(model_args))
    prepared = prepare_data(rows, data_args)
    workload = count_workload(prepared, data_args, model_args, training)
    if requested:
        chosen = reserve_name(requested) if reserve else free_name(requested, taken=reserved_names())
        ensure_new(chosen)
        model_args = dataclasses.replace(model_args, checkpoint_name=chosen)
    return Plan(data_args, model_args, training, prepared, workload,
                requested if requested and check_name(requested) != model_args.checkpoint_name else "")


def run(data: DataArguments, model_args: ModelArguments, training: TrainingArguments,
        rows: list[dict[str, str]] | None = None, on_event: Callable[[dict], None] | None = None,
        should_stop: Callable[[], bool] | None = None, owner: str | None = None) -> dict:
    """The whole job from the command line: check the name and the data, then :func:`train_and_save`."""
    if model_args.checkpoint_name:
        ensure_new(model_args.checkpoint_name)  # fail before training, not after
        check_budget(expected_bytes(model_args))
    prepared = prepare_data(rows if rows is not None else load_rows(data), data)
    return train_and_save(data, model_args, training, prepared, on_event, should_stop, owner)


def run_plan(checked: Plan, output_dir: str, on_event: Callable[[dict], None] | None = None,
             should_stop: Callable[[], bool] | None = None, owner: str | None = None) -> dict:
    """The whole job of a :func:`plan` (the app's background job): :func:`train_and_save` in ``output_dir``.
    A run that finishes corrects the time calibration (:func:`model_utils.duration.observe`)."""
    started = time.perf_counter()
    result = train_and_save(checked.data, checked.model, checked.training_arguments(output_dir), checked.prepared,
                            on_event, should_stop, owner)
    if not result["stopped"] and checked.workload is not None:
        duration.observe(checked.workload, time.perf_counter() - started)
    return result


def train_and_save(data: DataArguments, model_args: ModelArguments, training: TrainingArguments,
                   prepared: PreparedData, on_event: Callable[[dict], None] | None = None,
                   should_stop: Callable[[], bool] | None = None, owner: str | None = None) -> dict:
    """Fine-tune, optionally the from-scratch twin, save the checkpoint.

    Returns the :func:`finetune` result plus ``"checkpoint"`` (``local:<name>`` or None) and
    ``"scratch"`` (the from-scratch result, or None). A stopped run still saves what it trained
    (its card says so) but skips the from-scratch twin. Emits ``phase`` events as it goes.
    """
    emit = on_event or (lambda event: None)
    emit({"kind": "data", "train_rows": len(prepared.train_rows), "validation_rows": len(prepared.valid_rows),
          "skipped": prepared.skipped, "labels": prepared.labels})
    result = finetune(data, model_args, training, [EventCallback(on_event, should_stop, "pretrained")],
                      prepared=prepared)
    result["checkpoint"] = None
    if model_args.checkpoint_name and result["trainer"].is_world_process_zero():
        emit({"kind": "phase", "phase": "saving"})
        path = save_checkpoint(result, model_args.checkpoint_name, data, model_args, training, owner=owner)
        result["checkpoint"] = LOCAL_PREFIX + path.name
        emit({"kind": "saved", "checkpoint": result["checkpoint"], "removed": result["removed"]})
    result["scratch"] = None
    if model_args.compare_from_scratch and not result["stopped"]:
        scratch_args = dataclasses.replace(model_args, from_scratch=True, lora_rank=0)
        scratch = finetune(data, scratch_args, training, [EventCallback(on_event, should_stop, "scratch")],
                           prepared=prepared)
        result["scratch"] = {k: v for k, v in scratch.items() if k != "trainer"}
    return result


def summarize(result: dict) -> dict:
    """Plain data of a :func:`run` result (no model): what the UI and the API show."""
    def part(r: dict) -> dict:
        return {"metrics": r["metrics"], "steps": r["steps"], "seconds": r["seconds"], "stopped": r["stopped"]}

    return {"checkpoint": result["checkpoint"], "removed": result.get("removed", []),
            "stopped": result["stopped"], "steps": result["steps"],
            "max_steps": result["max_steps"], "labels": result["labels"], "evaluation": result["evaluation"],
            "train_rows": result["train_rows"], "validation_rows": result["validation_rows"],
            "skipped": result["skipped"], "pretrained": part(result),
            "scratch": part(result["scratch"]) if result["scratch"] else None}


def parse_arguments(argv: list[str] | None = None) -> tuple[DataArguments, ModelArguments, RecipeArguments]:
    """Parse the command line into the three argument dataclasses (their defaults are the recipe's)."""
    parser = KnobParser((DataArguments, ModelArguments, RecipeArguments))
    return parser.parse_args_into_dataclasses(args=list(argv) if argv is not None else sys.argv[1:])


def main(argv: list[str] | None = None) -> None:
    """Command line entry point (also under ``torchrun``/``accelerate launch``): train, then save.

    With ``--checkpoint_name`` the model goes atomically into the checkpoints directory; otherwise
    into ``output_dir/final`` (with ``--lora_rank``, only the LoRA delta, as the bundled models are).
    """
    data, model_args, training = parse_arguments(argv)
    result = run(data, model_args, training)
    if not result["trainer"].is_world_process_zero():
        return
    out = Path(training.output_dir)
    if not model_args.checkpoint_name:
        model = result["trainer"].model
        if model_args.lora_rank:
            save_delta(model, out / "final")
        else:
            model.save_pretrained(str(out / "final"), safe_serialization=True)
            result["trainer"].processing_class.save_pretrained(str(out / "final"))
    summary = {"seconds": round(result["seconds"], 1), "steps": result["steps"], "train_rows": result["train_rows"],
               "validation_rows": result["validation_rows"], "skipped_rows": result["skipped"],
               "checkpoint": result["checkpoint"], **result["metrics"]}
    if result["scratch"]:
        summary["from_scratch"] = result["scratch"]["metrics"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps({"summary": summary, "log": result["log"]}, indent=1))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
