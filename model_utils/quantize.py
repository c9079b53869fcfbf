"""The int8 CPU path for serving: SmoothQuant-style scaling, then PyTorch dynamic quantization of ``nn.Linear``.

``PLM_QUANTIZE`` (settings ``quantize``): ``int8`` quantizes the prediction models the app serves on the CPU,
``auto`` does so when the serving device is the CPU (both leave a GPU model alone: these kernels are
CPU-only), ``off`` (the default) never. The weights of each ``nn.Linear`` become int8 (one scale per output
row) and activations are quantized on the fly, one scale per matrix, by ``torch.ao.quantization.quantize_dynamic``;
embeddings, LayerNorms and softmax stay float32. It is built into PyTorch (no extra dependency, no export per
model).

One scale per activation matrix is what loses most: a few input channels of BERT's linear layers carry values
10-15x the median (the FFN's input and output reach 24-28 where the median is ~2), and they set the scale for all
the others. Before quantizing, each linear layer's input channel j is therefore divided by
``s_j = max|x_j|^a / max|W_:,j|^(1-a)`` and its weight column multiplied by ``s_j`` (SmoothQuant, Xiao et al.,
ICML 2023): the same function in exact arithmetic, with the outliers moved into the weights, whose scales are
per row. The ``max|x_j|`` come from one pass over :func:`calibration_texts` (256 sentences, 15% of tokens
masked like Fill-Mask inputs; ~3 s on 2 cores) when the model is quantized; the division is one element-wise
product before each layer. Layers whose weight is tied to another (the MLM decoder
shares the word embeddings) are left unscaled.

Measured on the bundled models (``benchmarks/bench_quantize.py --repeat 40``, quiet 2-core machine, figures in
``benchmarks/README.md``): Fill-Mask top-1 agreement with float32 86.9% of 5,410 held-out masked tokens and 93.2%
of the 88 hand-written cloze sentences (plain dynamic int8: 80.1% and 75.0%), Next Sentence on the same side of 0.5
for 98.9% of the everyday pairs, sentiment accuracy -0.09 points (plain: -0.55); the whole forward 1.6-1.8x faster
than float32 at batch 1 and 1.3x at batch 16 across two quiet runs (plain: 1.7-2.0x and 1.4x; the element-wise
products cost ~0.5 ms a forward), and as Fill-Mask runs it (vocabulary projection at the masks only) 1.5x and 1.7x. ``a`` was chosen on the held-out agreement with an earlier calibration set (0.5, the paper's default,
gave 70%; 0.7 87.5%, 0.8 88.4%, 0.9 85.9%, 1.0 83.3%); scaling only the feed-forward layers gave 83%. Still short
of the 99% target: the bundled MiniLM's word distributions are flat (10% of held-out masks have a top-1/top-2
logit gap under 0.11), so small rounding flips the top word; even weight-only int8 flips 2.5%. Hence opt-in.
torchao 0.18 was measured beside it (``--torchao``): per-token activations 94%, weight-only 97.5%, but slower
than float32 in eager mode on this CPU; ONNX Runtime was not measured.

Only heads that predict are quantized (:data:`QUANTIZED_HEADS`): the Attention tab and the Contextual lab show
the model's internals and keep float32, and so does anything that needs gradients (explanations ask the
manager for ``full_precision``) or trains (fine-tuning and pretraining load their models themselves, never
through the serving cache).
"""

from __future__ import annotations

import copy
import csv
import logging
import warnings
from collections import Counter

import torch

from model_utils.inputs import model_token_limit

logger = logging.getLogger(__name__)

MODES = ("auto", "int8", "off")
# Migration strength of the scaling (0: none, 1: all of an input channel's range moved into the weights),
# chosen by the agreement measured on held-out masked tokens (module docstring).
SMOOTHING_ALPHA = 0.8
CALIBRATION_TEXTS = 256
# Share of calibration tokens replaced by the mask token: Fill-Mask inputs carry masks, and their activations differ.
CALIBRATION_MASKED = 0.15
# Heads whose outputs are predictions (probabilities), not internals shown as they are.
QUANTIZED_HEADS = frozenset({"masked-lm", "next-sentence", "sequence-classification"})


def wants_int8(mode: str | None, device: torch.device, head: str) -> bool:
    """True when a ``head`` model served on ``device`` should be quantized under ``PLM_QUANTIZE=mode``."""
    mode = (mode or "off").lower()
    if mode not in MODES:
        raise ValueError(f"PLM_QUANTIZE={mode!r} is not one of {', '.join(MODES)}")
    return mode != "off" and device.type == "cpu" and head in QUANTIZED_HEADS and int8_supported()


def int8_supported() -> bool:
    """True when this PyTorch build has a quantized CPU engine (x86/fbgemm or qnnpack on ARM)."""
    return any(engine != "none" for engine in torch.backends.quantized.supported_engines)


