"""Fine-tune a BERT-family encoder for text classification with the Hugging Face ``Trainer``.

The recipe is the canonical one (``BertForSequenceClassification`` + ``TrainingArguments(
num_train_epochs=3, per_device_train_batch_size=16, per_device_eval_batch_size=16)`` +
``Trainer.train()``), plus dynamic padding, accuracy/macro-F1 and an optional LoRA adapter
(PEFT) for low-memory runs. Every knob is defined once, as dataclasses parsed by
``HfArgumentParser``, and shared by the command line and the UI.

Command line: ``python -m model_utils.finetune --help``.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,
                          HfArgumentParser, Trainer, TrainingArguments)

from model_utils.data import stable_bucket

RECIPE_DEFAULTS = {"num_train_epochs": 3.0, "per_device_train_batch_size": 16, "per_device_eval_batch_size": 16,
                   "eval_strategy": "epoch", "save_strategy": "no", "logging_steps": 10, "report_to": "none"}


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
    max_length: int = field(default=128, metadata={"help": "tokens per example"})
    max_rows: int = field(default=200_000, metadata={"help": "refuse files with more rows"})
    max_labels: int = field(default=100, metadata={"help": "refuse label columns with more distinct values"})


@dataclass
class ModelArguments:
    """What is fine-tuned, and how."""

    base_model: str = field(default="minilm", metadata={"help": "'minilm', a bundled:/local: name, or a checkpoint folder"})
    lora_rank: int = field(default=0, metadata={"help": "LoRA rank over the encoder (0: train all weights)"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator"})
    from_scratch: bool = field(default=False, metadata={"help": "random initialisation of the same architecture"})


def read_table(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV, TSV or JSONL file as dicts (clear ValueError for other formats or bad bytes)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path.name} is not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        return [{k: "" if v is None else str(v) for k, v in r.items()} for r in rows]
    if suffix in (".csv", ".tsv"):
        return list(csv.DictReader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ","))
    raise ValueError(f"Unsupported file type {suffix!r}: use .csv, .tsv or .jsonl.")


def default_train_file() -> Path:
    """The bundled movie-review sentiment sample (text,label,split)."""
    from model_utils.bundled import SAMPLE_SENTIMENT_CSV

    return SAMPLE_SENTIMENT_CSV


def split_rows(rows: list[dict[str, str]], data: DataArguments) -> tuple[list[dict], list[dict]]:
    """Train/validation rows: a validation file, else the split column, else a stable hash split."""
    if data.validation_file:
        return rows, read_table(Path(data.validation_file))
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
    if rows and data.text_column not in rows[0]:
        raise ValueError(f"No column {data.text_column!r}; columns are: {', '.join(rows[0])}.")
    if rows and data.label_column not in rows[0]:
        raise ValueError(f"No label column {data.label_column!r}; columns are: {', '.join(rows[0])}.")
    kept = [r for r in rows if (r.get(data.text_column) or "").strip() and (r.get(data.label_column) or "").strip()]
    return kept, len(rows) - len(kept)


def label_names(rows: Sequence[dict[str, str]], data: DataArguments) -> list[str]:
    """Sorted distinct labels (integers sorted numerically); at least 2, at most ``max_labels``."""
    values = {r[data.label_column].strip() for r in rows}
    if len(values) < 2:
        raise ValueError(f"Need at least two classes; the label column has {len(values)}: {sorted(values)}.")
    if len(values) > data.max_labels:
        raise ValueError(f"The label column has {len(values)} distinct values (limit {data.max_labels}); "
                         "is it really the label column?")
    numeric = all(v.lstrip("-").isdigit() for v in values)
    return sorted(values, key=int) if numeric else sorted(values)


class Encoded(torch.utils.data.Dataset):
    """Tokenised examples (no padding: the collator pads each batch to its longest)."""

    def __init__(self, rows: Sequence[dict[str, str]], tokenizer, data: DataArguments, label2id: dict[str, int]):
        texts = [r[data.text_column] for r in rows]
        pairs = [r.get(data.text_pair_column, "") for r in rows] if data.text_pair_column else None
        self.features = tokenizer(texts, pairs, truncation=True, max_length=data.max_length)
        self.labels = [label2id[r[data.label_column].strip()] for r in rows]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        item = {k: v[i] for k, v in self.features.items()}
        item["labels"] = self.labels[i]
        return item


def compute_metrics(eval_pred) -> dict[str, float]:
    """Accuracy and macro-F1 from ``(logits, labels)``."""
    logits, labels = eval_pred
    preds = np.asarray(logits).argmax(-1)
    labels = np.asarray(labels)
    f1s = []
    for c in np.unique(np.concatenate([labels, preds])):
        tp = np.sum((preds == c) & (labels == c))
        denom = np.sum(preds == c) + np.sum(labels == c)
        f1s.append(2 * tp / denom if denom else 0.0)
    return {"accuracy": float(np.mean(preds == labels)), "macro_f1": float(np.mean(f1s))}


def load_model(args: ModelArguments, labels: list[str]):
    """A sequence classifier with ``len(labels)`` outputs on top of the chosen base; returns ``(model, tokenizer)``."""
    from model_utils.pretrain import add_encoder_adapter, minilm_dir

    id2label = dict(enumerate(labels))
    label2id = {v: k for k, v in id2label.items()}
    if args.base_model.startswith("bundled:"):
        from model_utils.bundled import load_bundled

        model, tokenizer = load_bundled(args.base_model, "sequence-classification")
        model.config.update({"id2label": id2label, "label2id": label2id, "num_labels": len(labels)})
        model.classifier = torch.nn.Linear(model.config.hidden_size, len(labels))
        model.num_labels = len(labels)
    else:
        path = str(minilm_dir() if args.base_model == "minilm" else args.base_model)
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=len(labels), id2label=id2label, label2id=label2id, use_safetensors=True)
    if args.from_scratch:
        model = type(model)(model.config)
    if args.lora_rank:
        add_encoder_adapter(model, args.lora_rank, args.lora_alpha)
    return model, tokenizer


def build_training_arguments(output_dir: str, **overrides) -> TrainingArguments:
    """``TrainingArguments`` with the recipe's defaults, overridden by ``overrides``."""
    return TrainingArguments(output_dir=output_dir, **{**RECIPE_DEFAULTS, **overrides})


