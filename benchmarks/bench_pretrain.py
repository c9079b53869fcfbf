"""Pretraining throughput: our MLM + NSP step against a naive ``BertForPreTraining(..., labels=...)`` step.

Both loops train the same parameters (LoRA over the packaged MiniLM encoder + the heads) on the
same batches with the same optimizer; only the loss computation differs: ours projects to the
30,522-token vocabulary at the ~15% selected positions, the naive one at every position. Steps of
the two loops are interleaved so that background load affects both alike.

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

from model_utils import pretrain as P  # noqa: E402
from model_utils.data import read_documents, wordnet_documents  # noqa: E402


def naive_step(model, batch) -> torch.Tensor:
    """The textbook step: the model computes both losses over full-sequence logits."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                token_type_ids=batch["token_type_ids"], labels=batch["labels"],
                next_sentence_label=batch["next_sentence_label"])
    return out.loss


def ours_step(model, batch) -> torch.Tensor:
    return P.pretraining_losses(model, batch)["loss"]


def timed_step(step_fn, model, optimizer, batch) -> float:
    started = time.perf_counter()
    step_fn(model, batch).backward()
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
    P.add_encoder_adapter(model, rank=32, alpha=64)
    model.train()
    examples = P.build_examples(P.tokenize_documents(docs, tokenizer), tokenizer, args.max_len, random.Random(0))
    masker = P.make_masker(tokenizer, 0.15, seed=0)
    stream = P.batches(examples, args.batch_size, random.Random(0))
    batches = [P.collate(next(stream), tokenizer, masker) for _ in range(args.warmup + args.steps)]
    optimizer, _ = P.make_optimizer(model, P.PretrainArguments(), 1000)

    times = {"ours": [], "naive": []}
    for i, batch in enumerate(batches):
        for name, fn in (("ours", ours_step), ("naive", naive_step)):
            t = timed_step(fn, model, optimizer, batch)
            if i >= args.warmup:
                times[name].append(t)
    tokens = statistics.mean(int(b["attention_mask"].sum()) for b in batches)
    masked = statistics.mean(int((b["labels"] != -100).sum()) for b in batches)
    print(f"threads={torch.get_num_threads()} batch={args.batch_size} mean tokens/batch={tokens:.0f} "
          f"masked/batch={masked:.0f} steps={args.steps}")
    for name in ("naive", "ours"):
        med = statistics.median(times[name])
        print(f"{name:>5}: median {med * 1000:7.1f} ms/step, {args.batch_size / med:6.1f} sequences/s")
    ratio = statistics.median(times["naive"]) / statistics.median(times["ours"])
    print(f"speed-up (naive / ours, median step time): {ratio:.2f}x")


if __name__ == "__main__":
    main()
