"""The int8 CPU path (``PLM_QUANTIZE``) against float32 on the bundled models: speed and agreement.

Measured in one run, the float32 model as the reference for every ratio:

1. forward time of ``bundled:minilm-pretrained`` (masked LM) at batch 1 and batch 16 (an 18-token sentence),
   float32 and int8 timed in turn (A B A B ..., each turn ``--block`` calls) so a change of machine load hits
   both alike; best and median of ``--repeat`` turns, and the ratios of medians and of bests (on a shared CPU
   the best is the closer to an idle machine); once for the whole forward (vocabulary logits at every position) and once as the
   Fill-Mask tab runs it (``model_utils.fill_mask``: the vocabulary projection at the [MASK] only);
   (``int8 (app)`` is what ``PLM_QUANTIZE=int8`` serves: inputs scaled per channel, exported to ONNX and
   served by ONNX Runtime with int8 matrix products, or PyTorch's dynamic int8 where ONNX Runtime is not
   installed; ``int8 (app, FFN out fp32)`` the same with the feed-forward output layers left in float32;
   ``int8 (torch, scaled)`` PyTorch's dynamic int8 after the same scaling; ``int8 (torch.ao)`` plain dynamic
   int8); each model alone (``--block`` calls in a row) or called in turn (``--block 1``);
2. Fill-Mask top-1 agreement with float32, the vocabulary projected at the masks as Fill-Mask does, on
   held-out masked tokens (the fixed masks of ``model_utils.bundled.quality``, test half of the held-out
   documents) and on the hand-written cloze sentences ``tests/data/cloze_everyday.jsonl`` (target >= 99%);
3. Next Sentence: share of held-out everyday pairs where int8 and float32 give the same side of 0.5, and the
   largest difference of P(IsNext);
4. sentiment accuracy of ``bundled:minilm-sentiment`` on its test rows, float32 and int8 (target: within 0.5
   points);
5. memory of the weights, float32 and int8.

    python benchmarks/bench_quantize.py [--repeat 20] [--block 6] [--examples 2000] [--torchao] [--blockwise]
                                        [--speed-only]

``--torchao`` adds torchao's eager ``Int8DynamicActivationInt8WeightConfig`` (activations scaled per token) and
``Int8WeightOnlyConfig`` to the speed and agreement comparison, when torchao is installed (``pip install torchao``;
it is not a requirement of the app). ``--blockwise`` adds ONNX Runtime's ``MatMulNBits`` at 8 bits (weights and
activations quantized in blocks of 32 or 128 input channels, the finest ONNX Runtime offers; needs ``pip install
onnx_ir``). After the agreement, the cost of checking the app's close calls in float32 (masks whose int8
top-1/top-2 logit gap is small get a second, float32 pass): the share of masks it would take and the agreement
it would give; and, for scale, the agreement of the float32 model under bfloat16 autocast (no int8 at all).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

SENTENCE = "The children played in the [MASK] until the sun went down behind the quiet hills."


def paired_times(models: dict, inputs: dict, repeat: int, mask_id: int | None = None,
                 block: int = 1) -> dict[str, list[float]]:
    """Milliseconds per forward of each model, the models timed in turn ``repeat`` times; with ``mask_id`` the
    vocabulary projection runs at the positions of that token only, as the Fill-Mask tab runs it.

    With ``block`` > 1 each turn is ``block`` forwards of one model in a row, the first left untimed: the
    figures of one backend running alone (PyTorch's OpenMP threads keep spinning for a while after a call,
    which slows an ONNX Runtime call right after it, and the reverse); with 1, every call follows another
    model's, the pessimistic case of a server that mixes backends."""
    from model_utils.projection import head_only_at

    times = {name: [] for name in models}
    masks = None if mask_id is None else (inputs["input_ids"] == mask_id).nonzero(as_tuple=True)

    def forward(model) -> None:
        if masks is None:
            model(**inputs)
            return
        with head_only_at(model, *masks):
            model(**inputs)

    with torch.inference_mode():
        for model in models.values():
            forward(model)  # warm-up
        for _ in range(repeat):
            for name, model in models.items():
                if block > 1:
                    forward(model)
                for _ in range(max(1, block - 1)):
                    start = time.perf_counter()
                    forward(model)
                    times[name].append((time.perf_counter() - start) * 1000)
    return times


