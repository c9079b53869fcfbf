"""How long a training run will take on this machine, said before it starts.

A run is first counted (:class:`Workload`): how many optimisation steps, how many tokens pass through the
model forwards and backwards, how many only forwards (evaluations), and how many weights each token
meets. Its cost in floating-point operations follows (about 6 per weight and token for a training
pass, 2 for a forward pass); :class:`Calibration` turns that into seconds with two figures per kind of
run and device: seconds per GFLOP (per CPU thread on a CPU) and fixed seconds (loading, tokenising,
saving). The defaults were measured with ``benchmarks/bench_presets.py`` on a 2-core CPU; every run
that finishes in this process corrects them (:func:`observe`), so the estimate follows the machine
it actually runs on. On a CPU shared with other work (other processes, a class's requests) a run gets
only its share of the cores: :func:`contention` stretches the estimate by the machine's current
demand (1-minute load average, without this process's own running training job) over its cores.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

PAD_MULTIPLE = 16  # batches are padded to a multiple of this (model_utils.finetune.PAD_MULTIPLE)
BERT_BASE = {"num_hidden_layers": 12, "hidden_size": 768, "intermediate_size": 3072}  # when a config is unknown
_PIECES = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]|[^\W\d_]+|\d+|[^\w\s]", re.UNICODE)


@dataclass(frozen=True)
class Workload:
    """What a run computes, counted before it starts."""

    kind: str  # "fine-tune" or "pretrain": each kind has its own calibration
    weights: int  # weights each token meets (the encoder's layers; embeddings cost no multiplications)
    steps: int  # optimisation steps
    train_tokens: int  # tokens of every training step, padded as the batches will be
    eval_tokens: int  # tokens of forward-only passes (evaluations, probes)
    train_weights_share: float = 1.0  # share of the weights that get gradients (LoRA: the backward pass is cheaper)

    @property
    def gflop(self) -> float:
        """Floating-point operations of the whole run, in billions."""
        backward = 2 + 2 * self.train_weights_share  # gradients of the activations, and of the trained weights
        return self.weights * ((2 + backward) * self.train_tokens + 2 * self.eval_tokens) / 1e9


def approx_tokens(text: str) -> int:
    """About how many WordPiece tokens ``text`` makes (words, numbers, punctuation, each CJK character), no
    tokenizer needed; long words split into pieces of about 6 letters."""
    return sum(max(1, math.ceil(len(piece) / 6)) if piece.isalpha() and not _is_cjk(piece) else 1
               for piece in _PIECES.findall(text or ""))


def _is_cjk(piece: str) -> bool:
    return len(piece) == 1 and ord(piece) >= 0x3040


def padded_tokens(lengths: Sequence[int], batch_size: int, seed: int = 0, multiple: int = PAD_MULTIPLE) -> int:
    """Tokens of one pass over sequences of ``lengths`` in shuffled batches of ``batch_size``, each batch
    padded to its longest sequence rounded up to ``multiple`` (as the data collator does)."""
    order = list(lengths)
    random.Random(seed).shuffle(order)
    total = 0
    for start in range(0, len(order), max(1, batch_size)):
        batch = order[start:start + batch_size]
        total += len(batch) * (math.ceil(max(batch) / multiple) * multiple)
    return total


def encoder_weights(config: dict) -> int:
    """Weights of the encoder layers of a BERT-like ``config`` (attention and feed-forward matrices)."""
    layers = int(config.get("num_hidden_layers") or config.get("n_layers") or config.get("n_layer") or 12)
    hidden = int(config.get("hidden_size") or config.get("dim") or config.get("n_embd") or 768)
    inner = int(config.get("intermediate_size") or config.get("hidden_dim") or config.get("n_inner") or 4 * hidden)
    return layers * (4 * hidden * hidden + 2 * hidden * inner)


def base_config(name: str) -> dict:
    """The ``config.json`` of model ``name`` (bundled, local or cached Hub model), read without loading it;
    BERT-base's sizes when it cannot be read (a Hub model not downloaded yet)."""
    from model_utils import registry

    try:
        info = registry.resolve(name)
        path = _config_path(info.source, info.location)
        config = json.loads(path.read_text(encoding="utf-8")) if path is not None else None
    except (OSError, ValueError):
        config = None
    return config if isinstance(config, dict) else dict(BERT_BASE)


def _config_path(source: str, location: str) -> Path | None:
    if source == "bundled":
        from model_utils.bundled import artifact_dir

        return artifact_dir(location) / "config.json"
    if source in ("local", "folder"):
        return Path(location) / "config.json"
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(location, "config.json")
    return Path(cached) if isinstance(cached, str) else None


