"""Known checkpoints and what each can do.

Three sources, each with a name prefix:

* ``bundled:<name>``: the small offline models in :mod:`model_utils.bundled`;
* ``local:<name>``: fine-tuned/pretrained checkpoints saved under the checkpoints
  directory (settings), found by scanning it;
* anything else is a Hugging Face Hub id (validated with the Hub's own rules); a few
  popular ones are described in :data:`HUB_MODELS`.

:func:`choices` builds the dropdown choices of a task and :func:`resolve` validates a
user-typed name, raising :class:`ValueError` with a readable message.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from model_utils.config import TASKS, get_settings
from model_utils.errors import UserError, define

define({
    "model.hub_offline": "{name} is a Hugging Face Hub model and the Hub is unreachable (offline mode); choose a "
                         "bundled or local model.",
    "model.unknown_bundled": "Unknown bundled model {name!r}; available: {available}",
    "model.config_unreadable": "local:{name} is damaged: its config.json cannot be read ({detail}). Repair or "
                               "remove that folder.",
    "model.config_not_object": "local:{name} is damaged: its config.json holds a JSON {kind}, not an object. "
                               "Repair or remove that folder.",
    "model.invalid_local_name": "Invalid local checkpoint name {name!r}: use local:<folder name>, no paths",
    "model.local_outside": "Local checkpoint {name!r} must be a folder directly inside the checkpoints folder",
    "model.no_local": "No checkpoint named local:{name} in the checkpoints folder (missing folder or config.json)",
    "model.invalid_id": "{name!r} is not a valid model id (expected e.g. 'bert-base-uncased', 'org/model', "
                        "'local:<name>' or 'bundled:<name>')",
    "model.name_not_text": "A model is chosen by its name (text), not by a {kind}.",
    "model.name_too_long": "That model name is {length} characters long; names have at most {limit}.",
    "model.none_chosen": "Please choose a model.",
})

BUNDLED_PREFIX = "bundled:"
LOCAL_PREFIX = "local:"

_BERT_TASKS = ("fill-mask", "next-sentence", "attention", "fine-tune-base", "pretrain-base", "contextual")
_MLM_TASKS = ("fill-mask", "attention", "fine-tune-base", "contextual")
_CAUSAL_TASKS = ("text-generation", "attention")


@dataclass(frozen=True)
class CheckpointInfo:
    """What the app knows about one checkpoint."""

    name: str  # as shown to users: "bert-base-uncased", "local:my-model", "bundled:minilm-pretrained"
    source: str  # "hub", "local" or "bundled"
    location: str  # Hub id, absolute folder path, or bundled name
    family: str | None  # model_type such as "bert", "roberta"; None if unknown
    tasks: tuple[str, ...]  # tasks it supports; unknown Hub ids list every task
    mask_token: str | None  # the model's own mask token, if known
    description: str = ""


# Popular Hub checkpoints offered in the dropdowns (they need the Hub or the local HF cache).
HUB_MODELS: dict[str, CheckpointInfo] = {
    info.name: info
    for info in (
        CheckpointInfo("bert-base-uncased", "hub", "bert-base-uncased", "bert", _BERT_TASKS, "[MASK]",
                       "BERT base, uncased English (110M)"),
        CheckpointInfo("bert-base-cased", "hub", "bert-base-cased", "bert", _BERT_TASKS, "[MASK]",
                       "BERT base, cased English (110M)"),
        CheckpointInfo("bert-base-chinese", "hub", "bert-base-chinese", "bert", _BERT_TASKS, "[MASK]",
                       "BERT base, Chinese characters (110M)"),
        CheckpointInfo("roberta-base", "hub", "roberta-base", "roberta", _MLM_TASKS, "<mask>",
                       "RoBERTa base, English (125M); no next-sentence head"),
        CheckpointInfo("distilbert-base-uncased", "hub", "distilbert-base-uncased", "distilbert",
                       _MLM_TASKS, "[MASK]", "DistilBERT base, uncased (66M); no next-sentence head"),
        CheckpointInfo("albert-base-v2", "hub", "albert-base-v2", "albert", _MLM_TASKS, "[MASK]",
                       "ALBERT base v2 (12M); sentence-order head, not next-sentence"),
        CheckpointInfo("distilbert-base-uncased-finetuned-sst-2-english", "hub",
                       "distilbert-base-uncased-finetuned-sst-2-english", "distilbert",
                       ("text-classification", "attention", "contextual"), "[MASK]",
                       "DistilBERT fine-tuned on SST-2 sentiment (positive/negative)"),
        CheckpointInfo("gpt2", "hub", "gpt2", "gpt2", _CAUSAL_TASKS, None,
                       "GPT-2 small, English left-to-right language model (124M)"),
        CheckpointInfo("distilgpt2", "hub", "distilgpt2", "gpt2", _CAUSAL_TASKS, None,
                       "DistilGPT2, distilled GPT-2 (82M)"),
        CheckpointInfo("HuggingFaceTB/SmolLM2-135M", "hub", "HuggingFaceTB/SmolLM2-135M", "llama", _CAUSAL_TASKS,
                       None, "SmolLM2 135M, a small modern (Llama-style) English base model"),
        CheckpointInfo("Qwen/Qwen2.5-0.5B", "hub", "Qwen/Qwen2.5-0.5B", "qwen2", _CAUSAL_TASKS, None,
                       "Qwen2.5 0.5B base, multilingual (Chinese and English) causal LM"),
    )
}

# Used while model_utils.bundled is not importable, so the app still lists the offline defaults.
_BUNDLED_FALLBACK: dict[str, dict] = {
    "bundled:minilm-pretrained": {
        "tasks": ["fill-mask", "next-sentence", "attention", "feature-extraction",
                  "fine-tune-base", "pretrain-base", "contextual"],
        "description": "MiniLM (6 layers, 384 hidden) with MLM and NSP heads, bundled for offline use",
    },
    "bundled:minilm-sentiment": {
        "tasks": ["text-classification", "attention", "contextual"],
        "description": "MiniLM fine-tuned for sentiment (negative/positive), bundled for offline use",
    },
    "bundled:minilm-causal": {
        "tasks": ["text-generation", "attention"],
        "description": "MiniLM as a left-to-right (GPT-style) language model, bundled for offline use",
    },
}

# Architecture suffix in a checkpoint's config.json -> tasks it can serve.
_ARCHITECTURE_TASKS: dict[str, tuple[str, ...]] = {
    "ForPreTraining": _BERT_TASKS,
    "ForMaskedLM": ("fill-mask", "attention", "fine-tune-base", "pretrain-base", "contextual"),
    "ForSequenceClassification": ("text-classification", "attention", "fine-tune-base", "contextual"),
    "ForNextSentencePrediction": ("next-sentence", "attention", "contextual"),
    "LMHeadModel": _CAUSAL_TASKS,
    "ForCausalLM": _CAUSAL_TASKS,
    "Model": ("attention", "fine-tune-base", "contextual"),
}
_MASK_TOKENS = {"roberta": "<mask>", "xlm-roberta": "<mask>", "camembert": "<mask>"}
_LOCAL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
MAX_NAME_CHARS = 200  # above any valid Hub id (96) or local:<name> (134); longer names are refused unread


def _bundled_models() -> dict[str, dict]:
    try:
        from model_utils.bundled import BUNDLED_MODELS
    except Exception:  # the lead's module may be missing or half-built: list the known names
        return _BUNDLED_FALLBACK
    return dict(BUNDLED_MODELS)


def bundled_info(name: str) -> CheckpointInfo:
    """Info of a ``bundled:`` checkpoint; ValueError if the name is unknown."""
    models = _bundled_models()
    if name not in models:
        raise UserError("model.unknown_bundled", name=name, available=", ".join(sorted(models)))
    meta = models[name]
    return CheckpointInfo(name, "bundled", name, "bert", tuple(meta.get("tasks", ())), "[MASK]",
                          str(meta.get("description", "")))


def _local_tasks(config: dict) -> tuple[str, ...]:
    tasks: list[str] = []
    architectures = config.get("architectures")
    for arch in architectures if isinstance(architectures, list) else []:
        for suffix, arch_tasks in _ARCHITECTURE_TASKS.items():
            if isinstance(arch, str) and arch.endswith(suffix):
                tasks.extend(t for t in arch_tasks if t not in tasks)
                break
    return tuple(tasks) or ("attention", "fine-tune-base", "contextual")


def _read_config(folder: Path) -> dict | None:
    """The folder's config.json as a dict, None if it has none; ValueError if the file is damaged."""
    path = folder / "config.json"
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:  # unreadable, not UTF-8, not JSON
        raise UserError("model.config_unreadable", name=folder.name, detail=str(err)[:200]) from err
    if not isinstance(config, dict):
        raise UserError("model.config_not_object", name=folder.name, kind=type(config).__name__)
    return config


