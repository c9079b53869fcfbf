"""Settings of PLM Playground, read from ``PLM_*`` environment variables.

One frozen :class:`Settings` object holds every knob (default checkpoints, cache
limits, device, input limits, offline mode). :func:`get_settings` re-reads the
environment on each call so tests can monkeypatch it; importing this module has
no side effects. :func:`hub_offline` says whether the Hugging Face Hub is out of
reach (``HF_HUB_OFFLINE=1``/``PLM_OFFLINE=1`` or a short, cached connection check).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

TASKS: tuple[str, ...] = (
    "fill-mask",
    "next-sentence",
    "text-classification",
    "attention",
    "fine-tune-base",
    "pretrain-base",
    "contextual",
    "text-generation",
)

# Defaults used where the Hub is reachable; each can be overridden by PLM_DEFAULT_<TASK>.
HUB_DEFAULTS: Mapping[str, str] = {
    "fill-mask": "bert-base-uncased",
    "next-sentence": "bert-base-uncased",
    "text-classification": "distilbert-base-uncased-finetuned-sst-2-english",
    "attention": "bert-base-uncased",
    "fine-tune-base": "bert-base-uncased",
    "pretrain-base": "bert-base-uncased",
    "contextual": "bert-base-uncased",
    "text-generation": "gpt2",
}

# Offline fallbacks: the small models bundled with the app (model_utils/bundled).
BUNDLED_DEFAULTS: Mapping[str, str] = {
    "fill-mask": "bundled:minilm-pretrained",
    "next-sentence": "bundled:minilm-pretrained",
    "text-classification": "bundled:minilm-sentiment",
    "attention": "bundled:minilm-pretrained",
    "fine-tune-base": "bundled:minilm-pretrained",
    "pretrain-base": "bundled:minilm-pretrained",
    "contextual": "bundled:minilm-pretrained",
    "text-generation": "bundled:minilm-causal",
}

_TRUE = {"1", "true", "yes", "on"}


def _env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in _TRUE


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(float(value))
    except ValueError as err:
        raise ValueError(f"Environment variable {name} must be a number, got {value!r}") from err


def _env_str(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _env_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    value = (_env_str(name) or default).lower()
    if value not in choices:
        raise ValueError(f"Environment variable {name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def task_env_var(task: str) -> str:
    """Name of the environment variable overriding ``task``'s default checkpoint."""
    return "PLM_DEFAULT_" + task.upper().replace("-", "_")


