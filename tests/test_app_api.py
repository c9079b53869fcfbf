"""The running app through its public API (gradio_client), plus in-process checks of the UI layer."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import pytest
from transformers import pipeline

import model_utils
from conftest import ADMIN_TOKEN
from demo import fill_mask_tab, i18n

gradio_client = pytest.importorskip("gradio_client")


@pytest.fixture(scope="module")
def client(app_server: str):
    return gradio_client.Client(app_server, verbose=False)


@pytest.fixture(scope="module")
def reference(tiny_checkpoints_dir: Path):
    return pipeline("fill-mask", model=str(tiny_checkpoints_dir / "tiny-bert"), device="cpu")


def test_api_fill_mask_equals_pipeline(client, reference) -> None:
    text = "the cat sat on the [MASK] ."
    output = client.predict(text, ["local:tiny-bert"], 5, "", api_name="/fill_mask")
    (result,) = output["results"]
    assert result["model"] == "local:tiny-bert" and result["joint"] is None
    expected = reference(text, top_k=5)
    assert [c["token_str"] for c in result["predictions"][0]] == [e["token_str"] for e in expected]
    for ours, theirs in zip(result["predictions"][0], expected):
        assert ours["score"] == pytest.approx(theirs["score"], abs=1e-5)


def test_api_compares_models_and_fills_jointly(client) -> None:
    text = "the [MASK] sat on the [MASK] ."
    output = client.predict(text, ["local:tiny-bert", "local:tiny-mlm"], 3, "", api_name="/fill_mask")
    assert [r["model"] for r in output["results"]] == ["local:tiny-bert", "local:tiny-mlm"]
    for result in output["results"]:
        assert len(result["predictions"]) == 2 and len(result["joint"]["steps"]) == 2
    assert output["results"][0]["predictions"] != output["results"][1]["predictions"]


def test_api_candidates(client) -> None:
    output = client.predict("the cat sat on the [MASK] .", ["local:tiny-bert"], 5, "mat, dog",
                            api_name="/fill_mask")
    assert {c["token_str"] for c in output["results"][0]["predictions"][0]} == {"mat", "dog"}


@pytest.mark.parametrize("text, models, message", [
    ("no mask at all", ["local:tiny-bert"], "No mask found"),
    ("[MASK]", ["roberta-base"], "Hub is unreachable"),
    ("[MASK]", ["local:../../etc"], "Invalid local checkpoint"),
    ("[MASK]", ["local:tiny-bert", "local:tiny-mlm", "local:tiny-distilbert", "a/b"], "at most 3 models"),
])
def test_api_errors_are_clear_and_the_app_keeps_serving(client, text, models, message) -> None:
    with pytest.raises(Exception, match=message):
        client.predict(text, models, 5, "", api_name="/fill_mask")
    assert client.predict("[MASK] .", ["local:tiny-bert"], 1, "", api_name="/fill_mask")["results"]


def test_concurrent_requests_are_batched_without_mixing_answers(client, tiny_env: Path) -> None:
    texts = [f"the {w} sat on the [MASK] ." for w in ("cat", "dog", "bird", "car", "tree", "book")]
    texts.append("this one has no mask")
    jobs = [client.submit(t, ["local:tiny-bert"], 2, "", api_name="/fill_mask") for t in texts]
    expected = {t: model_utils.fill_mask(t, "local:tiny-bert", top_k=2) for t in texts[:-1]}
    for text, job in zip(texts, jobs):
        try:
            output = job.result(timeout=120)
        except Exception as err:  # a lone bad request is an error
            assert text == texts[-1] and "No mask found" in str(err)
            continue
        if text == texts[-1]:  # batched with good ones: the error is in the JSON
            assert "No mask found" in output["error"]
            continue
        assert output["text"] == text
        got = output["results"][0]["predictions"]
        assert [c["token"] for c in got[0]] == [c["token"] for c in expected[text][0]]
        assert got[0][0]["score"] == pytest.approx(expected[text][0][0]["score"], abs=1e-5)


def test_api_next_sentence(client, tiny_env: Path) -> None:
    first, second = "the cat sat on the mat .", "then it ate dinner ."
    output = client.predict(first, second, "local:tiny-bert", api_name="/next_sentence")
    expected = model_utils.next_sentence(first, second, "local:tiny-bert")
    assert output["is_next"] == pytest.approx(expected["is_next"], abs=1e-6)
    assert output["model"] == "local:tiny-bert"
    with pytest.raises(Exception, match="no next-sentence-prediction head"):
        client.predict(first, second, "local:tiny-distilbert", api_name="/next_sentence")


def test_api_paragraph(client) -> None:
    output = client.predict("the cat sat. the dog ran. it was good.", "local:tiny-bert", 1,
                            api_name="/next_sentence_paragraph")
    assert len(output["pairs"]) == 2 and len(output["control"]) == 2
    assert 0 <= output["mean_is_next"] <= 1


def test_api_models_status_and_unload(client) -> None:
    client.predict("[MASK] .", ["local:tiny-bert"], 1, "", api_name="/fill_mask")
    status, table, _ = client.predict(api_name="/models_status")
    assert "Device:" in status and "offline" in status
    assert ["local:tiny-bert", "masked-lm"] in [row[:2] for row in table["data"]]
    _, table, _ = client.predict("local:tiny-bert", api_name="/unload_models")  # a visitor: in use, kept
    assert "local:tiny-bert" in [row[0] for row in table["data"]]
    _, table, _ = client.predict("local:tiny-bert", "wrong-token", api_name="/unload_models")
    assert "local:tiny-bert" in [row[0] for row in table["data"]]
    _, table, _ = client.predict("local:tiny-bert", ADMIN_TOKEN, api_name="/unload_models")
    assert "local:tiny-bert" not in [row[0] for row in table["data"]]


# ---- in-process checks of the UI layer (no server) ----

def test_every_ui_text_exists_in_both_languages() -> None:
    import app

    demo = app.build_demo()
    keys = set()
    for block in demo.blocks.values():
        for attr in ("label", "info", "value", "placeholder"):
            value = getattr(block, attr, None)
            if type(value).__name__ == "I18nData":
                keys.add(value.key)
    keys |= {key for key, _ in app.TABS}
    assert {"tab_fill_mask", "fm_text", "ns_first", "tab_models"} <= keys
    for lang in i18n.LANGUAGES:
        missing = keys - set(i18n.I18N.translations[lang])
        assert not missing, f"{lang} lacks {sorted(missing)}"
    assert i18n.text("tab_fill_mask", "zh-CN") == "掩码填充"


def test_render_escapes_user_text_and_marks_fillers() -> None:
    result = {"model": "m", "joint": None, "notices": [],
              "predictions": [[{"token_str": "mat", "score": 0.5, "token": 1, "sequence": "x"}]]}
    markdown = fill_mask_tab.filled_markdown("<b>the *cat*</b> sat on the [MASK].", result)
    assert "**mat**" in markdown and "\\<b\\>" in markdown and "\\*cat\\*" in markdown
    figure, filled, table, notices = fill_mask_tab.render_fill_mask(
        {"text": "the [MASK].", "results": [result]})
    assert table == {"headers": ["model", "mask", "rank", "token", "probability"], "data": [["m", 1, 1, "mat", 0.5]]}
    assert notices == "" and len(figure.data) == 1


def test_model_list_limits() -> None:
    from model_utils.fill_mask import parse_models

    assert parse_models(None) == ("",)
    assert parse_models("a") == ("a",)
    assert parse_models(["a", "a", " b "]) == ("a", "b")
    with pytest.raises(ValueError, match="at most 3"):
        parse_models(["a", "b", "c", "d"])