def _local_info(folder: Path) -> CheckpointInfo | None:
    """Describe a saved checkpoint folder, or None if it does not hold one; ValueError if it is damaged."""
    config = _read_config(folder)
    if config is None:
        return None
    family = config.get("model_type") if isinstance(config.get("model_type"), str) else None
    return CheckpointInfo(
        name=LOCAL_PREFIX + folder.name,
        source="local",
        location=str(folder.resolve()),
        family=family,
        tasks=_local_tasks(config),
        mask_token=_MASK_TOKENS.get(family or "", "[MASK]"),
        description=str(config.get("plm_description", "saved checkpoint")),
    )


def local_checkpoints() -> list[CheckpointInfo]:
    """Checkpoints saved in the checkpoints directory, sorted by name."""
    root = get_settings().checkpoints_dir
    try:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and _LOCAL_NAME.match(p.name))
    except OSError:  # missing, a file, or unreadable: the app still starts (the Models tab says why)
        return []
    infos: list[CheckpointInfo] = []
    for folder in folders:
        try:
            info = _local_info(folder)
        except ValueError:  # damaged: not offered; choosing it by name gives the reason
            continue
        if info is not None:
            infos.append(info)
    return infos


def _resolve_local(name: str) -> CheckpointInfo:
    if not _LOCAL_NAME.match(name) or ".." in name:
        raise UserError("model.invalid_local_name", name=name)
    root = get_settings().checkpoints_dir.resolve()
    folder = (root / name).resolve()
    if folder.parent != root:
        raise UserError("model.local_outside", name=name)
    info = _local_info(folder)
    if info is None:
        raise UserError("model.no_local", name=name)
    return info


