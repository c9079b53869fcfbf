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

import contextlib
import gc
import importlib.util
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch

from model_utils.delta_checkpoints import delta_base_of, is_delta_checkpoint, load_delta_checkpoint
from model_utils.config import Settings, get_settings, hub_offline
from model_utils.devices import pick_device, pick_dtype
from model_utils.errors import UserError, define
from model_utils.loading import hub_location, pretrained_kwargs, serialized
from model_utils.quantize import quantize_int8, quantized_bytes, wants_int8
from model_utils.registry import CheckpointInfo, default_checkpoint, model_name, resolve

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
    "contextual": "base",
    "text-generation": "causal-lm",
}

F = TypeVar("F", bound=Callable[..., Any])
logger = logging.getLogger(__name__)

define({
    "model.untrained_head": "{name} has no trained {head_words} head (missing weights: {missing}); choose another "
                            "model.",
    "model.no_head": "{name} has no {head_words} head; choose another model.",
    "model.pickle_only": "{name} has only PyTorch pickle weights (.bin/.pt); for safety the app loads .safetensors "
                         "weights only. Convert it with save_pretrained(safe_serialization=True).",
    "model.no_safetensors": "{name} has no .safetensors weights file; repair the checkpoint or save it again.",
    "model.damaged_weights": "Could not load {name}: its weights file is damaged or incomplete, or does not match "
                             "its config.json ({detail}).",
    "model.no_vocabulary": "{name} has no tokenizer vocabulary (tokenizer.json or vocab.txt is missing); repair the "
                           "checkpoint.",
    "model.tokenizer_too_big": "{name} is damaged: its tokenizer has {size} tokens but the model has embeddings for "
                               "{rows}.",
    "model.unknown_type": "{name} has model type {kind!r}, which this version of Transformers does not know; choose "
                          "another model.",
    "model.cannot_load": "Could not load {name}: {detail}",
    "model.needs_safetensors": "Could not load {name} (it needs .safetensors weights and a tokenizer): {detail}",
    "model.delta_base_offline": "{name} was fine-tuned from {base}, which is not in the local cache while the Hub is "
                                "unreachable; choose another model.",
    "model.bundled_missing": "The weights of {name} are missing from this installation: {detail}",
    "model.bundled_not_installed": "Bundled models are not installed, so {name} is unavailable.",
    "model.not_causal": "{name} reads the words on both sides of each position (a masked language model such as "
                        "BERT), so it cannot predict the next token; choose a left-to-right model such as gpt2 or "
                        "bundled:minilm-causal.",
})


def gpu_task(fn: F) -> F:
    """Decorate GPU work: ``spaces.GPU`` on ZeroGPU Spaces, unchanged elsewhere."""
    if os.environ.get("SPACES_ZERO_GPU") and importlib.util.find_spec("spaces") is not None:
        import spaces  # only present on Hugging Face Spaces

        return spaces.GPU(fn)
    return fn


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
    quantized: bool = False  # nn.Linear weights in int8 (PLM_QUANTIZE), the rest float32
    last_used: float = field(default_factory=time.monotonic)  # when a request last asked for it

    def idle_for(self) -> float:
        """Seconds since a request last asked for this model."""
        return time.monotonic() - self.last_used


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
        raise UserError("model.untrained_head", name=checkpoint, head=head, head_words=_HEAD_WORDS[head],
                        missing=", ".join(sorted(missing)[:3]))


def _check_left_to_right(name: str, model: Any) -> None:
    """Refuse a "causal-lm" model that is not left to right: transformers builds a ``BertLMHeadModel`` for any
    BERT checkpoint, but without ``is_decoder`` it reads both sides and its "next token" is noise.

    Tested on behaviour, which holds for every architecture (GPT-2's config says ``is_decoder=False``): two
    inputs that differ only in their last token must give the same logits at the earlier positions. Both have
    the same shape, so the same kernels run on every device and a left-to-right model gives equal numbers.
    """
    vocab = model.get_input_embeddings().num_embeddings
    device = next(model.parameters()).device
    first = torch.tensor([[1, 2, 3]], device=device) % vocab
    second = first.clone()
    second[0, 2] = 4 % vocab
    with torch.inference_mode():
        before, after = (model(ids).logits[0, :2].float() for ids in (first, second))
    if not torch.allclose(before, after, rtol=1e-4, atol=1e-5):
        raise UserError("model.not_causal", name=name)


