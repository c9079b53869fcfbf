"""How well a tokenizer's vocabulary covers a text (for notices such as "this model is English-only").

The bundled models use the uncased English MiniLM WordPiece vocabulary, which holds only 244 CJK
characters: most Chinese text becomes ``[UNK]`` tokens there, and a Hub model such as
``bert-base-chinese`` is needed. :func:`unknown_token_share` measures that, so the UI can say so.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from model_utils.errors import Notice, define
from model_utils.registry import resolve, within_reach


def unknown_token_share(tokenizer: Any, text: str) -> float:
    """Share of ``text``'s tokens (special tokens excluded) that ``tokenizer`` maps to its unknown token; 0.0 for no tokens."""
    return unknown_share_of_ids(tokenizer, tokenizer(text, add_special_tokens=False)["input_ids"])


UNREADABLE_SHARE = 0.3  # from this share of unknown tokens on, a model's answers about a text mean little
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")

define({
    "vocabulary.unreadable": "{share:.0%} of this text's tokens are unknown to {name} ([UNK]): its vocabulary does "
                             "not cover this script, so its answers here mean little. Use a model that reads it, "
                             "such as {suggestion}.",
    "vocabulary.unreadable_offline": "{share:.0%} of this text's tokens are unknown to {name} ([UNK]): its "
                                     "vocabulary does not cover this script, so its answers here mean little. A "
                                     "model that reads it, such as {suggestion}, needs the Hugging Face Hub "
                                     "(unreachable now) or a copy in the local cache.",
})


def unknown_share_of_ids(tokenizer: Any, ids: Sequence[int]) -> float:
    """Share of ``ids`` (special tokens excluded) that are ``tokenizer``'s unknown token; 0.0 for none."""
    special = set(getattr(tokenizer, "all_special_ids", ())) - {getattr(tokenizer, "unk_token_id", None)}
    kept = [i for i in ids if i not in special]
    unk = getattr(tokenizer, "unk_token_id", None)
    return 0.0 if not kept or unk is None else sum(i == unk for i in kept) / len(kept)


def suggested_model(text: str) -> str:
    """A Hub model whose vocabulary covers ``text``'s script: Chinese BERT for CJK text, multilingual BERT else."""
    return "bert-base-chinese" if _CJK.search(text or "") else "bert-base-multilingual-cased"


def unreadable_notice(tokenizer: Any, text: str, ids: Sequence[int], name: str,
                      suggestion: str | None = None) -> Notice | None:
    """Notice ``vocabulary.unreadable`` when most of ``text`` (tokenized as ``ids``) is unknown to model ``name``,
    naming a model that can read it (``suggestion``, else :func:`suggested_model`'s) and saying when that one is
    out of reach offline; else None."""
    share = unknown_share_of_ids(tokenizer, ids)
    if share < UNREADABLE_SHARE:
        return None
    suggestion = suggestion or suggested_model(text)
    code = "vocabulary.unreadable" if within_reach(resolve(suggestion)) else "vocabulary.unreadable_offline"
    return Notice(code, share=share, name=name, suggestion=suggestion)
