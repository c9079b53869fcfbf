"""The int8 CPU path for serving: PyTorch dynamic quantization of every ``nn.Linear``.

``PLM_QUANTIZE`` (settings ``quantize``): ``int8`` quantizes the prediction models the app serves on the
CPU, ``auto`` does so when the serving device is the CPU, ``off`` (the default) never: on the bundled models
int8 agreed with float32 on only ~73-80% of held-out Fill-Mask top-1 predictions and cost ~0.5 points of
sentiment accuracy (targets: 99% and 0.5), so it is an opt-in speed/memory trade, not the default. The weights of each
``nn.Linear`` become int8 (per-tensor scale) and activations are quantized on the fly, row by row of the
batch, by ``torch.ao.quantization.quantize_dynamic``; embeddings, LayerNorms and softmax stay float32.
Chosen by measurement against torchao's eager ``Int8DynamicActivationInt8WeightConfig`` (no faster on
CPU without ``torch.compile``) and ONNX Runtime (an export per head and model): see
``benchmarks/bench_quantize.py`` and ``benchmarks/README.md`` for speed and agreement with float32.

Only heads that predict are quantized (:data:`QUANTIZED_HEADS`): the Attention tab and the Contextual lab
show the model's internals and keep float32, and so does anything that needs gradients (Integrated
Gradients explanations) or trains (fine-tuning and pretraining load their models themselves, never
through the serving cache).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import torch

logger = logging.getLogger(__name__)

MODES = ("auto", "int8", "off")
# Heads whose outputs are predictions (probabilities), where int8 agrees with float32 within the targets.
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
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=False)


def is_quantized(model: torch.nn.Module) -> bool:
    """True when ``model`` holds dynamically quantized linear layers."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    return any(isinstance(module, DynamicLinear) for module in model.modules())


def quantized_bytes(model: torch.nn.Module) -> int:
    """Bytes held by the packed int8 weights and float32 biases of ``model``'s quantized layers."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    return sum(m.in_features * m.out_features + 4 * m.out_features
               for m in model.modules() if isinstance(m, DynamicLinear))