def finetune(data: DataArguments, model_args: ModelArguments, training: TrainingArguments, callbacks=()) -> dict:
    """Train and evaluate; returns ``{"metrics", "log", "seconds", "trainer", "labels", "skipped"}``."""
    path = Path(data.train_file) if data.train_file else default_train_file()
    rows = read_table(path)
    if len(rows) > data.max_rows:
        raise ValueError(f"{path.name} has {len(rows)} rows; the limit is {data.max_rows}.")
    rows, skipped = clean_rows(rows, data)
    train_rows, valid_rows = split_rows(rows, data)
    if not train_rows or not valid_rows:
        raise ValueError("Need rows for both training and validation.")
    labels = label_names(train_rows, data)
    unknown = {r[data.label_column].strip() for r in valid_rows} - set(labels)
    if unknown:
        raise ValueError(f"Validation labels not seen in training: {sorted(unknown)[:5]}.")
    model, tokenizer = load_model(model_args, labels)
    label2id = {v: k for k, v in enumerate(labels)}
    trainer = Trainer(model=model, args=training, train_dataset=Encoded(train_rows, tokenizer, data, label2id),
                      eval_dataset=Encoded(valid_rows, tokenizer, data, label2id), processing_class=tokenizer,
                      data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=compute_metrics,
                      callbacks=list(callbacks))
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    metrics = trainer.evaluate()
    return {"metrics": metrics, "log": trainer.state.log_history, "seconds": seconds, "trainer": trainer,
            "labels": labels, "skipped": skipped, "train_rows": len(train_rows), "validation_rows": len(valid_rows)}


def main(argv: list[str] | None = None) -> None:
    """Command line entry point: trains, then writes the model (or, with --export_delta, only the delta)."""
    parser = HfArgumentParser((DataArguments, ModelArguments, TrainingArguments))
    argv = list(argv) if argv is not None else __import__("sys").argv[1:]
    if "--output_dir" not in argv:
        argv += ["--output_dir", "runs/finetune"]
    for key, value in RECIPE_DEFAULTS.items():
        if f"--{key}" not in argv:
            argv += [f"--{key}", str(value)]
    data, model_args, training = parser.parse_args_into_dataclasses(args=argv)
    result = finetune(data, model_args, training)
    model = result["trainer"].model
    out = Path(training.output_dir)
    if model_args.lora_rank:
        from model_utils.pretrain import save_delta

        save_delta(model, out / "final")
    else:
        model.save_pretrained(str(out / "final"), safe_serialization=True)
        result["trainer"].processing_class.save_pretrained(str(out / "final"))
    summary = {"seconds": round(result["seconds"], 1), "train_rows": result["train_rows"],
               "validation_rows": result["validation_rows"], "skipped_rows": result["skipped"], **result["metrics"]}
    (out / "summary.json").write_text(json.dumps({"summary": summary, "log": result["log"]}, indent=1))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
