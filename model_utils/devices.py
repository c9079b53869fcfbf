"""Where models run: the best device (or ``PLM_DEVICE``) and its precision (or ``PLM_DTYPE``).

One choice for serving (the model manager) and training (fine-tuning, pretraining) alike.
"""

from __future__ import annotations

import torch

from model_utils.config import get_settings


def pick_device(override: str | None = None) -> torch.device:
    """The device to run on: the override if given, else CUDA, then Apple MPS, then CPU."""
    if override:
        try:
            return torch.device(override)
        except RuntimeError as err:
            raise ValueError(f"PLM_DEVICE={override!r} is not a valid torch device") from err
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(device: torch.device) -> torch.dtype:
    """bf16 on GPUs that support it, fp16 on other GPUs, fp32 on CPU (PLM_DTYPE overrides)."""
    override = get_settings().dtype
    if override:
        dtype = getattr(torch, override, None)
        if dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise ValueError(f"PLM_DTYPE={override!r} is not a torch dtype (float32, float16, bfloat16)")
        return dtype
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def training_device() -> torch.device:
    """The device training runs on: the same choice as serving (``PLM_DEVICE`` overrides)."""
    return pick_device(get_settings().device)