def speed(models: dict, tokenizer, repeat: int, block: int) -> None:
    for at_masks in (False, True):
        print("whole forward (vocabulary logits at every position)" if not at_masks else
              "as Fill-Mask serves it (vocabulary logits at the [MASK] only)",
              f"- each model alone, {block} calls in a row" if block > 1 else "- models called in turn")
        for batch in (1, 16):
            inputs = tokenizer([SENTENCE] * batch, return_tensors="pt")
            times = paired_times(models, inputs, repeat, tokenizer.mask_token_id if at_masks else None, block)
            reference, reference_best = statistics.median(times["float32"]), min(times["float32"])
            for name, values in times.items():
                median = statistics.median(values)
                print(f"batch {batch:>2}, {inputs['input_ids'].shape[1]} tokens, {name:<22} best {min(values):7.1f} ms"
                      f"  median {median:7.1f} ms  speed-up: median {reference / median:5.2f}x, "
                      f"best {reference_best / min(values):5.2f}x")


def heldout_masked_batches(examples: int) -> list[tuple[dict, torch.Tensor]]:
    """The held-out test batches with their fixed masks: (model inputs, masked positions), built once per run."""
    from model_utils.bundled.quality import WORDNET_SHARE, heldout_test_documents
    from model_utils.bundled import load_tokenizer
    from model_utils.pretrain import PretrainArguments, heldout_batches

    args = PretrainArguments(eval_examples=examples, wordnet_share=WORDNET_SHARE)
    return [({k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}, batch["labels"] != -100)
            for batch in heldout_batches(heldout_test_documents(), load_tokenizer(), args)]


def cloze_masked_batches(tokenizer) -> list[tuple[dict, torch.Tensor]]:
    """The hand-written cloze sentences as one batch: (model inputs, mask positions)."""
    from model_utils.bundled.quality import CLOZE_EVERYDAY, read_jsonl

    enc = tokenizer([r["text"] for r in read_jsonl(CLOZE_EVERYDAY)], padding=True, return_tensors="pt")
    return [(dict(enc), enc["input_ids"] == tokenizer.mask_token_id)]


