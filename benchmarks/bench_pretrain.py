"""Pretraining throughput: our MLM + NSP step against a naive ``BertForPreTraining(..., labels=...)`` step.

Both loops train the same parameters (LoRA over the packaged MiniLM encoder + the heads) on the
same batches with the same optimizer; only the step differs: ours projects to the 30,522-token
vocabulary at the ~15% selected positions only (the naive one at every position) and runs each batch
as length-sorted micro-batches padded to their own longest sequence (same loss and gradient). A third
variant is our loop with bfloat16 autocast, as the bundled model was trained (`--bf16 true`). Steps
of the loops are interleaved so that background load affects all alike.

    python benchmarks/bench_pretrain.py [--steps 12] [--batch-size 32] [--max-len 128]

Needs the corpus of ``python -m model_utils.data prepare`` (falls back to WordNet glosses).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model_utils import adapters, pretrain as P  # noqa: E402
from model_utils.data import read_documents, wordnet_documents  # noqa: E402


def naive_step(model, batch) -> torch.Tensor:
    """The textbook step: the model computes both losses over full-sequence logits."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                token_type_ids=batch["token_type_ids"], labels=batch["labels"],
                next_sentence_label=batch["next_sentence_label"])
    return out.loss


def naive_step_backward(model, batch) -> None:
    naive_step(model, batch).backward()


def ours_step(model, batch) -> None:
    """Our default step: sparse projection, 4 length-sorted micro-batches."""
    P.pretraining_step(model, batch, micro_batches=P.PretrainArguments.micro_batches)


def ours_bf16_step(model, batch) -> None:
    """Our step as `python -m model_utils.pretrain --bf16 true` runs it (bfloat16 autocast)."""
    P.pretraining_step(model, batch, micro_batches=P.PretrainArguments.micro_batches, bf16=True)


def timed_step(step_fn, model, optimizer, batch) -> float:
    started = time.perf_counter()
    step_fn(model, batch)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-len", type=int, default=128)
    parser.add_argument("--corpus", type=Path, default=Path("data/pretrain_eval.jsonl"))
    args = parser.parse_args()

    docs = read_documents(args.corpus) if args.corpus.exists() else wordnet_documents()[:5000]
    torch.manual_seed(0)
    model, tokenizer = P.load_base("minilm")
    adapters.add_encoder_adapter(model, rank=32, alpha=64)
    model.train()
    examples = P.build_examples(P.tokenize_documents(docs, tokenizer), tokenizer, args.max_len, random.Random(0))
    masker = P.make_masker(tokenizer, 0.15, seed=0)
    stream = P.batches(examples, args.batch_size, random.Random(0))
    batches = [P.collate(next(stream), tokenizer, masker) for _ in range(args.warmup + args.steps)]
    optimizer, _ = P.make_optimizer(model, P.PretrainArguments(), 1000)

    loops = {"naive": naive_step_backward, "ours": ours_step, "ours+bf16": ours_bf16_step}
    times = {name: [] for name in loops}
    for i, batch in enumerate(batches):
        for name, fn in loops.items():
            t = timed_step(fn, model, optimizer, batch)
            if i >= args.warmup:
                times[name].append(t)
    tokens = statistics.mean(int(b["attention_mask"].sum()) for b in batches)
    masked = statistics.mean(int((b["labels"] != -100).sum()) for b in batches)
    print(f"threads={torch.get_num_threads()} batch={args.batch_size} mean tokens/batch={tokens:.0f} "
          f"masked/batch={masked:.0f} steps={args.steps}")
    for name in loops:
        med = statistics.median(times[name])
        print(f"{name:>9}: median {med * 1000:7.1f} ms/step, {args.batch_size / med:6.1f} sequences/s")
    naive = statistics.median(times["naive"])
    print(f"speed-up, same precision (fp32 naive / fp32 ours): {naive / statistics.median(times['ours']):.2f}x")
    print(f"speed-up, our loop as configured for the bundled run (fp32 naive / bf16 ours): "
          f"{naive / statistics.median(times['ours+bf16']):.2f}x")


if __name__ == "__main__":
    main()
