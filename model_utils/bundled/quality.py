"""Measure the bundled models against their targets, from committed data only.

    python -m model_utils.bundled.quality [--heldout data/pretrain_eval.jsonl] [--figure reliability.png]

* ``bundled:minilm-pretrained``: masked-token top-1 and same-source NSP accuracy on held-out
  documents (the test half of the held-out split, WordNet capped at 40% as in training; the
  committed ``data/heldout_test_half.jsonl`` unless ``--heldout`` names the full split), with
  the fixed masking of training's evaluation; NSP accuracy and expected calibration error on the
  hand-written everyday pairs ``tests/data/nsp_everyday.jsonl``; top-5 hit rate on the hand-written
  cloze sentences ``tests/data/cloze_everyday.jsonl``; beside the held-out NSP accuracy, a careful reader's
  blind answers on 80 of those pairs (``data/nsp_heldout_reader.json``; ``--reader-sample`` prints the pairs
  without labels) and the model's accuracy on the same 80;
* ``bundled:minilm-causal``: next-token top-1 and perplexity on the same held-out documents
  (``--scratch runs/causal-scratch/final`` measures the from-scratch twin the same way), and on the
  hand-written everyday sentences of both sets above (coherent pairs joined, cloze answers filled in);
* ``bundled:minilm-sentiment``: accuracy on the ``test`` rows of the sample sentiment CSV.

The hand-written sets were never used for training or calibration.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from pathlib import Path

import torch

from model_utils.bundled import HERE, SAMPLE_SENTIMENT_CSV, load_bundled
from model_utils.data import read_jsonl

HELDOUT_SAMPLE = HERE / "data" / "heldout_test_half.jsonl"
TESTS_DATA = HERE.parent.parent / "tests" / "data"
NSP_EVERYDAY = TESTS_DATA / "nsp_everyday.jsonl"
CLOZE_EVERYDAY = TESTS_DATA / "cloze_everyday.jsonl"
# A careful reader's blind answers on 80 of the held-out same-source pairs: how far the target is from reach
NSP_READER = HERE / "data" / "nsp_heldout_reader.json"
WORDNET_SHARE = 0.4  # as in the pretraining run
TARGETS = {"mlm_top1": 0.40, "nsp_heldout_accuracy": 0.90, "nsp_everyday_accuracy": 0.85, "nsp_everyday_ece": 0.10,
           "cloze_top5": 0.65, "causal_top1": 0.25, "causal_perplexity": 120.0}


def heldout_test_documents(heldout: Path = HELDOUT_SAMPLE):
    """The test half of the held-out documents (the calibration half is for fitting the NSP head)."""
    from model_utils.data import read_documents
    from model_utils.nsp_calibration import calibration_split

    return calibration_split(read_documents(heldout))[1]


def pretrained_quality(heldout: Path = HELDOUT_SAMPLE, max_examples: int = 2000) -> dict[str, float]:
    """MLM top-1 and same-source NSP accuracy of ``bundled:minilm-pretrained`` on held-out test documents."""
    from model_utils.pretrain import PretrainArguments, evaluate, heldout_batches

    model, tokenizer = load_bundled("bundled:minilm-pretrained", "pretraining")
    args = PretrainArguments(eval_examples=max_examples, wordnet_share=WORDNET_SHARE)
    return evaluate(model, heldout_batches(heldout_test_documents(heldout), tokenizer, args))


def heldout_nsp_examples(heldout: Path = HELDOUT_SAMPLE, max_examples: int = 2000) -> list:
    """The held-out same-source NSP pairs (pretraining examples with their next-sentence label, no masking)."""
    from model_utils.bundled import load_tokenizer
    from model_utils.data import cap_source
    from model_utils.pretrain import PretrainArguments, documents_to_examples

    args = PretrainArguments(wordnet_share=WORDNET_SHARE)
    docs = cap_source(heldout_test_documents(heldout), "wordnet", WORDNET_SHARE, random.Random(args.seed + 1))
    examples = [e for e in documents_to_examples(docs, load_tokenizer(), args, args.seed + 1)
                if e.next_sentence_label != -100]
    random.Random(args.seed + 2).shuffle(examples)
    return examples[:max_examples]


def heldout_nsp_probabilities(heldout: Path = HELDOUT_SAMPLE, max_examples: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """P(IsNext) and labels (1 = IsNext) of the held-out same-source pairs (no masking)."""
    from model_utils.nsp_calibration import example_inputs, nsp_margins

    model, tokenizer = load_bundled("bundled:minilm-pretrained", "next-sentence")
    inputs, labels = example_inputs(heldout_nsp_examples(heldout, max_examples), tokenizer.pad_token_id)
    return torch.sigmoid(nsp_margins(model, inputs)), labels


def reader_answers() -> dict:
    """The committed reader check (:data:`NSP_READER`): how many pairs there were, the sample's seed and size,
    and the answers (1 = B is the next sentence)."""
    return json.loads(NSP_READER.read_text(encoding="utf-8"))


def reader_sample(check: dict) -> list[int]:
    """Which of the held-out NSP pairs the reader ``check`` judged, in the order of its answers."""
    return random.Random(check["seed"]).sample(range(check["pairs"]), check["count"])


def reader_sample_text(heldout: Path = HELDOUT_SAMPLE, max_examples: int = 2000) -> str:
    """The reader check's pairs as text, numbered, without their labels: what a reader judges blind."""
    from model_utils.bundled import load_tokenizer

    tokenizer, examples, check = load_tokenizer(), heldout_nsp_examples(heldout, max_examples), reader_answers()
    if len(examples) != check["pairs"]:
        raise ValueError(f"the reader check judged {check['pairs']} pairs, these are {len(examples)}: "
                         "use the committed held-out test half and the default --max-examples")
    lines = []
    for number, index in enumerate(reader_sample(check)):
        example = examples[index]
        first, second = ([i for i, t in zip(example.input_ids, example.token_type_ids) if t == part] for part in (0, 1))
        lines.append(f"{number}. A: {tokenizer.decode(first, skip_special_tokens=True)}\n"
                     f"   B: {tokenizer.decode(second, skip_special_tokens=True)}")
    return "\n".join(lines)