@dataclass(frozen=True)
class Settings:
    """Every runtime knob of the app, with its environment variable in the comment."""

    # Task -> default checkpoint used where the Hub is reachable (PLM_DEFAULT_FILL_MASK, ...).
    default_checkpoints: Mapping[str, str] = field(default_factory=lambda: dict(HUB_DEFAULTS))
    # Task -> checkpoint used instead of a Hub default while offline (bundled models).
    offline_checkpoints: Mapping[str, str] = field(default_factory=lambda: dict(BUNDLED_DEFAULTS))
    # Folder of fine-tuned/pretrained checkpoints, offered as local:<name> (PLM_CHECKPOINTS_DIR).
    checkpoints_dir: Path = Path("checkpoints")
    # Most (checkpoint, head) pairs kept loaded at once (PLM_CACHE_MAX_MODELS).
    cache_max_models: int = 4
    # Memory budget of the model cache in bytes (PLM_CACHE_MAX_MB, megabytes).
    cache_max_bytes: int = 4096 * 2**20
    # Device override such as "cpu", "cuda", "cuda:1", "mps"; None = best available (PLM_DEVICE).
    device: str | None = None
    # Longest input in tokens; longer inputs are truncated with a notice (PLM_MAX_SEQ_LEN).
    max_seq_len: int = 512
    # Weights' dtype override: "float32", "float16" or "bfloat16"; None = by device (PLM_DTYPE).
    dtype: str | None = None
    # Most [MASK] tokens in one Fill-Mask input (PLM_MAX_MASKS).
    max_masks: int = 5
    # Most predictions per mask a Fill-Mask request may ask for (PLM_MAX_TOP_K).
    max_top_k: int = 20
    # Most models compared side by side in one Fill-Mask request (PLM_MAX_COMPARE).
    max_compare: int = 3
    # Longest text a user may send in one field, in characters; refused before tokenizing (PLM_MAX_TEXT_CHARS).
    max_text_chars: int = 20_000
    # True when HF_HUB_OFFLINE or PLM_OFFLINE is set: never try the Hub.
    offline: bool = False
    # Largest file a user may upload, in bytes (PLM_MAX_UPLOAD_MB, megabytes).
    max_upload_bytes: int = 10 * 2**20
    # Most rows read from an uploaded CSV/JSONL file (PLM_MAX_UPLOAD_ROWS).
    max_upload_rows: int = 2000
    # Most tokens shown in attention views (PLM_MAX_ATTENTION_TOKENS).
    max_attention_tokens: int = 128
    # Seconds the Hub reachability check waits before declaring the Hub unreachable (PLM_HUB_TIMEOUT).
    hub_timeout: float = 1.5
    # Wall-clock limit of one fine-tuning/pretraining job in seconds; 0 = none (PLM_JOB_TIME_LIMIT_MIN).
    job_time_limit_s: float = 3600.0
    # Disk budget of the checkpoints folder in bytes (PLM_CHECKPOINTS_MAX_MB, megabytes): past it the oldest
    # checkpoints made from the app are removed, or a run that could not fit is refused before it starts.
    checkpoints_max_bytes: int = 2048 * 2**20
    # Most checkpoints made from the app kept at once; the oldest go first (PLM_CHECKPOINTS_MAX_COUNT).
    checkpoints_max_count: int = 20
    # Uploaded files are deleted this long after upload, in seconds (PLM_UPLOAD_TTL_MIN, minutes).
    upload_ttl_s: int = 3600
    # Token that lets its holder unload every model and delete any app-made checkpoint (PLM_ADMIN_TOKEN).
    admin_token: str | None = field(default=None, repr=False)
    # Requests of one event running at once; Fill-Mask batches up to 16 instead (PLM_CONCURRENCY).
    concurrency: int = 2
    # Requests waiting in the queue before new ones are refused as busy (PLM_QUEUE_MAX_SIZE).
    queue_max_size: int = 64
    # Contextual lab: most sentences in one request (PLM_LAB_MAX_SENTENCES).
    lab_max_sentences: int = 200
    # Contextual lab: longest sentence in tokens, special tokens included (PLM_LAB_MAX_TOKENS).
    lab_max_tokens: int = 128
    # Contextual lab: most corpus-sample sentences searched for nearest neighbours (PLM_LAB_CORPUS_SENTENCES).
    lab_corpus_sentences: int = 2000
    # Contextual lab: memory for cached corpus vectors per (model, layer), in bytes (PLM_LAB_CACHE_MB, megabytes).
    lab_cache_bytes: int = 256 * 2**20
    # int8 CPU path for the prediction models served (Fill-Mask, Next Sentence, Classify): "off" (default: int8
    # missed the agreement targets on the bundled models, benchmarks/README.md), "int8", or "auto" (int8 when serving
    # on the CPU) (PLM_QUANTIZE). Training, explanations and the Attention/Contextual views always stay float32.
    quantize: str = "off"
    # Load the first tab's default models in the background at launch, so the first answer does not wait for
    # them (PLM_WARM_START, on by default).
    warm_start: bool = True
    # Attention tab: memory for cached forward passes, one per (model, input), in bytes (PLM_ATTENTION_CACHE_MB).
    attention_cache_bytes: int = 64 * 2**20
    # Folder of the app's own data, such as the classroom's SQLite file (PLM_DATA_DIR).
    data_dir: Path = Path("data")
    # Classroom database URL; None = SQLite at data_dir/classroom.sqlite3 (PLM_CLASSROOM_DB, e.g. postgresql://...).
    classroom_db: str | None = field(default=None, repr=False)
    # Classroom rooms are deleted this long after they were created, in seconds (PLM_ROOM_TTL_HOURS, hours).
    room_ttl_s: int = 12 * 3600
    # Classroom actions one browser session may make per minute (PLM_CLASSROOM_RATE_PER_MIN) and at once
    # (PLM_CLASSROOM_BURST): the learners' poll is not counted, joining, answering and pushing are.
    classroom_rate_per_min: int = 60
    classroom_burst: int = 10
    # Most learners in one classroom room (PLM_CLASSROOM_MAX_LEARNERS).
    classroom_max_learners: int = 500
    # Generate tab: most tokens one generation (or one step-through) adds after the prompt (PLM_MAX_NEW_TOKENS).
    max_new_tokens: int = 200
    # Generate tab: wall-clock limit of one generation in seconds; it then stops with a notice (PLM_GENERATE_TIME_LIMIT).
    generate_time_limit_s: float = 30.0
    # Generate tab: most beams of a beam search (PLM_MAX_BEAMS).
    max_beams: int = 8
    # Perplexity and BERT vs GPT: most tokens of a text scored at once; a masked LM runs one pass per token,
    # so longer texts are cut with a notice (PLM_MAX_SCORE_TOKENS).
    max_score_tokens: int = 128

    def default_checkpoint(self, task: str, offline: bool) -> str:
        """Default checkpoint for ``task``; a Hub default is replaced by the bundled one offline."""
        if task not in self.default_checkpoints:
            raise ValueError(f"Unknown task {task!r}; expected one of {', '.join(TASKS)}")
        chosen = self.default_checkpoints[task]
        if offline and not chosen.startswith(("bundled:", "local:")):
            return self.offline_checkpoints[task]
        return chosen


