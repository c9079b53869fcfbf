"""Each classroom item kind's model answer equals the task function it comes from (tiny models)."""

from __future__ import annotations

import pytest

from classroom.kinds import KINDS, display_answer, get_kind, normalize_answer, word_groups
from model_utils.errors import UserError


def test_fill_mask_answer_is_the_task_functions_top_k(tiny_env) -> None:
    from model_utils.fill_mask import fill_mask

    kind = get_kind("fill-mask")
    payload = kind.build({"text": " the cat sat on the [MASK] . "})
    assert payload == {"text": "the cat sat on the [MASK] ."} and kind.choices(payload, None) is None
    answer = kind.model_answer(payload, "local:tiny-bert")
    reference = fill_mask(payload["text"], "local:tiny-bert", top_k=10)[0]
    assert [r["answer"] for r in answer["top"]] == [c["token_str"] for c in reference]
    assert [r["score"] for r in answer["top"]] == pytest.approx([c["score"] for c in reference], abs=1e-6)
    assert answer["best"] == reference[0]["token_str"] and answer["model"] == "local:tiny-bert"
    for text, count in (("no mask here", 0), ("[MASK] and [mask]", 2)):
        with pytest.raises(UserError, match=f"found {count}"):
            kind.build({"text": text})


def test_next_sentence_and_classify_answers_match_their_task_functions(tiny_env) -> None:
    from model_utils.classify import classify
    from model_utils.next_sentence import next_sentence

    nsp = get_kind("next-sentence")
    payload = nsp.build({"text": "i was hungry .", "second": "then i ate dinner ."})
    answer = nsp.model_answer(payload, "local:tiny-bert")
    reference = next_sentence("i was hungry .", "then i ate dinner .", "local:tiny-bert")
    assert {r["answer"]: r["score"] for r in answer["top"]} == pytest.approx(
        {"IsNext": reference["is_next"], "NotNext": reference["not_next"]})
    assert answer["best"] == ("IsNext" if reference["is_next"] >= 0.5 else "NotNext")
    labels = get_kind("classify")
    assert labels.choices({"text": "x"}, "local:tiny-classifier") == ["negative", "positive"]
    answer = labels.model_answer({"text": "a good movie"}, "local:tiny-classifier")
    assert answer["top"] == [{"answer": r["label"], "score": pytest.approx(r["score"])}
                             for r in classify("a good movie", "local:tiny-classifier")]


def test_attention_answer_is_the_heads_attention_summed_per_word(tiny_env) -> None:
    from model_utils.attention import attention
    from model_utils.manager import get_manager

    kind = get_kind("attention")
    text = "the dog ate the catfood"  # "the" twice, "catfood" split into word pieces
    payload = kind.build({"text": text, "word": "Dog", "layer": "1", "head": 2})
    assert payload["layer"] == 1 and payload["head"] == 2
    assert kind.choices(payload, "local:tiny-bert") == ["the", "dog", "ate", "catfood"]
    answer = kind.model_answer(payload, "local:tiny-bert")
    result = attention(text, "local:tiny-bert")
    tokenizer = get_manager().get("local:tiny-bert", "base", task="attention", attn_implementation="eager").tokenizer
    groups = word_groups(tokenizer, text)
    assert [w for w, _ in groups] == ["the", "dog", "ate", "the", "catfood"] and len(groups[4][1]) > 1  # catfood is several tokens
    row = result["attentions"][1][2][result["tokens"].index("dog")]
    by_word = {"the": 0.0, "dog": 0.0, "ate": 0.0, "catfood": 0.0}
    for word, positions in groups:
        by_word[word] += sum(row[p] for p in positions)
    total = sum(by_word.values())
    assert {r["answer"]: r["score"] for r in answer["top"]} == pytest.approx({w: v / total for w, v in by_word.items()})
    assert answer["special_share"] == pytest.approx(row[0] + row[-1])  # [CLS] and [SEP]
    assert answer["best"] == max(by_word, key=by_word.get)
    for fields, code in (({"text": text, "word": "cat", "layer": 0, "head": 0}, "classroom.word_missing"),
                         ({"text": text, "word": "dog", "layer": 2, "head": 0}, "classroom.layer_range"),
                         ({"text": text, "word": "dog", "layer": "x", "head": 0}, "classroom.layer_range"),
                         ({"text": text, "word": "dog", "layer": 0, "head": 4}, "classroom.layer_range")):
        with pytest.raises(UserError) as caught:
            kind.choices(kind.build(fields), "local:tiny-bert")
        assert caught.value.code == code


def test_kinds_registry_and_answer_forms() -> None:
    assert list(KINDS) == ["fill-mask", "next-sentence", "classify", "attention"]
    with pytest.raises(UserError, match="expected one of fill-mask"):
        get_kind("next-token")  # not built yet: one more KINDS entry once the Generate tab exists
    assert normalize_answer("  New   York ") == "new york"
    assert display_answer("isnext", ["IsNext", "NotNext"]) == "IsNext"
    assert display_answer("paris", None) == "paris"
