"""Calibrate a next-sentence head and bake the calibration into its weights.

The NSP head is a ``Linear(hidden, 2)`` (``cls.seq_relationship``); P(IsNext) is the softmax of its
two logits, i.e. ``sigmoid(m)`` with the margin ``m = logit[IsNext] - logit[NotNext]``. We fit a
temperature ``T`` and a bias ``b`` so that ``sigmoid(m / T + b)`` minimises the log-loss on a
held-out *calibration* split (Platt scaling), then rewrite the head as ``W' = W / T`` and
``c' = c / T + (b/2, -b/2)``: the margin of the rewritten head is exactly ``m / T + b``, so the
model stays an ordinary ``BertForNextSentencePrediction`` and every consumer sees calibrated
probabilities.

The fit uses two groups of pairs, weighted equally: the same-source pairs of the held-out corpus's
calibration half (held-out documents are split by a hash of their id into a calibration half and a test
half; the test half is what the quality figures use) and 90 everyday pairs written by hand for fitting
(``bundled/data/nsp_calibration_everyday.jsonl``: 45 coherent, 45 unrelated; no sentence of the test set
``tests/data/nsp_everyday.jsonl``). The corpus pairs alone describe corpus text, whose same-source and
same-document negatives are hard; on the pairs people type into the Next Sentence tab the model separates
better than that, and a corpus-only fit leaves it under-confident there (the reason for the second group).

Command line::

    python -m model_utils.nsp_calibration --delta runs/pretrain-minilm-v2/final \\
        --eval_file data/pretrain_eval.jsonl --out model_utils/bundled/minilm-pretrained
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Sequence

import torch

from model_utils.data import Document, read_documents, read_jsonl, stable_bucket

CALIBRATION_PERCENT = 50
# Hand-written everyday pairs (45 coherent, 45 unrelated) for fitting only; the test set is tests/data/nsp_everyday.jsonl.
EVERYDAY_CALIBRATION = Path(__file__).resolve().parent / "bundled" / "data" / "nsp_calibration_everyday.jsonl"


def calibration_split(docs: Sequence[Document]) -> tuple[list[Document], list[Document]]:
    """Held-out documents as ``(calibration, test)`` halves, by a stable hash of each id."""
    calibration, test = [], []
    for doc in docs:
        (calibration if stable_bucket(doc.id + "#calibration") < CALIBRATION_PERCENT else test).append(doc)
    return calibration, test


@torch.inference_mode()
def nsp_margins(model, batch_inputs: Sequence[dict[str, torch.Tensor]]) -> torch.Tensor:
    """``logit[IsNext] - logit[NotNext]`` of a ``BertForNextSentencePrediction``/``BertForPreTraining`` for each row."""
    margins = []
    for enc in batch_inputs:
        out = model(**enc)
        logits = out.logits if hasattr(out, "logits") else out.seq_relationship_logits
        margins.append((logits[:, 0] - logits[:, 1]).float())
    return torch.cat(margins)


def pair_inputs(tokenizer, pairs: Sequence[tuple[str, str]], batch_size: int = 64) -> list[dict[str, torch.Tensor]]:
    """Tokenised ``(first, second)`` batches, as the Next Sentence tab tokenises a pair."""
    return [dict(tokenizer([a for a, _ in pairs[i:i + batch_size]], [b for _, b in pairs[i:i + batch_size]],
                           padding=True, truncation=True, max_length=128, return_tensors="pt"))
            for i in range(0, len(pairs), batch_size)]


def example_inputs(examples, pad_id: int, batch_size: int = 64) -> tuple[list[dict[str, torch.Tensor]], torch.Tensor]:
    """Unmasked batches of sentence-pair examples (``model_utils.pretrain.Example``) and their IsNext labels (1/0)."""
    batches = []
    for i in range(0, len(examples), batch_size):
        part = examples[i:i + batch_size]
        width = max(len(e.input_ids) for e in part)
        ids = torch.full((len(part), width), pad_id, dtype=torch.long)
        types, mask = torch.zeros_like(ids), torch.zeros_like(ids)
        for row, e in enumerate(part):
            ids[row, :len(e.input_ids)] = torch.tensor(e.input_ids)
            types[row, :len(e.input_ids)] = torch.tensor(e.token_type_ids)
            mask[row, :len(e.input_ids)] = 1
        batches.append({"input_ids": ids, "token_type_ids": types, "attention_mask": mask})
    labels = torch.tensor([1.0 if e.next_sentence_label == 0 else 0.0 for e in examples])
    return batches, labels


def fit_temperature_bias(margins: torch.Tensor, is_next: torch.Tensor, steps: int = 200,
                         weights: torch.Tensor | None = None) -> tuple[float, float]:
    """``(T, b)`` minimising the (``weights``-weighted) log-loss of ``sigmoid(margin / T + b)`` against ``is_next`` (1/0)."""
    log_t = torch.zeros((), requires_grad=True)
    bias = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t, bias], lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")
    margins, is_next = margins.double(), is_next.double()
    weights = None if weights is None else (weights / weights.sum() * len(weights)).double()

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(margins / log_t.double().exp() + bias.double(), is_next,
                                                                    weight=weights)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp()), float(bias.detach())


@torch.no_grad()
def bake_calibration(head: torch.nn.Linear, temperature: float, bias: float) -> None:
    """Rewrite a 2-way NSP ``Linear`` in place so its margin becomes ``margin / temperature + bias``."""
    head.weight.div_(temperature)
    head.bias.div_(temperature)
    head.bias[0] += bias / 2
    head.bias[1] -= bias / 2


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 10) -> float:
    """ECE of P(IsNext): the bin-weighted mean of |accuracy - confidence| over ``bins`` equal-width bins of P."""
    return sum(abs(b["positive_rate"] - b["mean_probability"]) * b["count"]
               for b in reliability_bins(probs, labels, bins)) / max(len(probs), 1)


def reliability_bins(probs: torch.Tensor, labels: torch.Tensor, bins: int = 10) -> list[dict]:
    """Per non-empty bin of P(IsNext): ``low``, ``high``, ``count``, ``mean_probability``, ``positive_rate``."""
    index = (probs * bins).long().clamp(max=bins - 1)
    out = []
    for k in range(bins):
        chosen = index == k
        if chosen.any():
            out.append({"low": k / bins, "high": (k + 1) / bins, "count": int(chosen.sum()),
                        "mean_probability": float(probs[chosen].mean()), "positive_rate": float(labels[chosen].float().mean())})
    return out


def everyday_calibration_pairs(path: Path = EVERYDAY_CALIBRATION) -> tuple[list[tuple[str, str]], torch.Tensor]:
    """The hand-written everyday calibration pairs ``(first, second)`` and their IsNext labels (1/0)."""
    rows = read_jsonl(path)
    return [(r["first"], r["second"]) for r in rows], torch.tensor([1.0 if r["is_next"] else 0.0 for r in rows])


def group_weights(*sizes: int) -> torch.Tensor:
    """Per-row weights giving each group of rows (of the given sizes, in order) the same total weight."""
    return torch.cat([torch.full((n,), 1.0 / n) for n in sizes if n])


def calibrate_delta(delta: Path, eval_file: Path, out: Path, wordnet_share: float = 0.4,
                    everyday: Path | None = EVERYDAY_CALIBRATION) -> dict:
    """Fit ``(T, b)`` for the model in ``delta`` on the calibration half of ``eval_file`` and, with ``everyday``,
    on the hand-written everyday calibration pairs too (the two groups weighted equally), and write the
    calibrated delta (same adapter, rewritten ``cls.seq_relationship``) to ``out``; returns the fit.

    Applied to an already calibrated delta (``out`` = ``delta``) the new ``(T, b)`` compose with the old."""
    from safetensors.torch import load_file, save_file

    from model_utils.adapters import build_delta_model
    from model_utils.pretrain import PretrainArguments, documents_to_examples
    from model_utils.data import cap_source
    import random

    model, tokenizer = build_delta_model(delta)
    args = PretrainArguments(wordnet_share=wordnet_share)
    calibration, _ = calibration_split(read_documents(eval_file))
    calibration = cap_source(calibration, "wordnet", wordnet_share, random.Random(args.seed + 1))
    pairs = [e for e in documents_to_examples(calibration, tokenizer, args, args.seed + 1) if e.next_sentence_label != -100]
    inputs, is_next = example_inputs(pairs, tokenizer.pad_token_id)
    margins, weights = nsp_margins(model, inputs), None
    everyday_count = 0
    if everyday is not None:
        texts, labels = everyday_calibration_pairs(everyday)
        everyday_count = len(labels)
        weights = group_weights(len(is_next), everyday_count)
        margins = torch.cat([margins, nsp_margins(model, pair_inputs(tokenizer, texts))])
        is_next = torch.cat([is_next, labels])
    temperature, bias = fit_temperature_bias(margins, is_next, weights=weights)
    if out.resolve() != delta.resolve():
        shutil.rmtree(out / "adapter", ignore_errors=True)
        shutil.copytree(delta / "adapter", out / "adapter")
        shutil.copy(delta / "config.json", out / "config.json")
    heads = load_file(str(delta / "heads.safetensors"))
    head = torch.nn.Linear(heads["cls.seq_relationship.weight"].shape[1], 2)
    head.load_state_dict({"weight": heads["cls.seq_relationship.weight"], "bias": heads["cls.seq_relationship.bias"]})
    bake_calibration(head, temperature, bias)
    heads.update({"cls.seq_relationship.weight": head.weight.detach().contiguous(),
                  "cls.seq_relationship.bias": head.bias.detach().contiguous()})
    save_file(heads, str(out / "heads.safetensors"))
    return {"temperature": temperature, "bias": bias, "calibration_pairs": len(is_next) - everyday_count,
            "everyday_pairs": everyday_count}


def main(argv: list[str] | None = None) -> None:
    """Command line: calibrate a trained delta and write the calibrated artifact."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delta", type=Path, required=True, help="trained delta folder (output_dir/final)")
    parser.add_argument("--eval_file", type=Path, default=Path("data/pretrain_eval.jsonl"))
    parser.add_argument("--out", type=Path, required=True, help="folder of the calibrated delta")
    parser.add_argument("--wordnet_share", type=float, default=0.4)
    parser.add_argument("--everyday_pairs", type=Path, default=EVERYDAY_CALIBRATION,
                        help="hand-written everyday calibration pairs (.jsonl), weighted equally with the corpus pairs")
    parser.add_argument("--corpus_only", action="store_true", help="fit on the corpus calibration half alone")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    everyday = None if args.corpus_only else args.everyday_pairs
    print(json.dumps(calibrate_delta(args.delta, args.eval_file, args.out, args.wordnet_share, everyday), indent=2))


if __name__ == "__main__":
    main()