def reader_check(probs: torch.Tensor, labels: torch.Tensor) -> dict | None:
    """Accuracy of the committed blind reader answers (:data:`NSP_READER`) and of the model on the same pairs;
    None for another set of pairs than the one judged (``--heldout`` or ``--max-examples`` changed)."""
    check = reader_answers()
    if len(labels) != check["pairs"]:
        return None
    chosen = torch.tensor(reader_sample(check))
    answers = torch.tensor(check["answers"], dtype=labels.dtype)
    truth = labels[chosen]
    return {"pairs": len(chosen), "reader_accuracy": float((answers == truth).float().mean()),
            "model_accuracy": float(((probs[chosen] > 0.5).to(labels.dtype) == truth).float().mean())}


def everyday_nsp(path: Path = NSP_EVERYDAY, model_name: str = "bundled:minilm-pretrained") -> dict:
    """Accuracy at 0.5, ECE and reliability bins of P(IsNext) on the hand-written everyday pairs."""
    from model_utils.nsp_calibration import expected_calibration_error, nsp_margins, pair_inputs, reliability_bins

    rows = read_jsonl(path)
    model, tokenizer = load_bundled(model_name, "next-sentence")
    probs = torch.sigmoid(nsp_margins(model, pair_inputs(tokenizer, [(r["first"], r["second"]) for r in rows])))
    labels = torch.tensor([1.0 if r["is_next"] else 0.0 for r in rows])
    return {"accuracy": float(((probs > 0.5).float() == labels).float().mean()), "pairs": len(rows),
            "ece": expected_calibration_error(probs, labels), "bins": reliability_bins(probs, labels),
            "probabilities": [round(float(p), 4) for p in probs]}