def _damaged_weights(info: CheckpointInfo, err: Exception) -> UserError:
    """Why a checkpoint's weights could not be read (a pickle-only folder is refused)."""
    folder = Path(info.location)
    if info.source == "local" and not any(folder.glob("*.safetensors")):
        if any(folder.glob("*.bin")) or any(folder.glob("*.pt")) or any(folder.glob("*.pth")):
            return UserError("model.pickle_only", name=info.name)
        return UserError("model.no_safetensors", name=info.name)
    detail = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    if "ignore_mismatched_sizes" in detail:  # transformers points at a report the user cannot see
        detail = "tensor shapes differ from the config"
    return UserError("model.damaged_weights", name=info.name, detail=detail)


def _check_tokenizer(info: CheckpointInfo, model: Any, tokenizer: Any) -> None:
    """Refuse a tokenizer without a vocabulary, or with more tokens than the model has embeddings."""
    size = len(tokenizer)
    if size <= len(set(tokenizer.all_special_ids)):
        raise UserError("model.no_vocabulary", name=info.name)
    rows = model.get_input_embeddings().num_embeddings
    if size > rows:
        raise UserError("model.tokenizer_too_big", name=info.name, size=size, rows=rows)


@serialized
def _load_pretrained(info: CheckpointInfo, head: str, offline: bool,
                     attn_implementation: str | None) -> tuple[Any, Any]:
    """Load (model, tokenizer) of a Hub or local checkpoint from safetensors; ValueError on failure."""
    from safetensors import SafetensorError
    from transformers import AutoTokenizer

    local_only = offline or info.source == "local"
    if info.source == "local" and is_delta_checkpoint(info.location):
        return _load_delta(info, head, offline, attn_implementation)
    kwargs = pretrained_kwargs(local_only)
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        location = hub_location(info.location, local_only) if info.source == "hub" else info.location
        model, loading_info = _auto_class(head).from_pretrained(
            location, output_loading_info=True, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(
            location, trust_remote_code=False, local_files_only=local_only)
    except (SafetensorError, RuntimeError) as err:  # truncated file, shapes unlike config.json
        raise _damaged_weights(info, err) from err
    except ValueError as err:  # transformers' words: which head or architecture it could not build
        if "Unrecognized configuration class" in str(err) or "does not support" in str(err):
            raise UserError("model.no_head", name=info.name, head=head, head_words=_HEAD_WORDS[head]) from err
        if "does not recognize this architecture" in str(err):
            kind = re.search(r"model type `([^`]*)`", str(err))
            raise UserError("model.unknown_type", name=info.name, kind=kind[1] if kind else "?") from err
        raise UserError("model.cannot_load", name=info.name, detail=str(err)[:300]) from err
    except OSError as err:
        if offline and info.source == "hub":
            raise UserError("model.hub_offline", name=info.name) from err
        if info.source == "local" and not any(Path(info.location).glob("*.safetensors")):
            raise _damaged_weights(info, err) from err
        raise UserError("model.needs_safetensors", name=info.name, detail=str(err)[:300]) from err
    _check_head_loaded(info.name, head, model, loading_info)
    _check_tokenizer(info, model, tokenizer)
    return model, tokenizer


def _load_delta(info: CheckpointInfo, head: str, offline: bool, attn_implementation: str | None) -> tuple[Any, Any]:
    """(model, tokenizer) of a checkpoint saved as a LoRA delta over a bundled or Hub base."""
    try:
        model, tokenizer, unfilled = load_delta_checkpoint(info.location, _auto_class(head), local_only=offline,
                                                           attn_implementation=attn_implementation)
    except OSError as err:
        raise UserError("model.delta_base_offline", name=info.name, base=delta_base_of(info.location)) from err
    except (RuntimeError, KeyError) as err:
        raise _damaged_weights(info, err) from err
    if head in _TRAINED_HEADS and unfilled:
        raise UserError("model.untrained_head", name=info.name, head=head, head_words=_HEAD_WORDS[head],
                        missing=", ".join(unfilled[:3]))
    _check_tokenizer(info, model, tokenizer)
    return model, tokenizer


@serialized
def _load_bundled(info: CheckpointInfo, head: str, attn_implementation: str | None) -> tuple[Any, Any]:
    try:
        from model_utils.bundled import BUNDLED_MODELS, load_bundled
    except ImportError as err:
        raise UserError("model.bundled_not_installed", name=info.name) from err
    if head not in BUNDLED_MODELS.get(info.name, {}).get("heads", (head,)):
        raise UserError("model.no_head", name=info.name, head=head, head_words=_HEAD_WORDS[head])
    try:
        return load_bundled(info.name, head, attn_implementation=attn_implementation)
    except FileNotFoundError as err:
        raise UserError("model.bundled_missing", name=info.name, detail=str(err)) from err


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
        task = task or next((t for t, h in _TASK_HEADS.items() if h == head), None)
        if task is None:
            raise UserError("model.none_chosen")
        return default_checkpoint(task)

    def get(self, checkpoint: str | None, head: str, *, task: str | None = None,
            attn_implementation: str | None = None, full_precision: bool = False) -> LoadedModel:
        """Return the cached model for (checkpoint, head), loading it on first use.

        Prediction heads served on the CPU are int8 when ``PLM_QUANTIZE`` asks for it, unless
        ``full_precision`` (gradients, as in explanations, need the float32 model; it is cached apart).
        """
        if head not in HEADS:
            raise ValueError(f"Unknown model head {head!r}; expected one of {', '.join(HEADS)}")
        name = self.resolve_checkpoint(checkpoint, task, head)
        int8 = not full_precision and wants_int8(get_settings().quantize, self.device, head)
        key = (name, head, attn_implementation) + (("int8",) if int8 else ())
        with self._lock:
            if key in self._models:
                return self._touch(key)
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # concurrent first requests for one key load it once
            with self._lock:
                if key in self._models:
                    return self._touch(key)
            loaded = self._loader(name, head, attn_implementation)
            if int8:
                loaded = _quantized(loaded)
            with self._lock:
                self._models[key] = loaded
                self._key_locks.pop(key, None)
                self._evict(get_settings(), keep=key)
            return loaded

    def _touch(self, key: tuple) -> LoadedModel:
        """The cached model of ``key``, marked most recently used (caller holds the lock)."""
        self._models.move_to_end(key)
        loaded = self._models[key]
        loaded.last_used = time.monotonic()
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
        if head == "causal-lm":
            _check_left_to_right(name, model)
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
                     "dtype": _dtype_name(m),
                     "attn_implementation": m.attn_implementation or "default", "int8": m.quantized,
                     "approx_bytes": m.approx_bytes, "approx_mb": round(m.approx_bytes / 2**20, 1)}
                    for m in self._models.values()]

    def unload(self, checkpoint: str | None = None, idle_for: float | None = None) -> int:
        """Unload every model (or every head of one checkpoint); returns how many were dropped.

        With ``idle_for``, only models no request asked for in the last ``idle_for`` seconds and
        that nobody is using right now (so one visitor cannot evict what others are working with).
        """
        with self._lock:
            keys = [k for k, m in self._models.items() if (checkpoint is None or k[0] == checkpoint)
                    and (idle_for is None or (m.idle_for() >= idle_for and _not_in_use(m)))]
            for key in keys:
                del self._models[key]
        if keys:
            _free_memory()
        return len(keys)


