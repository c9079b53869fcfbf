"""How well a tokenizer's vocabulary covers a text (for notices such as "this model is English-only").

The bundled models use the uncased English MiniLM WordPiece vocabulary, which holds only 244 CJK
characters: most Chinese text becomes ``[UNK]`` tokens there, and a Hub model such as
``bert-base-chinese`` is needed. :func:`unknown_token_share` measures that, so the UI can say so.
"""

from __future__ import annotations

from typing import Any


def unknown_token_share(tokenizer: Any, text: str) -> float:
    """Share of ``text``'s tokens (special tokens excluded) that ``tokenizer`` maps to its unknown token; 0.0 for no tokens."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    unk = getattr(tokenizer, "unk_token_id", None)
    return 0.0 if not ids or unk is None else sum(i == unk for i in ids) / len(ids)