@torch.inference_mode()
def everyday_cloze(path: Path = CLOZE_EVERYDAY, k: int = 5) -> dict:
    """Top-1 and top-k hit rates of ``bundled:minilm-pretrained`` on the hand-written cloze sentences."""
    rows = read_jsonl(path)
    model, tokenizer = load_bundled("bundled:minilm-pretrained", "masked-lm")
    enc = tokenizer([r["text"] for r in rows], padding=True, return_tensors="pt")
    logits = model(**enc).logits[enc["input_ids"] == tokenizer.mask_token_id]
    answers = torch.tensor(tokenizer.convert_tokens_to_ids([r["answer"] for r in rows]))
    top = logits.topk(k, dim=-1).indices
    return {"top1": float((top[:, 0] == answers).float().mean()),
            f"top{k}": float((top == answers[:, None]).any(-1).float().mean()), "sentences": len(rows)}


def causal_quality(heldout: Path = HELDOUT_SAMPLE, model=None, max_sequences: int = 2000) -> dict[str, float]:
    """Next-token top-1 and perplexity of ``bundled:minilm-causal`` (or ``model``) on held-out test documents."""
    from model_utils.causal_pretrain import CausalArguments, eval_batches_of, evaluate, heldout_sequences
    from model_utils.bundled import load_tokenizer

    if model is None:
        model, _ = load_bundled("bundled:minilm-causal", "causal-lm")
    tokenizer = load_tokenizer()
    args = CausalArguments(eval_sequences=max_sequences)
    sequences = heldout_sequences(heldout_test_documents(heldout), tokenizer, args)
    return evaluate(model, eval_batches_of(sequences, tokenizer.pad_token_id))


def causal_everyday(model=None) -> dict[str, float]:
    """Next-token top-1 and perplexity of ``bundled:minilm-causal`` (or ``model``) on ordinary sentences
    written by hand: the cloze sentences with their answer filled in and the coherent everyday pairs, each a
    document evaluated exactly as the held-out ones (``[CLS]`` + text; the end token not counted)."""
    from model_utils.bundled import load_tokenizer
    from model_utils.causal_pretrain import CausalArguments, build_sequences, eval_batches_of, evaluate, tokenize_documents
    from model_utils.data import Document

    if model is None:
        model, _ = load_bundled("bundled:minilm-causal", "causal-lm")
    tokenizer = load_tokenizer()
    docs = [Document("cloze", f"cloze-{i}", (r["text"].replace("[MASK]", r["answer"]),))
            for i, r in enumerate(read_jsonl(CLOZE_EVERYDAY))]
    docs += [Document("pairs", f"pair-{i}", (r["first"], r["second"]))
             for i, r in enumerate(read_jsonl(NSP_EVERYDAY)) if r["is_next"]]
    sequences = build_sequences(tokenize_documents(docs, tokenizer), tokenizer, CausalArguments().max_seq_length)
    return {**evaluate(model, eval_batches_of(sequences, tokenizer.pad_token_id)), "texts": len(docs)}


def load_scratch(folder: Path):
    """The from-scratch causal twin saved by ``causal_pretrain --from_scratch true`` (whole model)."""
    from safetensors.torch import load_file
    from transformers import BertConfig, BertLMHeadModel

    model = BertLMHeadModel(BertConfig.from_dict(json.loads((folder / "config.json").read_text())))
    model.load_state_dict(load_file(str(folder / "model.safetensors")), strict=False)
    model.tie_weights()
    return model.eval()


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


def reliability_figure(sets: dict[str, dict]):
    """A Plotly reliability diagram: per set, observed IsNext rate against mean P(IsNext) per bin."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                               line={"dash": "dot", "color": "gray"}))
    for name, result in sets.items():
        bins = result["bins"]
        fig.add_trace(go.Scatter(x=[b["mean_probability"] for b in bins], y=[b["positive_rate"] for b in bins],
                                 mode="lines+markers", name=f"{name} (ECE {result['ece']:.3f})",
                                 text=[f"{b['count']} pairs" for b in bins], marker={"size": 9}))
    fig.update_layout(title="bundled:minilm-pretrained next-sentence reliability", width=640, height=600,
                      legend={"orientation": "h", "y": -0.18, "x": 0},
                      xaxis={"title": "mean P(IsNext) in bin", "range": [0, 1]},
                      yaxis={"title": "share of pairs that are IsNext", "range": [0, 1]}, template="plotly_white")
    return fig


def write_figure_png(fig, path: Path) -> None:
    """Render a Plotly figure to PNG in Debian's Chromium (plotly.js inlined; no network, no kaleido)."""
    from playwright.sync_api import sync_playwright

    html = path.with_suffix(".html")
    fig.write_html(str(html), include_plotlyjs=True, full_html=True)
    try:
        with sync_playwright() as play:
            browser = play.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--headless"])
            page = browser.new_page(viewport={"width": 660, "height": 620})
            page.goto(html.resolve().as_uri())
            page.wait_for_selector(".main-svg")
            page.screenshot(path=str(path))
            browser.close()
    finally:
        html.unlink(missing_ok=True)


