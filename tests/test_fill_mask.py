"""Fill-Mask: agreement with transformers.pipeline, joint filling, masks, limits and errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import pipeline

import model_utils
from model_utils.fill_mask import fill_masks_jointly, normalize_masks, run_fill_mask
from conftest import require_bundled

TEXTS = ["the cat sat on the [MASK] .", "[MASK] is the capital of france .",
         "i love this movie , it is very [MASK] !"]


@pytest.fixture(scope="module")
def reference(tiny_checkpoints_dir: Path):
    return pipeline("fill-mask", model=str(tiny_checkpoints_dir / "tiny-bert"), device="cpu")


def assert_same(ours: list[dict], theirs: list[dict], check_sequence: bool = True) -> None:
    assert [r["token"] for r in ours] == [r["token"] for r in theirs]
    assert [r["token_str"] for r in ours] == [r["token_str"] for r in theirs]
    for mine, ref in zip(ours, theirs):
        assert mine["score"] == pytest.approx(ref["score"], abs=1e-5)
        if check_sequence:
            assert mine["sequence"] == ref["sequence"]


@pytest.mark.parametrize("text", TEXTS)
def test_single_mask_equals_pipeline(tiny_env: Path, reference, text: str) -> None:
    ours = model_utils.fill_mask(text, "local:tiny-bert", top_k=7)
    assert len(ours) == 1
    assert_same(ours[0], reference(text, top_k=7))


def test_candidate_targets_equal_pipeline(tiny_env: Path, reference) -> None:
    text = TEXTS[0]
    ours = model_utils.fill_mask(text, "local:tiny-bert", top_k=5, targets="mat, sofa ,dog")
    assert_same(ours[0], reference(text, targets=["mat", "sofa", "dog"], top_k=5))
    assert len(ours[0]) == 3


def test_multiple_masks_equal_pipeline_scores(tiny_env: Path, reference) -> None:
    text = "the [MASK] sat on the [MASK] ."
    ours = model_utils.fill_mask(text, "local:tiny-bert", top_k=4)
    theirs = reference(text, top_k=4)
    assert len(ours) == 2
    for mine, ref in zip(ours, theirs):
        assert_same(mine, ref, check_sequence=False)
    assert ours[0][0]["sequence"] == f"the {ours[0][0]['token_str']} sat on the [MASK]."


def test_batch_with_padding_equals_single_calls(tiny_env: Path) -> None:
    batch = run_fill_mask(TEXTS, "local:tiny-bert", top_k=3, joint=False)
    for text, result in zip(TEXTS, batch):
        single = model_utils.fill_mask(text, "local:tiny-bert", top_k=3)
        assert_same(result["predictions"][0], single[0])
        assert result["model"] == "local:tiny-bert" and result["joint"] is None


def test_joint_filling_picks_the_most_confident_mask_first(tiny_env: Path) -> None:
    from model_utils.manager import get_manager

    text = "the [MASK] sat on the [MASK] ."
    joint = fill_masks_jointly(text, "local:tiny-bert")
    loaded = get_manager().get("local:tiny-bert", "masked-lm")
    ids = loaded.tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        probs = loaded.model(input_ids=ids).logits[0].softmax(-1)
    masks = (ids[0] == loaded.tokenizer.mask_token_id).nonzero().flatten().tolist()
    best = probs[masks].max(-1)
    first = int(best.values.argmax())
    step = joint["steps"][0]
    assert step["mask"] == first and step["score"] == pytest.approx(float(best.values[first]), abs=1e-6)
    assert step["token_str"] == loaded.tokenizer.decode([int(best.indices[first])])
    assert len(joint["steps"]) == 2 and {s["mask"] for s in joint["steps"]} == {0, 1}
    assert joint["score"] == pytest.approx(joint["steps"][0]["score"] * joint["steps"][1]["score"])
    assert "[MASK]" not in joint["sequence"]
    both = run_fill_mask([text], "local:tiny-bert", top_k=2)[0]
    assert both["joint"] == joint


def test_any_mask_spelling_works(tiny_env: Path) -> None:
    assert normalize_masks("a [mask] b <MASK> c [MASK]", "<mask>") == "a <mask> b <mask> c <mask>"
    canonical = model_utils.fill_mask("the cat sat on the [MASK] .", "local:tiny-bert")
    for spelling in ("<mask>", "[mask]"):
        assert model_utils.fill_mask(f"the cat sat on the {spelling} .", "local:tiny-bert") == canonical


def test_module_is_callable_and_function_is_the_same(tiny_env: Path) -> None:
    from model_utils.fill_mask import fill_mask

    assert model_utils.fill_mask(TEXTS[0], None) == fill_mask(TEXTS[0], "local:tiny-bert")


def test_long_text_is_truncated_around_the_mask(tiny_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLM_MAX_SEQ_LEN", "16")
    text = "the dog ran . " * 10 + "the cat sat on the [MASK] . " + "the sun . " * 10
    result = run_fill_mask([text], "local:tiny-bert", top_k=2)[0]
    assert len(result["predictions"]) == 1
    assert "reads at most 16" in result["notices"][0]
    assert "the cat sat on the" in result["predictions"][0][0]["sequence"]
    with pytest.raises(ValueError, match="put them closer"):
        model_utils.fill_mask("[MASK] " + "the dog ran . " * 10 + "[MASK]", "local:tiny-bert")


def test_a_bad_text_fails_only_its_own_item_of_a_batch(tiny_env: Path) -> None:
    good, far, no_mask = TEXTS[0], "[MASK] " + "the dog ran . " * 40 + "[MASK]", "no mask here"
    records = run_fill_mask([good, far, no_mask, good], "local:tiny-bert", top_k=2)
    assert records[0] == records[3] and records[0]["predictions"]
    assert records[1]["code"] == "fill_mask.masks_far_apart" and "put them closer" in records[1]["error"]
    assert records[2]["code"] == "fill_mask.no_mask" and records[2]["params"]["own"] == ""
    alone = run_fill_mask([good], "local:tiny-bert", top_k=2)[0]["predictions"]
    assert [[(c["token"], pytest.approx(c["score"], abs=1e-6)) for c in mask] for mask in records[0]["predictions"]] \
        == [[(c["token"], c["score"]) for c in mask] for mask in alone]  # the batch's padding changes nothing
    unusable = run_fill_mask([good, good], "local:tiny-classifier")
    assert [r["code"] for r in unusable] == ["model.untrained_head"] * 2


def test_requests_with_several_models_run_grouped_and_fail_one_by_one(tiny_env: Path) -> None:
    from model_utils.fill_mask import fill_mask_requests

    outputs = fill_mask_requests([
        {"text": TEXTS[0], "models": ["local:tiny-bert", "local:tiny-classifier"], "top_k": 3, "targets": ""},
        {"text": TEXTS[1], "models": "local:tiny-bert", "top_k": 2},
        {"text": TEXTS[0], "models": ["local:tiny-bert"], "top_k": 99},
        {"text": TEXTS[0], "models": ["a", "b", "c", "d"]},
    ])
    first, second, bad_top_k, too_many = outputs
    assert [c["token"] for c in first["results"][0]["predictions"][0]] == [
        c["token"] for c in model_utils.fill_mask(TEXTS[0], "local:tiny-bert", 3)[0]]
    assert first["results"][1]["code"] == "model.untrained_head"  # that model's error, in its place
    assert len(second["results"][0]["predictions"][0]) == 2
    assert bad_top_k["code"] == "fill_mask.top_k" and bad_top_k["params"] == {"limit": 20}
    assert too_many["code"] == "fill_mask.too_many_models"


@pytest.mark.parametrize("text, model, top_k, message", [
    ("", "local:tiny-bert", 5, "Please enter a text"),
    ("no mask here", "local:tiny-bert", 5, "No mask found"),
    ("[MASK] " * 6, "local:tiny-bert", 5, "Too many masks"),
    (TEXTS[0], "local:tiny-bert", 0, "top-k must be a number from 1 to 20"),
    (TEXTS[0], "local:nothing", 5, "No checkpoint named"),
    (TEXTS[0], "local:tiny-classifier", 5, "no trained masked-language-model"),
    (TEXTS[0], "roberta-base", 5, "Hub is unreachable"),
])
def test_bad_input_gives_clear_errors(tiny_env: Path, text: str, model: str, top_k: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        model_utils.fill_mask(text, model, top_k=top_k)


def test_unknown_candidates_are_reported(tiny_env: Path) -> None:
    result = run_fill_mask([TEXTS[0]], "local:tiny-bert", targets=["mat", "matting"])[0]
    assert any("'matting' is not one token" in n for n in result["notices"])


@pytest.mark.slow
def test_bundled_model_equals_pipeline(tiny_env: Path) -> None:
    require_bundled("bundled:minilm-pretrained")
    from model_utils.manager import get_manager

    text = "paris is the [MASK] of france."
    loaded = get_manager().get("bundled:minilm-pretrained", "masked-lm")
    reference = pipeline("fill-mask", model=loaded.model, tokenizer=loaded.tokenizer, device="cpu")
    assert_same(model_utils.fill_mask(text, "bundled:minilm-pretrained", top_k=5)[0], reference(text, top_k=5))


def _tiny_masked_lm(family: str):
    import transformers as tf

    from conftest import TINY_VOCAB

    common = dict(vocab_size=len(TINY_VOCAB), max_position_embeddings=70)
    torch.manual_seed(0)
    if family == "distilbert":
        return tf.DistilBertForMaskedLM(tf.DistilBertConfig(dim=32, n_layers=2, n_heads=4, hidden_dim=64, **common))
    config_class, model_class = {"bert": (tf.BertConfig, tf.BertForMaskedLM),
                                 "roberta": (tf.RobertaConfig, tf.RobertaForMaskedLM),
                                 "albert": (tf.AlbertConfig, tf.AlbertForMaskedLM)}[family]
    extra = {"embedding_size": 16} if family == "albert" else {}
    config = config_class(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                          **extra, **common)
    return model_class(config)


@pytest.mark.parametrize("family", ["bert", "roberta", "albert", "distilbert"])
def test_vocabulary_projection_runs_only_at_the_masks(family: str) -> None:
    """The MLM head sees only the masked positions, and the probabilities equal the full pass."""
    from conftest import tiny_tokenizer
    from model_utils.fill_mask import Prepared, _forward
    from model_utils.manager import LoadedModel

    model, tokenizer = _tiny_masked_lm(family).eval(), tiny_tokenizer()
    batch = [Prepared([2, 20, 4, 21, 3], [2]), Prepared([2, 4, 22, 23, 24, 4, 25, 3], [1, 5]),
             Prepared([2, 30, 31, 4, 3], [3])]
    seen = []
    hook = model.get_output_embeddings().register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    ours = _forward(LoadedModel("tiny", "masked-lm", model, tokenizer, torch.device("cpu")), batch)
    hook.remove()
    assert seen == [torch.Size([1, 4, seen[0][-1]])]  # 4 masks in all, not 3 x 8 positions
    for prepared, probs in zip(batch, ours):
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([prepared.input_ids])).logits[0]
        torch.testing.assert_close(probs, logits[prepared.mask_positions].softmax(-1), atol=1e-6, rtol=1e-5)
