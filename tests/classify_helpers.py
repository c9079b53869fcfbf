"""Tiny classifiers for the Classify tests: a 2-layer BERT with a small WordPiece vocab.

Built in a few hundred milliseconds and saved as safetensors, so the tests compare our code
with ``transformers.pipeline`` on a real checkpoint without any download.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import BertConfig, BertForPreTraining, BertForSequenceClassification, BertTokenizer

WORDS = (
    "the a an movie film story plot acting was is it this that i you we they love loved hate "
    "hated great good fine bad terrible awful fun boring not very really so and but or of to "
    "with in on best worst ever actors music , . ! ?"
).split()
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
SUFFIXES = ["##s", "##ed", "##ing", "##ly", "##er"]
LABELS = {0: "negative", 1: "positive", 2: "neutral"}


def tiny_tokenizer() -> BertTokenizer:
    """A fast uncased WordPiece tokenizer over :data:`WORDS`."""
    vocab = {token: i for i, token in enumerate(SPECIAL + WORDS + SUFFIXES)}
    return BertTokenizer(vocab=vocab)


def tiny_config(num_labels: int = 3, **kwargs: Any) -> BertConfig:
    """A 2-layer, 32-wide BERT config with ``num_labels`` outputs.

    The large ``initializer_range`` makes a random model's scores depend clearly on the input.
    """
    kwargs.setdefault("initializer_range", 0.3)
    labels = {i: LABELS.get(i, f"class_{i}") for i in range(num_labels)}
    return BertConfig(
        vocab_size=len(SPECIAL + WORDS + SUFFIXES),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
        **kwargs,
    )


def save_tiny_classifier(path: Path, seed: int = 0, num_labels: int = 3, **config_kwargs: Any) -> Path:
    """Save a randomly initialised tiny BertForSequenceClassification + tokenizer to ``path``."""
    torch.manual_seed(seed)
    model = BertForSequenceClassification(tiny_config(num_labels, **config_kwargs))
    model.save_pretrained(path, safe_serialization=True)
    tiny_tokenizer().save_pretrained(path)
    return path


def save_tiny_pretraining(path: Path) -> Path:
    """Save a tiny BertForPreTraining (not a classifier) + tokenizer to ``path``."""
    torch.manual_seed(0)
    BertForPreTraining(tiny_config(2)).save_pretrained(path, safe_serialization=True)
    tiny_tokenizer().save_pretrained(path)
    return path


@dataclass
class Loaded:
    """Stand-in for ``model_utils.manager.LoadedModel`` (same attribute names)."""

    checkpoint: str
    model: Any
    tokenizer: Any
    device: torch.device
    lock: Any


def load_local(path: Path, cls: Any = BertForSequenceClassification) -> Loaded:
    """Load a saved tiny checkpoint the way the manager does (eval mode, CPU, with a lock)."""
    model = cls.from_pretrained(path, use_safetensors=True).eval()
    return Loaded(str(path), model, BertTokenizer.from_pretrained(path), torch.device("cpu"), threading.RLock())
