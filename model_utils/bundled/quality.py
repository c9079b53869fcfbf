"""Measure the bundled models on their held-out splits.

    python -m model_utils.bundled.quality [--heldout data/pretrain_eval.jsonl]

* ``bundled:minilm-pretrained``: masked-token top-1 accuracy and NSP accuracy on held-out documents
  (the full split of ``python -m model_utils.data prepare`` when given, else the committed sample
  ``data/pretrain_heldout_sample.jsonl``), with the same fixed masking as training's evaluation;
* ``bundled:minilm-sentiment``: accuracy on the ``test`` rows of the sample sentiment CSV.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import torch

from model_utils.bundled import HERE, SAMPLE_SENTIMENT_CSV, load_bundled

HELDOUT_SAMPLE = HERE / "data" / "pretrain_heldout_sample.jsonl"


def pretrained_quality(heldout: Path = HELDOUT_SAMPLE, max_examples: int = 2000) -> dict[str, float]:
    """MLM top-1 and NSP accuracy of ``bundled:minilm-pretrained`` on held-out documents."""
    from model_utils.data import read_documents
    from model_utils.pretrain import PretrainArguments, evaluate, heldout_batches

    model, tokenizer = load_bundled("bundled:minilm-pretrained", "pretraining")
    batches = heldout_batches(read_documents(heldout), tokenizer, PretrainArguments(eval_examples=max_examples))
    return evaluate(model, batches)


def sentiment_rows(split: str = "test") -> list[dict[str, str]]:
    """Rows of the bundled sentiment CSV in ``split``."""
    with open(SAMPLE_SENTIMENT_CSV, encoding="utf-8", newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["split"] == split]


@torch.inference_mode()
def sentiment_quality(batch_size: int = 64) -> dict[str, float]:
    """Accuracy of ``bundled:minilm-sentiment`` on the held-out test rows."""
    model, tokenizer = load_bundled("bundled:minilm-sentiment", "sequence-classification")
    rows = sentiment_rows("test")
    correct = 0
    for i in range(0, len(rows), batch_size):
        chunk = rows[i:i + batch_size]
        enc = tokenizer([r["text"] for r in chunk], padding=True, truncation=True, max_length=128,
                        return_tensors="pt")
        predicted = model(**enc).logits.argmax(-1).tolist()
        correct += sum(model.config.id2label[p] == r["label"] for p, r in zip(predicted, chunk))
    return {"accuracy": correct / len(rows), "rows": len(rows)}


def main() -> None:
    """Print the quality figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--heldout", type=Path, default=HELDOUT_SAMPLE, help="held-out documents (.jsonl)")
    parser.add_argument("--max-examples", type=int, default=2000)
    args = parser.parse_args()
    report = {"minilm-pretrained": pretrained_quality(args.heldout, args.max_examples),
              "minilm-sentiment": sentiment_quality()}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