def _resolve_hub(name: str) -> CheckpointInfo:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if name in HUB_MODELS:
        return HUB_MODELS[name]
    try:
        validate_repo_id(name)
    except HFValidationError as err:
        raise UserError("model.invalid_id", name=name) from err
    return CheckpointInfo(name, "hub", name, None, TASKS, None, "Hugging Face Hub model")


def model_name(checkpoint: object) -> str:
    """The stripped name of a user's model choice ("" for none); ValueError if it is not text or far too long."""
    if checkpoint is not None and not isinstance(checkpoint, str):
        raise UserError("model.name_not_text", kind=type(checkpoint).__name__)
    name = (checkpoint or "").strip()
    if len(name) > MAX_NAME_CHARS:  # refused before any message repeats it
        raise UserError("model.name_too_long", length=len(name), limit=MAX_NAME_CHARS)
    return name


def resolve(checkpoint: str) -> CheckpointInfo:
    """Validate a checkpoint name typed or chosen by a user; ValueError with a clear message."""
    name = model_name(checkpoint)
    if not name:
        raise UserError("model.none_chosen")
    if name.startswith(BUNDLED_PREFIX):
        return bundled_info(name)
    if name.startswith(LOCAL_PREFIX):
        return _resolve_local(name[len(LOCAL_PREFIX):])
    return _resolve_hub(name)


def within_reach(info: CheckpointInfo) -> bool:
    """False for a Hub model while the Hub is out of reach and the model is not in the local cache (it would
    fail to load); True for everything else."""
    try:
        check_within_reach(info)
    except UserError:
        return False
    return True


def check_within_reach(info: CheckpointInfo) -> None:
    """UserError ``model.hub_offline`` for a Hub model while the Hub is out of reach and the model is not in
    the local cache: what a job checks before it is queued (loading would fail only once it runs)."""
    from model_utils.config import hub_offline

    if info.source != "hub" or not hub_offline():
        return
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(info.location, "config.json"), str):
        raise UserError("model.hub_offline", name=info.name)


def default_checkpoint(task: str) -> str:
    """The checkpoint a task uses when none is chosen: the settings' default, a bundled model while the Hub
    is out of reach (the one place this is decided)."""
    from model_utils.config import hub_offline

    settings = get_settings()
    return settings.default_checkpoint(task, hub_offline(settings))


def choices(task: str) -> list[str]:
    """Dropdown choices for ``task``: bundled models, popular Hub models (only those in the local cache while the
    Hub is out of reach: the others could not load), then local checkpoints."""
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}; expected one of {', '.join(TASKS)}")
    bundled = [name for name, meta in _bundled_models().items() if task in meta.get("tasks", ())]
    hub = [name for name, info in HUB_MODELS.items() if task in info.tasks and within_reach(info)]
    local = [info.name for info in local_checkpoints() if task in info.tasks]
    return bundled + hub + local
