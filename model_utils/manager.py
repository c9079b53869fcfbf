"""Lazy, thread-safe, memory-bounded model cache.

``get_manager().get(checkpoint, head)`` returns a :class:`LoadedModel` (model in eval
mode on the best device, its tokenizer, and a lock to hold while using them). Models
load on first use and are kept in an LRU cache bounded by count and by an estimated
memory budget (settings); evicted models are freed at once. Weights load from
safetensors only and never with ``trust_remote_code``.

On Hugging Face ZeroGPU Spaces, :func:`gpu_task` wraps GPU work in ``spaces.GPU``;
elsewhere it returns the function unchanged.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch

from model_utils.config import Settings, get_settings, hub_offline
from model_utils.loading import serialized
from model_utils.registry import CheckpointInfo, model_name, resolve

HEADS: tuple[str, ...] = (
    "masked-lm", "next-sentence", "sequence-classification", "base", "causal-lm", "pretraining",
)
# Heads whose weights must come from the checkpoint: a randomly initialised one would give noise.
_TRAINED_HEADS = {"masked-lm", "next-sentence", "sequence-classification", "pretraining", "causal-lm"}
_HEAD_WORDS = {
    "masked-lm": "masked-language-model (fill-mask)",
    "next-sentence": "next-sentence-prediction",
    "sequence-classification": "sequence-classification",
    "base": "encoder",
    "causal-lm": "causal-language-model",
    "pretraining": "pretraining (MLM + NSP)",
}
_TASK_HEADS = {
    "fill-mask": "masked-lm", "next-sentence": "next-sentence", "text-classification":
    "sequence-classification", "attention": "base", "fine-tune-base": "base", "pretrain-base": "pretraining",
    "text-generation": "causal-lm",
}

F = TypeVar("F", bound=Callable[..., Any])


def gpu_task(fn: F) -> F:
    """Decorate GPU work: ``spaces.GPU`` on ZeroGPU Spaces, unchanged elsewhere."""
    if os.environ.get("SPACES_ZERO_GPU") and importlib.util.find_spec("spaces") is not None:
        import spaces  # only present on Hugging Face Spaces

        return spaces.GPU(fn)
    return fn


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


@dataclass
class LoadedModel:
    """A model ready to use. Hold ``lock`` while using the tokenizer and the model together."""

    checkpoint: str
    head: str
    model: Any
    tokenizer: Any
    device: torch.device
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    approx_bytes: int = 0
    attn_implementation: str | None = None
    info: CheckpointInfo | None = None


def model_bytes(model: torch.nn.Module) -> int:
    """Bytes taken by a model's parameters and buffers (shared tensors counted once)."""
    seen: set[int] = set()
    total = 0
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            total += tensor.numel() * tensor.element_size()
    return total


def _auto_class(head: str) -> Any:
    import transformers

    names = {
        "masked-lm": "AutoModelForMaskedLM",
        "next-sentence": "AutoModelForNextSentencePrediction",
        "sequence-classification": "AutoModelForSequenceClassification",
        "base": "AutoModel",
        "causal-lm": "AutoModelForCausalLM",
        "pretraining": "AutoModelForPreTraining",
    }
    return getattr(transformers, names[head])


def _check_head_loaded(checkpoint: str, head: str, model: Any, loading_info: dict) -> None:
    """Refuse a model whose task head was randomly initialised (weights missing from checkpoint)."""
    if head not in _TRAINED_HEADS:
        return
    prefix = getattr(model, "base_model_prefix", "") + "."
    missing = [k for k in loading_info.get("missing_keys", ()) if not k.startswith(prefix)]
    tied = set(getattr(model, "_tied_weights_keys", None) or ())
    missing = [k for k in missing if k not in tied]
    if missing:
        raise ValueError(f"{checkpoint} has no trained {_HEAD_WORDS[head]} head "
                         f"(missing weights: {', '.join(sorted(missing)[:3])}); choose another model.")


def pretrained_kwargs(local_only: bool) -> dict[str, Any]:
    """``from_pretrained`` arguments for user-chosen checkpoints: safetensors only, no remote code.

    ``local_only`` also reaches the adapter lookup of the Auto classes, which otherwise asks the
    Hub for ``adapter_config.json`` with retries (about 25 s per model while it is unreachable).
    """
    return {"use_safetensors": True, "trust_remote_code": False, "local_files_only": local_only,
            "adapter_kwargs": {"local_files_only": local_only}}