@torch.inference_mode()
def top1_and_gaps(model, batches: list[tuple[dict, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``model``'s top-1 word at every mask of ``batches`` and its logit gap to the second word, the vocabulary
    projected at the masks only (as Fill-Mask does: for dynamic int8 it matters, the head's activations are
    quantized with the scale of the rows it gets)."""
    from model_utils.projection import logits_at

    tops, gaps = [], []
    for inputs, masked in batches:
        top2 = logits_at(model, inputs, *masked.nonzero(as_tuple=True)).topk(2, -1)
        tops.append(top2.indices[:, 0])
        gaps.append(top2.values[:, 0] - top2.values[:, 1])
    return torch.cat(tops), torch.cat(gaps)


def close_call_tradeoff(same: torch.Tensor, gap: torch.Tensor, gaps=(0.1, 0.2, 0.3, 0.5)) -> None:
    """What checking close calls in float32 would cost: for masks whose int8 top-1/top-2 logit ``gap`` is under a
    limit, the share (each a second, float32 forward pass) and the agreement if those took float32's answer."""
    for limit in gaps:
        close = gap < limit
        print(f"  int8 logit gap < {limit:.2f}: {float(close.float().mean()):6.1%} of masks recomputed in float32, "
              f"agreement {float((same | close).float().mean()):.2%}")


@torch.inference_mode()
def nsp_agreement() -> tuple[float, float, int]:
    """Same side of 0.5 (share) and largest |P(IsNext) difference| on the hand-written everyday pairs."""
    from model_utils.bundled import load_bundled
    from model_utils.bundled.quality import NSP_EVERYDAY, read_jsonl
    from model_utils.nsp_calibration import nsp_margins, pair_inputs
    from model_utils.quantize import quantize_int8

    rows = read_jsonl(NSP_EVERYDAY)
    model, tokenizer = load_bundled("bundled:minilm-pretrained", "next-sentence")
    inputs = pair_inputs(tokenizer, [(r["first"], r["second"]) for r in rows])
    p32 = torch.sigmoid(nsp_margins(model, inputs))
    p8 = torch.sigmoid(nsp_margins(quantize_int8(model, tokenizer), inputs))
    return float(((p32 > 0.5) == (p8 > 0.5)).float().mean()), float((p32 - p8).abs().max()), len(rows)


@torch.inference_mode()
def sentiment_accuracy(model, tokenizer) -> float:
    from model_utils.bundled.quality import sentiment_rows

    rows = sentiment_rows("test")
    correct = 0
    for i in range(0, len(rows), 64):
        chunk = rows[i:i + 64]
        enc = tokenizer([r["text"] for r in chunk], padding=True, truncation=True, max_length=128, return_tensors="pt")
        predicted = model(**enc).logits.argmax(-1).tolist()
        correct += sum(model.config.id2label[p] == r["label"] for p, r in zip(predicted, chunk))
    return correct / len(rows)


def torchao_variants(model) -> dict:
    """torchao's eager int8 schemes on copies of ``model``: dynamic (one scale per token for activations,
    per output row for weights) and weight-only; none without torchao."""
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig, quantize_
    except ImportError:
        print("torchao is not installed: its variants are left out")
        return {}
    variants = {}
    for name, config in (("int8 (torchao dyn)", Int8DynamicActivationInt8WeightConfig()),
                         ("int8 (torchao w-only)", Int8WeightOnlyConfig())):
        variants[name] = copy.deepcopy(model)
        quantize_(variants[name], config)
    return variants


class BFloat16Autocast(torch.nn.Module):
    """``model`` run under CPU bfloat16 autocast, logits back in float32; shares ``model``'s encoder
    (``base_model``) so that the projection at the masks works as for ``model``."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model, self.base_model = model, model.base_model

    def forward(self, **inputs):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output = self.model(**inputs)
        output.logits = output.logits.float()
        return output


def blockwise_variants(model, tokenizer) -> dict:
    """ONNX Runtime's ``MatMulNBits`` at 8 bits on the scaled model: weights and activations quantized in blocks
    of 32 and of 128 input channels; none without the ``onnx_ir`` package its quantizer needs."""
    import importlib.util

    from model_utils.quantize import quantize_int8

    if importlib.util.find_spec("onnx_ir") is None:
        print("onnx_ir is not installed: the MatMulNBits variants are left out (pip install onnx_ir)")
        return {}
    return {f"int8 (ORT blocks of {size})": quantize_int8(model, tokenizer, block_size=size) for size in (32, 128)}


def onnxruntime_version() -> str:
    try:
        import onnxruntime
    except ImportError:
        return "not installed"
    return onnxruntime.__version__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--examples", type=int, default=2000, help="held-out pretraining examples (masks)")
    parser.add_argument("--torchao", action="store_true")
    parser.add_argument("--speed-only", action="store_true", help="skip the agreement measurements")
    parser.add_argument("--blockwise", action="store_true",
                        help="add ONNX Runtime's MatMulNBits 8-bit (blocks of 32 and 128 channels; needs onnx_ir)")
    parser.add_argument("--block", type=int, default=6,
                        help="calls of one model in a row per turn (the first untimed); 1: models called in turn")
    args = parser.parse_args()

    from model_utils.bundled import load_bundled
    from model_utils.manager import model_bytes
    from model_utils.quantize import quantize_int8, quantized_bytes

    fp32, tokenizer = load_bundled("bundled:minilm-pretrained", "masked-lm")
    start = time.perf_counter()
    int8 = quantize_int8(fp32, tokenizer)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, engine {torch.backends.quantized.engine}, "
          f"onnxruntime {onnxruntime_version()}; the app's int8 model is {type(int8).__name__}: calibrating, exporting and "
          f"quantizing took {time.perf_counter() - start:.2f} s")
    models = {"float32": fp32, "int8 (app)": int8}
    if type(int8).__name__ == "OnnxRuntimeInt8Model":
        # the trade-off: the feed-forward output layers (inputs: GELU outputs, the widest range) in float32
        ffn_output = tuple(f"layer.{i}/output/dense/" for i in range(fp32.config.num_hidden_layers))
        models["int8 (app, FFN out fp32)"] = quantize_int8(fp32, tokenizer, keep_float=ffn_output)
        if args.blockwise:
            models.update(blockwise_variants(fp32, tokenizer))
    models.update({"int8 (torch, scaled)": quantize_int8(fp32, tokenizer, backend="torch"),
                   "int8 (torch.ao)": quantize_int8(fp32)})
    if args.torchao:
        models.update(torchao_variants(fp32))
    speed(models, tokenizer, args.repeat, args.block)
    if args.speed_only:
        return

    # float32's answers once; each variant against them
    heldout, cloze = heldout_masked_batches(args.examples), cloze_masked_batches(tokenizer)
    reference_heldout, reference_cloze = top1_and_gaps(fp32, heldout)[0], top1_and_gaps(fp32, cloze)[0]
    # for scale: no int8 at all, the float32 model under bfloat16 autocast (8-bit mantissas)
    variants = {**{n: m for n, m in models.items() if n != "float32"},
                "bfloat16 autocast (no int8)": BFloat16Autocast(fp32)}
    app_same = app_gaps = None
    for name, model in variants.items():
        top, gaps = top1_and_gaps(model, heldout)
        same = top == reference_heldout
        print(f"Fill-Mask top-1 agreement {name} vs float32, held-out masked tokens: {float(same.float().mean()):.2%} "
              f"of {len(same)}")
        cloze_same = top1_and_gaps(model, cloze)[0] == reference_cloze
        print(f"Fill-Mask top-1 agreement {name} vs float32, hand-written cloze:     "
              f"{float(cloze_same.float().mean()):.2%} of {len(cloze_same)}")
        if name == "int8 (app)":
            app_same, app_gaps = same, gaps
    if type(int8).__name__ == "OnnxRuntimeInt8Model":
        print("int8 (app): close calls checked in float32 (held-out masks; not served, the cost of a gate):")
        close_call_tradeoff(app_same, app_gaps)
    same_side, largest, pairs = nsp_agreement()
    print(f"Next Sentence same side of 0.5: {same_side:.2%} of {pairs} pairs; largest |dP(IsNext)| {largest:.4f}")

    classifier, tok = load_bundled("bundled:minilm-sentiment", "sequence-classification")
    acc32 = sentiment_accuracy(classifier, tok)
    acc8 = sentiment_accuracy(quantize_int8(classifier, tok), tok)
    print(f"sentiment accuracy: float32 {acc32:.2%}, int8 {acc8:.2%} (difference {100 * (acc8 - acc32):+.2f} points)")
    # ONNX Runtime's graph as stored (the cache reckons twice that for the session's working memory)
    weights8 = getattr(int8, "onnx_bytes", None) or model_bytes(int8) + quantized_bytes(int8)
    print(f"masked-LM weights: float32 {model_bytes(fp32) / 2**20:.0f} MB, int8 {weights8 / 2**20:.0f} MB")


if __name__ == "__main__":
    main()
