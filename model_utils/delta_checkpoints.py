"""Checkpoints saved as a small delta over a base the app can always rebuild.

A LoRA run over a bundled or Hub BERT base does not need a full copy of the model (88 MB for
the bundled encoder, ~440 MB for bert-base): its folder holds what training changed, as the
bundled models do: the PEFT adapter over the encoder (``adapter/``), the trained heads
(``heads.safetensors``), the model's ``config.json``, the tokenizer, and ``plm_delta.json`` naming
the base. :func:`load_delta_checkpoint` rebuilds an ordinary transformers model from it: the base
(the packaged MiniLM plus the bundled model's own deltas, or the Hub model from its cache), then
this delta merged in (:mod:`model_utils.adapters`). Full fine-tunes, and runs over a local
checkpoint (which may later be deleted), are still saved in full.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from model_utils.adapters import apply_delta, minilm_dir, save_delta
from model_utils.bundled import BUNDLED_MODELS, artifact_dir
from model_utils.errors import UserError, define
from model_utils.loading import hub_location, pretrained_kwargs, quiet_transformers, serialized
from model_utils.registry import BUNDLED_PREFIX

DELTA_FILE = "plm_delta.json"

define({
    "delta.unreadable": "local:{name} is damaged: its {file} cannot be read.",
    "delta.no_base": "local:{name} is damaged: its {file} names no base model.",
    "delta.base_missing": "This checkpoint was made from {base}, which this installation does not have.",
})


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
