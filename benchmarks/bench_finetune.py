"""Fine-tuning throughput: our pipeline vs a minimal tutorial-style script, same data, model and steps.

Ours (``model_utils.finetune.finetune``): examples tokenised without padding, each batch padded to its
longest example by ``DataCollatorWithPadding``, mixed precision on GPU. The reference follows the basic
Hugging Face tutorial: ``tokenizer(..., padding="max_length", truncation=True)`` so every batch is
``max_length`` tokens long, then the same ``Trainer`` recipe. Both train the same base model on the
same rows for the same number of steps; the script prints training samples/s of each and the ratio
(target >= 1.5x).

    python benchmarks/bench_finetune.py [--base_model minilm] [--rows 256] [--max_length 128] [--threads 2] [--repeats 2]

``--quality`` instead runs the full recipe on the bundled sample sentiment data and prints validation
accuracy and wall time (long on CPU: minutes to tens of minutes).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import Trainer, default_data_collator, set_seed

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _training_args(out: str, steps: int, batch_size: int):
    from model_utils import finetune

    return finetune.build_training_arguments(out, max_steps=steps, per_device_train_batch_size=batch_size,
                                             eval_strategy="no", logging_steps=1000, disable_tqdm=True,
                                             learning_rate=5e-5, seed=0)


class StaticPadded(torch.utils.data.Dataset):
    """The tutorial's dataset: every example padded to ``max_length``."""

    def __init__(self, rows, tokenizer, max_length: int, label2id: dict[str, int]):
        self.features = tokenizer([r["text"] for r in rows], padding="max_length", truncation=True,
                                  max_length=max_length)
        self.labels = [label2id[r["label"].strip()] for r in rows]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {**{k: torch.tensor(v[i]) for k, v in self.features.items()}, "labels": self.labels[i]}


def run_reference(data, model_args, prepared, steps: int, batch_size: int) -> float:
    """Train with static padding; returns training samples/s."""
    from model_utils import finetune

    set_seed(0)
    model, tokenizer = finetune.load_model(model_args, prepared.labels)
    label2id = {v: k for k, v in enumerate(prepared.labels)}
    dataset = StaticPadded(prepared.train_rows, tokenizer, data.max_length, label2id)
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(model=model, args=_training_args(out, steps, batch_size), train_dataset=dataset,
                          data_collator=default_data_collator)
        started = time.perf_counter()
        trainer.train()
        return steps * batch_size / (time.perf_counter() - started)


def run_ours(data, model_args, prepared, steps: int, batch_size: int) -> float:
    """Train with our pipeline (dynamic padding); returns training samples/s."""
    from model_utils import finetune

    with tempfile.TemporaryDirectory() as out:
        result = finetune.finetune(data, model_args, _training_args(out, steps, batch_size), prepared=prepared)
        return steps * batch_size / result["seconds"]


def throughput(args: argparse.Namespace) -> None:
    """Print samples/s of both pipelines and their ratio."""
    from model_utils import finetune

    data = finetune.DataArguments(max_length=args.max_length)
    model_args = finetune.ModelArguments(base_model=args.base_model)
    rows = [r for r in finetune.load_rows(data) if r["split"] == "train"][: args.rows]
    valid = [dict(r, split="test") for r in rows[:32]]
    prepared = finetune.prepare_data(rows + valid, data)
    steps = len(prepared.train_rows) // args.batch_size
    for run in (run_ours, run_reference):  # warm-up: thread pools, allocator, first-call costs
        run(data, model_args, prepared, 2, args.batch_size)
    measured = {"ours": [], "reference": []}
    for _ in range(args.repeats):  # alternate, so that background load hits both alike
        measured["ours"].append(run_ours(data, model_args, prepared, steps, args.batch_size))
        measured["reference"].append(run_reference(data, model_args, prepared, steps, args.batch_size))
    ours, reference = statistics.median(measured["ours"]), statistics.median(measured["reference"])
    print(f"{steps} steps x batch {args.batch_size} on {args.base_model}, {torch.get_num_threads()} threads, "
          f"device {'cuda' if torch.cuda.is_available() else 'cpu'}")
    print(f"reference (static padding): {reference:.1f} samples/s")
    print(f"ours (dynamic padding):     {ours:.1f} samples/s")
    print(f"ratio: {ours / reference:.2f}x (target >= 1.5x)")


def quality(args: argparse.Namespace) -> None:
    """Full recipe on the bundled sample: validation accuracy and wall time."""
    from model_utils import finetune

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        data = finetune.DataArguments(max_length=args.max_length)
        model_args = finetune.ModelArguments(base_model=args.base_model)
        training = finetune.build_training_arguments(out, disable_tqdm=True)
        result = finetune.finetune(data, model_args, training)
    print(f"validation accuracy {result['metrics']['accuracy']:.4f}, macro-F1 {result['metrics']['macro_f1']:.4f}, "
          f"{result['train_rows']} training rows, {result['steps']} steps, "
          f"wall {time.perf_counter() - started:.0f} s on {torch.get_num_threads()} threads")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base_model", default="minilm", help="base model (default: the packaged MiniLM encoder)")
    parser.add_argument("--rows", type=int, default=256, help="training rows of the sample data")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--max_length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=2, help="alternating measurements of each (median)")
    parser.add_argument("--quality", action="store_true", help="run the full recipe and report accuracy")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    (quality if args.quality else throughput)(args)


if __name__ == "__main__":
    main()