def get_settings() -> Settings:
    """Read the settings from the environment (cheap; call it whenever you need them)."""
    defaults = {t: _env_str(task_env_var(t)) or HUB_DEFAULTS[t] for t in TASKS}
    return Settings(
        default_checkpoints=defaults,
        checkpoints_dir=Path(_env_str("PLM_CHECKPOINTS_DIR") or "checkpoints").expanduser(),
        cache_max_models=max(1, _env_int("PLM_CACHE_MAX_MODELS", 4)),
        cache_max_bytes=max(1, _env_int("PLM_CACHE_MAX_MB", 4096)) * 2**20,
        device=_env_str("PLM_DEVICE"),
        dtype=_env_str("PLM_DTYPE"),
        max_seq_len=max(8, _env_int("PLM_MAX_SEQ_LEN", 512)),
        max_masks=max(1, _env_int("PLM_MAX_MASKS", 5)),
        max_top_k=max(1, _env_int("PLM_MAX_TOP_K", 20)),
        max_compare=max(1, _env_int("PLM_MAX_COMPARE", 3)),
        max_text_chars=max(100, _env_int("PLM_MAX_TEXT_CHARS", 20_000)),
        offline=_env_bool("HF_HUB_OFFLINE") or _env_bool("PLM_OFFLINE"),
        max_upload_bytes=max(1, _env_int("PLM_MAX_UPLOAD_MB", 10)) * 2**20,
        max_upload_rows=max(1, _env_int("PLM_MAX_UPLOAD_ROWS", 2000)),
        max_attention_tokens=max(8, _env_int("PLM_MAX_ATTENTION_TOKENS", 128)),
        hub_timeout=float(_env_str("PLM_HUB_TIMEOUT") or 1.5),
        job_time_limit_s=max(0, _env_int("PLM_JOB_TIME_LIMIT_MIN", 60)) * 60.0,
        checkpoints_max_bytes=max(1, _env_int("PLM_CHECKPOINTS_MAX_MB", 2048)) * 2**20,
        checkpoints_max_count=max(1, _env_int("PLM_CHECKPOINTS_MAX_COUNT", 20)),
        upload_ttl_s=max(1, _env_int("PLM_UPLOAD_TTL_MIN", 60)) * 60,
        admin_token=_env_str("PLM_ADMIN_TOKEN"),
        concurrency=max(1, _env_int("PLM_CONCURRENCY", 2)),
        queue_max_size=max(1, _env_int("PLM_QUEUE_MAX_SIZE", 64)),
        lab_max_sentences=max(2, _env_int("PLM_LAB_MAX_SENTENCES", 200)),
        lab_max_tokens=max(8, _env_int("PLM_LAB_MAX_TOKENS", 128)),
        lab_corpus_sentences=max(1, _env_int("PLM_LAB_CORPUS_SENTENCES", 2000)),
        lab_cache_bytes=max(0, _env_int("PLM_LAB_CACHE_MB", 256)) * 2**20,
        warm_start=_env_bool("PLM_WARM_START", True),
        quantize=_env_choice("PLM_QUANTIZE", ("off", "int8", "auto"), "off"),
        attention_cache_bytes=max(0, _env_int("PLM_ATTENTION_CACHE_MB", 64)) * 2**20,
        data_dir=Path(_env_str("PLM_DATA_DIR") or "data").expanduser(),
        classroom_db=_env_str("PLM_CLASSROOM_DB"),
        room_ttl_s=int(max(0.01, float(_env_str("PLM_ROOM_TTL_HOURS") or 12)) * 3600),
        classroom_rate_per_min=max(1, _env_int("PLM_CLASSROOM_RATE_PER_MIN", 60)),
        classroom_burst=max(1, _env_int("PLM_CLASSROOM_BURST", 10)),
        classroom_max_learners=max(1, _env_int("PLM_CLASSROOM_MAX_LEARNERS", 500)),
        max_new_tokens=max(1, _env_int("PLM_MAX_NEW_TOKENS", 200)),
        generate_time_limit_s=max(1.0, float(_env_str("PLM_GENERATE_TIME_LIMIT") or 30)),
        max_beams=max(2, _env_int("PLM_MAX_BEAMS", 8)),
        max_score_tokens=max(8, _env_int("PLM_MAX_SCORE_TOKENS", 128)),
    )


