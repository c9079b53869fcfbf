"""Tests of model_utils.vocabulary: how much of a text a tokenizer cannot represent."""

from __future__ import annotations

import pytest
from conftest import require_bundled, tiny_tokenizer

from model_utils.vocabulary import unknown_token_share


def test_unknown_token_share_counts_unk_tokens():
    tok = tiny_tokenizer()
    assert unknown_token_share(tok, "the cat sat on the mat") == 0.0
    assert unknown_token_share(tok, "the cat 我很累") == pytest.approx(3 / 5)  # 3 CJK characters -> [UNK]
    assert unknown_token_share(tok, "") == 0.0


@pytest.mark.slow
def test_the_bundled_vocabulary_is_english_only():
    require_bundled("bundled:minilm-pretrained")
    from model_utils.bundled import load_tokenizer

    tok = load_tokenizer()
    cjk = [t for t in tok.vocab if len(t) == 1 and "\u4e00" <= t <= "\u9fff"]
    assert len(cjk) < 300  # 244 in all-MiniLM-L6-v2's vocabulary
    assert unknown_token_share(tok, "我今天很累，所以我早早就睡了。") > 0.3
    assert unknown_token_share(tok, "I was tired, so I went to bed early.") == 0.0
