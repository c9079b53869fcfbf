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


def test_unreadable_text_gets_a_notice_naming_a_model_that_reads_it():
    from model_utils.vocabulary import unknown_share_of_ids, unreadable_notice

    tok = tiny_tokenizer()
    ids = tok("the cat 我很累")["input_ids"]  # [CLS] and [SEP] are not counted
    assert unknown_share_of_ids(tok, ids) == pytest.approx(3 / 5)
    notice = unreadable_notice(tok, "the cat 我很累", ids, "local:tiny-bert")
    assert notice.code == "vocabulary.unreadable_offline"  # the tests run offline, bert-base-chinese not cached
    assert notice.params["suggestion"] == "bert-base-chinese" and "local:tiny-bert" in notice and "60%" in notice
    assert unreadable_notice(tok, "the cat sat", tok("the cat sat")["input_ids"], "local:tiny-bert") is None


def test_fill_mask_on_chinese_with_an_english_model_says_so(tiny_env):
    from model_utils.fill_mask import run_fill_mask

    record = run_fill_mask(["我很累 [MASK] 了"], "local:tiny-bert")[0]
    assert [n.code for n in record["notices"]] == ["vocabulary.unreadable_offline"]
    assert run_fill_mask(["the cat sat on the [MASK]"], "local:tiny-bert")[0]["notices"] == []