def nsp_report(heldout: Path, max_examples: int) -> dict:
    """Held-out and everyday NSP figures with reliability bins."""
    from model_utils.nsp_calibration import expected_calibration_error, reliability_bins

    probs, labels = heldout_nsp_probabilities(heldout, max_examples)
    held = {"accuracy": float(((probs > 0.5).float() == labels).float().mean()), "pairs": len(labels),
            "ece": expected_calibration_error(probs, labels), "bins": reliability_bins(probs, labels)}
    judged = reader_check(probs, labels) if heldout == HELDOUT_SAMPLE else None
    return {"heldout_same_source": held, "heldout_reader_check": judged, "everyday": everyday_nsp()}


def main(argv: list[str] | None = None) -> None:
    """Print every measured figure and whether it meets its target, as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--heldout", type=Path, default=HELDOUT_SAMPLE, help="held-out documents (.jsonl)")
    parser.add_argument("--max-examples", type=int, default=2000)
    parser.add_argument("--scratch", type=Path, default=None, help="delta folder of the from-scratch causal twin")
    parser.add_argument("--figure", type=Path, default=None, help="write the NSP reliability diagram (PNG) here")
    parser.add_argument("--reader-sample", action="store_true",
                        help="print the reader check's held-out NSP pairs without labels (to judge them blind) and stop")
    args = parser.parse_args(argv)
    if args.reader_sample:
        print(reader_sample_text(args.heldout, args.max_examples))
        return
    nsp = nsp_report(args.heldout, args.max_examples)
    report = {"minilm-pretrained": {"heldout": pretrained_quality(args.heldout, args.max_examples),
                                    "nsp": nsp, "cloze_everyday": everyday_cloze()},
              "minilm-causal": causal_quality(args.heldout, max_sequences=args.max_examples),
              "minilm-causal-everyday": causal_everyday(),
              "minilm-sentiment": sentiment_quality()}
    if args.scratch:
        report["causal-scratch-twin"] = causal_quality(args.heldout, load_scratch(args.scratch), args.max_examples)
    report["targets"] = check_targets(report)
    if args.figure:
        write_figure_png(reliability_figure({"held-out same-source pairs": nsp["heldout_same_source"],
                                             "everyday pairs (hand-written)": nsp["everyday"]}), args.figure)
    print(json.dumps(report, indent=2))


def check_targets(report: dict) -> dict[str, dict]:
    """Each target with its measured value and whether it is met."""
    pre, causal = report["minilm-pretrained"], report["minilm-causal"]
    measured = {"mlm_top1": pre["heldout"]["mlm_accuracy"], "nsp_heldout_accuracy": pre["nsp"]["heldout_same_source"]["accuracy"],
                "nsp_everyday_accuracy": pre["nsp"]["everyday"]["accuracy"], "nsp_everyday_ece": pre["nsp"]["everyday"]["ece"],
                "cloze_top5": pre["cloze_everyday"]["top5"], "causal_top1": causal["top1"],
                "causal_perplexity": causal["perplexity"]}
    lower_is_better = {"nsp_everyday_ece", "causal_perplexity"}
    return {k: {"value": round(v, 4), "target": TARGETS[k],
                "met": v <= TARGETS[k] if k in lower_is_better else v >= TARGETS[k]} for k, v in measured.items()}


if __name__ == "__main__":
    main()