# Measured with benchmarks/bench_presets.py on the 2-core development machine (shared with other work; the
# figures are on free-core terms, see contention()): seconds per GFLOP times CPU threads, and fixed seconds.
DEFAULTS: dict[tuple[str, str], tuple[float, float]] = {
    # Quick presets on a quiet machine (load 0.4-1.7): fine-tune 55.7 s, pretrain 47.7 s, both ~0.0075 implied.
    # Under other work a run slows more than the load average says (oversubscribed threads); the first run
    # that finishes in the app corrects the figure (observe) to the machine as the class uses it.
    ("fine-tune", "cpu"): (0.0075, 6.0),
    ("pretrain", "cpu"): (0.0075, 6.0),
    # GPUs: small models are bound by kernel launches, not arithmetic; a guess until a run corrects it.
    ("fine-tune", "cuda"): (0.0004, 15.0),
    ("pretrain", "cuda"): (0.0008, 15.0),
}
FALLBACK = (0.005, 10.0)  # another device (MPS)
CORRECTION_WEIGHT = 0.6  # how much one finished run moves the calibration (the rest: what it was)
MAX_CORRECTION = 8.0  # a run far off the calibration (a stall, a stop) moves it at most this factor


@dataclass
class Estimate:
    """Seconds a run should take, and what that rests on."""

    seconds: float
    device: str  # "cpu", "cuda", ...
    threads: int  # CPU threads (torch's), 0 on an accelerator
    measured: bool  # corrected by a run that finished in this process, not only the defaults
    contention: float = 1.0  # how many times slower than on free cores (CPU shared with other work)


class Calibration:
    """Seconds per GFLOP and fixed seconds for each (kind, device), corrected by each finished run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pace: dict[tuple[str, str], float] = {}  # corrected seconds per GFLOP (CPU: times threads)
        self._measured: set[tuple[str, str]] = set()

    def _figures(self, kind: str, device: str) -> tuple[float, float]:
        pace, fixed = DEFAULTS.get((kind, device), FALLBACK)
        with self._lock:
            return self._pace.get((kind, device), pace), fixed

    def estimate(self, workload: Workload, device: str, threads: int, contention: float = 1.0) -> Estimate:
        """How long ``workload`` takes on ``device`` (``threads`` CPU threads, ``contention`` times slower than on
        free cores)."""
        pace, fixed = self._figures(workload.kind, device)
        per_gflop = pace / max(1, threads) * contention if device == "cpu" else pace
        return Estimate(fixed + workload.gflop * per_gflop, device, threads if device == "cpu" else 0,
                        (workload.kind, device) in self._measured, contention if device == "cpu" else 1.0)

    def observe(self, workload: Workload, device: str, threads: int, seconds: float, contention: float = 1.0) -> None:
        """Correct the calibration with a run of ``workload`` that took ``seconds`` from start to end while the
        CPU was ``contention`` times busier than free."""
        pace, fixed = self._figures(workload.kind, device)
        if workload.gflop <= 0 or seconds <= fixed:
            return
        seen = (seconds - fixed) / workload.gflop * (max(1, threads) / contention if device == "cpu" else 1)
        seen = min(max(seen, pace / MAX_CORRECTION), pace * MAX_CORRECTION)
        with self._lock:
            self._pace[(workload.kind, device)] = CORRECTION_WEIGHT * seen + (1 - CORRECTION_WEIGHT) * pace
            self._measured.add((workload.kind, device))


_calibration = Calibration()


def where() -> tuple[str, int]:
    """``(device type, CPU threads)`` training runs on (:func:`model_utils.devices.training_device`)."""
    import torch

    from model_utils.devices import training_device

    return training_device().type, torch.get_num_threads()


def contention(threads: int, running_here: int = 0, load: float | None = None, cores: int | None = None) -> float:
    """How many times slower than on free cores a run of ``threads`` threads goes now: the demand on the CPU
    (``load``, default the 1-minute load average, less ``running_here`` threads of this process's own
    training that will have ended, plus the run's own threads) over the cores, at least 1."""
    cores = cores or os.cpu_count() or 1
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:  # no load average on this system
            return 1.0
    others = max(0.0, load - running_here)
    # Beyond the cores, every runnable thread gets cores / demand of one.
    return max(1.0, (others + threads) / cores)


def _contention_now(threads: int, exclude_running: bool) -> float:
    from model_utils.jobs import get_runner

    running = threads if exclude_running and get_runner().running() is not None else 0
    return contention(threads, running)


def estimate(workload: Workload) -> Estimate:
    """How long ``workload`` should take on the training device of this process, as busy as the CPU is now
    (a training job of this process that is running is left out: a waiting run starts after it)."""
    device, threads = where()
    busy = _contention_now(threads, exclude_running=True) if device == "cpu" else 1.0
    return _calibration.estimate(workload, device, threads, busy)


def observe(workload: Workload, seconds: float) -> None:
    """Tell the calibration that a run of ``workload`` took ``seconds`` (a finished, not a stopped, run), with
    the CPU as busy as it is now (the run itself counted once: it is this process's running job)."""
    device, threads = where()
    busy = _contention_now(threads, exclude_running=True) if device == "cpu" else 1.0
    _calibration.observe(workload, device, threads, seconds, busy)


def describe(value: Any) -> dict:
    """An :class:`Estimate` as plain data for the UI and the API."""
    return {"seconds": round(value.seconds, 1), "device": value.device, "threads": value.threads,
            "measured": value.measured, "contention": round(value.contention, 2)}