def _damaged_weights(info: CheckpointInfo, err: Exception) -> str:
    """Why a checkpoint's weights could not be read, in words (a pickle-only folder is refused)."""
    folder = Path(info.location)
    if info.source == "local" and not any(folder.glob("*.safetensors")):
        if any(folder.glob("*.bin")) or any(folder.glob("*.pt")) or any(folder.glob("*.pth")):
            return (f"{info.name} has only PyTorch pickle weights (.bin/.pt); for safety the app loads "
                    ".safetensors weights only. Convert it with save_pretrained(safe_serialization=True).")
        return f"{info.name} has no .safetensors weights file; repair the checkpoint or save it again."
    detail = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    if "ignore_mismatched_sizes" in detail:  # transformers points at a report the user cannot see
        detail = "tensor shapes differ from the config"
    return (f"Could not load {info.name}: its weights file is damaged or incomplete, or does not match "
            f"its config.json ({detail}).")


def _check_tokenizer(info: CheckpointInfo, model: Any, tokenizer: Any) -> None:
    """Refuse a tokenizer without a vocabulary, or with more tokens than the model has embeddings."""
    size = len(tokenizer)
    if size <= len(set(tokenizer.all_special_ids)):
        raise ValueError(f"{info.name} has no tokenizer vocabulary (tokenizer.json or vocab.txt is "
                         "missing); repair the checkpoint.")
    rows = model.get_input_embeddings().num_embeddings
    if size > rows:
        raise ValueError(f"{info.name} is damaged: its tokenizer has {size} tokens but the model has "
                         f"embeddings for {rows}.")


