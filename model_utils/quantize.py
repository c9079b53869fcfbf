"""The int8 CPU path for serving: PyTorch dynamic quantization of every ``nn.Linear``.

``PLM_QUANTIZE`` (settings ``quantize``): ``int8`` quantizes the prediction models the app serves on the CPU,
``auto`` does so when the serving device is the CPU (both leave a GPU model alone: these kernels are
CPU-only), ``off`` (the default) never. The weights of each ``nn.Linear`` become int8 (one scale per output
row) and activations are quantized on the fly by ``torch.ao.quantization.quantize_dynamic``; embeddings,
LayerNorms and softmax stay float32. It is built into PyTorch (no extra dependency, no export per model).
torchao 0.18 was measured beside it (``bench_quantize.py --torchao``): more faithful (per-token activations
94% agreement, weight-only 97.5%) but slower than float32 in eager mode on this CPU, so not used; ONNX Runtime
was not measured.

Measured on the bundled models (``benchmarks/bench_quantize.py``, figures in ``benchmarks/README.md``): 1.9x
faster forward passes at batch 1 and 1.4x at batch 16, but only ~80% of held-out Fill-Mask top-1 predictions
equal float32's (one scale per matrix: ~73%) and sentiment accuracy drops ~0.55 points, against targets of 99%
and 0.5: the bundled MiniLM's word distributions are flat, so small rounding flips the top word. Hence opt-in.

Only heads that predict are quantized (:data:`QUANTIZED_HEADS`): the Attention tab and the Contextual lab show
the model's internals and keep float32, and so does anything that needs gradients (explanations ask the
manager for ``full_precision``) or trains (fine-tuning and pretraining load their models themselves, never
through the serving cache).
"""

from __future__ import annotations

import warnings

import torch


MODES = ("auto", "int8", "off")
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


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` (float32, eval mode, on the CPU) with every ``nn.Linear`` dynamically quantized to int8.

    The float32 weights of the replaced layers are freed. PyTorch 2.13 marks ``torch.ao.quantization`` as
    deprecated in favour of torchao; its dynamic int8 kernels are still the fastest eager CPU path we
    measured, so the warnings are silenced here and the benchmark says when that changes.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        # one scale per output row: ~7 points more top-1 agreement with float32 than one scale per matrix
        return quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, inplace=False)


def is_quantized(model: torch.nn.Module) -> bool:
    """True when ``model`` holds dynamically quantized linear layers."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    return any(isinstance(module, DynamicLinear) for module in model.modules())


def quantized_bytes(model: torch.nn.Module) -> int:
    """Bytes held by the packed int8 weights and float32 biases of ``model``'s quantized layers."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    return sum(m.in_features * m.out_features + 4 * m.out_features
               for m in model.modules() if isinstance(m, DynamicLinear))