def warm_up(tasks: list[str], nice: int = 5) -> threading.Thread:
    """Load the default model of each task in a background thread and run one short forward pass through it
    (torch's first call is slow), at a lower CPU priority so the server answering its first page goes first.
    Failures are logged and left for the first request to report. Returns the started thread."""
    def load_all() -> None:
        with contextlib.suppress(OSError, AttributeError):  # Linux: a thread can have its own nice value
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        for task in tasks:
            try:
                loaded = get_manager().get(None, _TASK_HEADS[task], task=task)
                with loaded.lock, torch.inference_mode():
                    loaded.model(**loaded.tokenizer("Warm up.", return_tensors="pt").to(loaded.device))
            except Exception:  # noqa: BLE001 - the first request shows the error in the user's language
                logger.warning("warm start: the default model of %s did not load", task, exc_info=True)

    thread = threading.Thread(target=load_all, name="plm-warm-start", daemon=True)
    thread.start()
    return thread


def _dtype_name(loaded: LoadedModel) -> str:
    """``float32``, ``int8/float32`` (int8 linear layers, the rest float32), ``bfloat16``...: how ``loaded`` computes."""
    weight = next(iter(loaded.model.parameters()), None)
    rest = str(weight.dtype).replace("torch.", "") if weight is not None else "float32"  # ONNX Runtime's int8 graph
    return ("int8/" if loaded.quantized else "") + rest


def _quantized(loaded: LoadedModel) -> LoadedModel:
    """``loaded`` with its model's linear layers scaled and dynamically quantized to int8 (ONNX Runtime where
    installed, else PyTorch; float32 freed)."""
    model = quantize_int8(loaded.model, loaded.tokenizer, in_place=True)
    loaded.model, loaded.quantized = model, True
    loaded.approx_bytes = model_bytes(model) + quantized_bytes(model)
    return loaded


def _not_in_use(loaded: LoadedModel) -> bool:
    """True if no thread holds the model's lock right now."""
    if not loaded.lock.acquire(blocking=False):
        return False
    loaded.lock.release()
    return True


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