@serialized
def _load_pretrained(info: CheckpointInfo, head: str, offline: bool,
                     attn_implementation: str | None) -> tuple[Any, Any]:
    """Load (model, tokenizer) of a Hub or local checkpoint from safetensors; ValueError on failure."""
    from safetensors import SafetensorError
    from transformers import AutoTokenizer

    local_only = offline or info.source == "local"
    kwargs = pretrained_kwargs(local_only)
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        model, loading_info = _auto_class(head).from_pretrained(
            info.location, output_loading_info=True, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(
            info.location, trust_remote_code=False, local_files_only=local_only)
    except (SafetensorError, RuntimeError) as err:  # truncated file, shapes unlike config.json
        raise ValueError(_damaged_weights(info, err)) from err
    except ValueError as err:
        if "Unrecognized configuration class" in str(err) or "does not support" in str(err):
            raise ValueError(f"{info.name} has no {_HEAD_WORDS[head]} head; choose another model.") from err
        if "does not recognize this architecture" in str(err):
            kind = re.search(r"model type `([^`]*)`", str(err))
            raise ValueError(f"{info.name} has model type {kind[1] if kind else '?'!r}, which this version "
                             "of Transformers does not know; choose another model.") from err
        raise ValueError(f"Could not load {info.name}: {err}") from err
    except OSError as err:
        if offline and info.source == "hub":
            raise ValueError(f"{info.name} is a Hugging Face Hub model and the Hub is unreachable "
                             "(offline mode); choose a bundled or local model.") from err
        if info.source == "local" and not any(Path(info.location).glob("*.safetensors")):
            raise ValueError(_damaged_weights(info, err)) from err
        raise ValueError(f"Could not load {info.name} (it needs .safetensors weights and a "
                         f"tokenizer): {err}") from err
    _check_head_loaded(info.name, head, model, loading_info)
    _check_tokenizer(info, model, tokenizer)
    return model, tokenizer


@serialized
def _load_bundled(info: CheckpointInfo, head: str, attn_implementation: str | None) -> tuple[Any, Any]:
    try:
        from model_utils.bundled import load_bundled
    except ImportError as err:
        raise ValueError(f"Bundled models are not installed, so {info.name} is unavailable.") from err
    try:
        return load_bundled(info.name, head, attn_implementation=attn_implementation)
    except FileNotFoundError as err:
        raise ValueError(f"The weights of {info.name} are missing from this installation: {err}") from err


class ModelManager:
    """Process-wide LRU cache of loaded models, bounded by count and by memory."""

    def __init__(self, loader: Callable[..., tuple[Any, Any]] | None = None) -> None:
        self._models: OrderedDict[tuple, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()  # guards _models and _key_locks
        self._key_locks: dict[tuple, threading.Lock] = {}
        self._loader = loader or self._load  # seam for tests

    @property
    def device(self) -> torch.device:
        """Device new models are placed on."""
        return pick_device(get_settings().device)

    def resolve_checkpoint(self, checkpoint: str | None, task: str | None, head: str) -> str:
        """The checkpoint name to load: the given one, else the task's default (bundled offline)."""
        name = model_name(checkpoint)  # ValueError for a number, a list, a 5,000-character id
        if name:
            return name
        settings = get_settings()
        task = task or next((t for t, h in _TASK_HEADS.items() if h == head), None)
        if task is None:
            raise ValueError("Please choose a model.")
        return settings.default_checkpoint(task, hub_offline(settings))

    def get(self, checkpoint: str | None, head: str, *, task: str | None = None,
            attn_implementation: str | None = None) -> LoadedModel:
        """Return the cached model for (checkpoint, head), loading it on first use."""
        if head not in HEADS:
            raise ValueError(f"Unknown model head {head!r}; expected one of {', '.join(HEADS)}")
        name = self.resolve_checkpoint(checkpoint, task, head)
        key = (name, head, attn_implementation)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # concurrent first requests for one key load it once
            with self._lock:
                if key in self._models:
                    self._models.move_to_end(key)
                    return self._models[key]
            loaded = self._loader(name, head, attn_implementation)
            with self._lock:
                self._models[key] = loaded
                self._key_locks.pop(key, None)
                self._evict(get_settings(), keep=key)
            return loaded

    def _load(self, name: str, head: str, attn_implementation: str | None) -> LoadedModel:
        info = resolve(name)
        settings = get_settings()
        if info.source == "bundled":
            model, tokenizer = _load_bundled(info, head, attn_implementation)
        else:
            model, tokenizer = _load_pretrained(info, head, hub_offline(settings), attn_implementation)
        device = pick_device(settings.device)
        model = model.to(device=device, dtype=pick_dtype(device)).eval()
        return LoadedModel(name, head, model, tokenizer, device, approx_bytes=model_bytes(model),
                           attn_implementation=attn_implementation, info=info)

    def _evict(self, settings: Settings, keep: tuple) -> None:
        """Drop least recently used models until within count and memory limits (caller holds lock)."""
        evicted = False
        while len(self._models) > 1:
            total = sum(m.approx_bytes for m in self._models.values())
            if len(self._models) <= settings.cache_max_models and total <= settings.cache_max_bytes:
                break
            oldest = next(k for k in self._models if k != keep)
            del self._models[oldest]
            evicted = True
        if evicted:
            _free_memory()

    def loaded(self) -> list[dict]:
        """One plain dict per loaded model, most recently used last."""
        with self._lock:
            return [{"checkpoint": m.checkpoint, "head": m.head, "device": str(m.device),
                     "dtype": str(next(m.model.parameters()).dtype).replace("torch.", ""),
                     "attn_implementation": m.attn_implementation or "default",
                     "approx_bytes": m.approx_bytes, "approx_mb": round(m.approx_bytes / 2**20, 1)}
                    for m in self._models.values()]

    def unload(self, checkpoint: str | None = None) -> int:
        """Unload every model (or every head of one checkpoint); returns how many were dropped."""
        with self._lock:
            keys = [k for k in self._models if checkpoint is None or k[0] == checkpoint]
            for key in keys:
                del self._models[key]
        if keys:
            _free_memory()
        return len(keys)


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def device_summary() -> dict:
    """Plain description of the compute device for the Models panel."""
    device = pick_device(get_settings().device)
    summary = {"device": str(device), "dtype": str(pick_dtype(device)).replace("torch.", ""),
               "name": "CPU", "memory_used_mb": None, "memory_total_mb": None}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        summary.update(name=props.name, memory_total_mb=round(props.total_memory / 2**20),
                       memory_used_mb=round(torch.cuda.memory_allocated(device) / 2**20))
    elif device.type == "mps":
        summary["name"] = "Apple MPS"
    return summary


_manager: ModelManager | None = None
_manager_lock = threading.Lock()


def get_manager() -> ModelManager:
    """The process-wide :class:`ModelManager`."""
    global _manager
    with _manager_lock:
        if _manager is None:
            _manager = ModelManager()
        return _manager