def quantize_int8(model: torch.nn.Module, tokenizer=None, alpha: float = SMOOTHING_ALPHA) -> torch.nn.Module:
    """A copy of ``model`` (float32, eval mode, on the CPU) with every ``nn.Linear`` dynamically quantized to int8.

    With a ``tokenizer`` (and ``alpha`` > 0) the linear layers' inputs are first scaled per channel from one pass
    over :func:`calibration_texts` (module docstring); without one, plain dynamic quantization. ``model`` is left
    as it was. PyTorch 2.13 marks ``torch.ao.quantization`` as deprecated in favour of torchao; its dynamic int8
    kernels are still the fastest eager CPU path we measured, so the warnings are silenced here and the
    benchmark says when that changes.
    """
    own_copy = False
    if tokenizer is not None and alpha > 0:
        try:
            ranges = input_ranges(model, tokenizer, calibration_texts())
        except Exception:  # noqa: BLE001 - an odd model or tokenizer still gets the plain int8 path
            logger.warning("int8: calibration failed, quantizing without scaling", exc_info=True)
        else:
            model, own_copy = smooth_linears(copy.deepcopy(model), ranges, alpha), True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        # one scale per output row: ~7 points more top-1 agreement with float32 than one scale per matrix
        # the scaled copy is quantized in place: one copy of the weights at a time beside the caller's model
        return quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, inplace=own_copy)


class SmoothedLinear(torch.nn.Module):
    """``linear(x * inv_scale)``, where ``linear``'s weight columns were multiplied by ``1 / inv_scale``."""

    def __init__(self, linear: torch.nn.Linear, inv_scale: torch.Tensor) -> None:
        super().__init__()
        self.linear = linear
        self.register_buffer("inv_scale", inv_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x * self.inv_scale)


def calibration_texts(count: int = CALIBRATION_TEXTS) -> list[str]:
    """English sentences for the activation ranges: the first ``count`` training rows of the bundled sentiment
    set (movie-review snippets; never the held-out data the agreement is measured on)."""
    from model_utils.bundled import SAMPLE_SENTIMENT_CSV

    with open(SAMPLE_SENTIMENT_CSV, encoding="utf-8", newline="") as fh:
        rows = [r["text"] for r in csv.DictReader(fh) if r["split"] == "train"]
    return rows[:count]


@torch.inference_mode()
def input_ranges(model: torch.nn.Module, tokenizer, texts: list[str], batch_size: int = 32) -> dict[str, torch.Tensor]:
    """Largest absolute value of each input channel of every ``nn.Linear`` of ``model`` over ``texts``, with
    :data:`CALIBRATION_MASKED` of their tokens masked (seeded) where the tokenizer has a mask token."""
    ranges: dict[str, torch.Tensor] = {}

    def record(name: str):
        def hook(_module, inputs, _output) -> None:
            seen = inputs[0].detach().abs().reshape(-1, inputs[0].shape[-1]).amax(0).float()
            ranges[name] = torch.maximum(ranges[name], seen) if name in ranges else seen
        return hook

    handles = [m.register_forward_hook(record(name)) for name, m in model.named_modules()
               if isinstance(m, torch.nn.Linear)]
    if getattr(tokenizer, "pad_token", None) is None:
        batch_size = 1  # e.g. GPT-2's tokenizer cannot pad
    longest = model_token_limit(getattr(model, "config", None), tokenizer, cap=128)
    was_training = model.training
    model.eval()
    try:
        generator = torch.Generator().manual_seed(0)
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(texts[i:i + batch_size], padding=True, truncation=True, max_length=longest,
                            return_tensors="pt", return_special_tokens_mask=True)
            special = enc.pop("special_tokens_mask").bool() | (enc["attention_mask"] == 0)
            if getattr(tokenizer, "mask_token_id", None) is not None:
                chosen = (torch.rand(enc["input_ids"].shape, generator=generator) < CALIBRATION_MASKED) & ~special
                enc["input_ids"] = enc["input_ids"].masked_fill(chosen, tokenizer.mask_token_id)
            model(**enc)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return ranges


@torch.no_grad()
def smooth_linears(model: torch.nn.Module, ranges: dict[str, torch.Tensor], alpha: float) -> torch.nn.Module:
    """``model`` (changed in place) with each measured, untied ``nn.Linear`` wrapped in a :class:`SmoothedLinear`
    whose weight columns carry ``s = max|x|^alpha / max|W|^(1 - alpha)``: the same function, flatter inputs."""
    uses = Counter(id(p) for _, p in model.named_parameters(remove_duplicate=False))
    for name, linear in list(model.named_modules()):
        if not isinstance(linear, torch.nn.Linear) or name not in ranges or uses[id(linear.weight)] > 1:
            continue  # a tied weight (the MLM decoder is the word embeddings): scaling it would change both
        weight_range = linear.weight.abs().amax(0).clamp(min=1e-5)
        scale = (ranges[name].clamp(min=1e-5).pow(alpha) / weight_range.pow(1 - alpha)).clamp(min=1e-5)
        linear.weight.mul_(scale)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child,
                SmoothedLinear(linear, (1.0 / scale).to(linear.weight.dtype)))
    return model


def is_quantized(model: torch.nn.Module) -> bool:
    """True when ``model`` holds dynamically quantized linear layers."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    return any(isinstance(module, DynamicLinear) for module in model.modules())


def quantized_bytes(model: torch.nn.Module) -> int:
    """Bytes held by the packed int8 weights and float32 biases of ``model``'s quantized layers."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    return sum(m.in_features * m.out_features + 4 * m.out_features
               for m in model.modules() if isinstance(m, DynamicLinear))