_HUB_CHECK_TTL = 300.0  # seconds a reachability answer is trusted
_hub_check: dict[str, tuple[float | None, bool]] = {}
_hub_check_lock = threading.Lock()


def _hub_reachable(endpoint: str, timeout: float) -> bool:
    """True if the Hub endpoint answers an HTTP request within ``timeout`` seconds.

    An answer, not just an open port: a server or proxy that accepts connections but never
    replies would otherwise pass, and every model load would then wait on the Hub client's
    timeouts and retries for minutes. Uses the Hub client's own session (proxies, certificates).
    """
    try:
        from huggingface_hub.utils import get_session

        get_session().head(endpoint, timeout=timeout)
        return True
    except Exception:  # noqa: BLE001 - any failure (refused, timeout, TLS, proxy) means unreachable
        return False


def hub_offline(settings: Settings | None = None) -> bool:
    """True when the Hub must not or cannot be used (env flag, or cached failed connection)."""
    settings = settings or get_settings()
    if settings.offline:
        return True
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    with _hub_check_lock:
        # No "checked at 0.0" sentinel: the monotonic clock starts near 0 at boot, so a fresh
        # container (a Space starting) would have trusted a check it never made for 5 minutes.
        checked_at, reachable = _hub_check.get(endpoint, (None, False))
        if checked_at is None or time.monotonic() - checked_at > _HUB_CHECK_TTL:
            reachable = _hub_reachable(endpoint, settings.hub_timeout)
            _hub_check[endpoint] = (time.monotonic(), reachable)
    return not reachable
