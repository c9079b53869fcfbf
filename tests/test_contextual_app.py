"""The Contextual lab through the running app: its API with gradio_client, its UI in Chromium.

The app server runs on the tiny local BERT (``PLM_DEFAULT_CONTEXTUAL=local:tiny-bert``); its answers
are compared with the in-process model layer on the same checkpoint. The browser test runs the
built-in "bank" example in English and Chinese, downloads a chart as SVG with Plotly's camera
button and the data as CSV, and fills the sentences from the corpus sample.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import ARTIFACTS
from model_utils import contextual
from model_utils.contextual_corpus import word_pattern

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SENTENCES = "x | the cat sat on the bank .\ny | my bank was very good .\nthe dog ate the cat\nx | bank bank ."


@pytest.fixture(scope="module")
def client(app_server: str):
    gradio_client = pytest.importorskip("gradio_client")
    return gradio_client.Client(app_server, verbose=False)


def test_api_contextual_equals_the_cosine_of_the_model_layer_vectors(client, tiny_env: Path) -> None:
    result = client.predict("local:tiny-bert", "bank", SENTENCES, api_name="/contextual")
    lines, _ = contextual.parse_lines(SENTENCES)
    vectors = np.array([o["vectors"] for o in contextual.word_vectors(lines, "bank", "local:tiny-bert")["occurrences"]])
    assert result["model"] == "local:tiny-bert" and result["num_layers"] == 3
    assert [o["label"] for o in result["occurrences"]] == ["x", "y", "x", "x"]
    for layer, record in enumerate(result["layers"]):
        unit = vectors[:, layer] / np.linalg.norm(vectors[:, layer], axis=1, keepdims=True)
        np.testing.assert_allclose(record["matrix"], unit @ unit.T, atol=2e-5)
        assert len(record["points"]) == 4
    assert result["notices"] == ["“bank” does not occur as a whole word in sentence(s) 3; they are left out."]
    assert result["probe"] is None and "y has 1" in result["probe_note"]  # English for API clients


def test_api_examples_neighbours_and_sentence_similarity(client, tiny_env: Path) -> None:
    from gradio_client.exceptions import AppError

    found = client.predict("light", api_name="/contextual_examples").splitlines()
    assert found and all(word_pattern("light").search(line) for line in found)
    with pytest.raises(AppError, match="No sentence of the corpus sample contains “zyzzyva”"):
        client.predict("zyzzyva", api_name="/contextual_examples")

    near = client.predict("local:tiny-bert", "bank", "the bank was good .", 1, 2, api_name="/contextual_neighbours")
    assert near["layer"] == 2 and len(near["neighbours"]) == 10 and near["searched_sentences"] > 1000
    similarities = [n["similarity"] for n in near["neighbours"]]
    assert similarities == sorted(similarities, reverse=True)

    sentences = "the cat sat on the mat .\na dog ate my dinner\nrain"
    result = client.predict("local:tiny-bert", sentences, "mean", api_name="/sentence_similarity")
    expected = contextual.sentence_similarity(sentences, "local:tiny-bert")["matrix"]
    np.testing.assert_allclose(result["matrix"], expected, atol=1e-6)

    with pytest.raises(AppError, match=r"201 sentences were given; the lab takes at most 200 at once \(PLM_LAB_MAX_SENTENCES\)"):
        client.predict("local:tiny-bert", "bank", "the bank\n" * 201, api_name="/contextual")


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed")
def test_browser_lab_in_both_languages_with_exports(app_server: str, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    expect = sync_api.expect
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as play:
        browser = play.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(locale="en-US", viewport={"width": 1400, "height": 1100}, accept_downloads=True)
            page.set_default_timeout(60_000)
            page.goto(app_server, timeout=120_000)
            page.locator('button[data-tab-id="tab_contextual"]').first.dispatch_event("click")
            page.get_by_label("svg").first.check()
            page.locator("#ctx-run").click()  # the built-in "bank" example, on the tiny model (2 layers)
            heatmap = page.locator("#ctx-heatmap")
            expect(heatmap.locator(".gtitle")).to_contain_text("“bank” at layer 2", timeout=120_000)
            expect(heatmap.locator(".ytick text", has_text="1 · river")).to_have_count(1)  # rows: number · sense
            expect(heatmap.locator(".ytick text", has_text="12 · money")).to_have_count(1)
            expect(page.locator("#ctx-lines .legendtext").first).to_have_text("same sense")
            layer = page.locator("#ctx-layer input[type=number]")  # moving the layer redraws from the session state
            layer.fill("0")
            layer.press("Enter")
            expect(heatmap.locator(".gtitle")).to_contain_text("at layer 0 (embedding output)")

            with page.expect_download() as svg:  # Plotly's own camera button, format from the radio
                heatmap.locator('.modebar-btn[data-title^="Download plot"]').click()
            assert svg.value.suggested_filename == "bank_similarity_L0.svg"
            assert "<svg" in Path(svg.value.path()).read_text(encoding="utf-8")[:500]

            with page.expect_download() as layers_csv:
                page.locator('#ctx-downloads a[download="contextual_layers.csv"]').click()
            rows = list(csv.reader(Path(layers_csv.value.path()).open(encoding="utf-8")))
            assert rows[0][:4] == ["layer", "mean_all", "mean_within", "mean_between"] and len(rows) == 4

            page.locator('button[data-tab-id="ctx-probe-tab"]').first.dispatch_event("click")
            expect(page.locator("#ctx-probe .gtitle")).to_contain_text("12 occurrences")
            page.screenshot(path=str(ARTIFACTS / "contextual_lab_en.png"), full_page=True)

            page.locator("#ctx-word textarea").fill("light")
            page.locator("#ctx-find").click()
            expect(page.locator("#ctx-sentences textarea")).to_have_value(re.compile(r"^(?!river).*\blight\b", re.I | re.S))

            chinese = browser.new_page(locale="zh-CN", viewport={"width": 1400, "height": 1100})
            chinese.goto(app_server, timeout=120_000)
            chinese.locator('button[data-tab-id="tab_contextual"]').first.dispatch_event("click")
            expect(chinese.get_by_role("tab", name="语境表示实验")).to_be_visible()
            chinese.locator("#ctx-run").click()
            expect(chinese.locator("#ctx-heatmap .gtitle")).to_contain_text("第 2 层", timeout=120_000)
            expect(chinese.locator("#ctx-lines .legendtext").first).to_have_text("同一词义")
            chinese.screenshot(path=str(ARTIFACTS / "contextual_lab_zh.png"), full_page=True)
        finally:
            browser.close()


def test_builtin_examples_and_both_languages_are_complete() -> None:
    from demo import contextual_plots, contextual_tab

    assert set(contextual_tab.STRINGS["en"]) == set(contextual_tab.STRINGS["zh-CN"])
    assert set(contextual_plots.MESSAGES["en"]) == set(contextual_plots.MESSAGES["zh-CN"])
    assert set(contextual_tab.MESSAGES["en"]) <= set(contextual_tab.MESSAGES["zh-CN"])
    rows = contextual_tab.builtin_examples()
    assert {"bank", "bat", "spring", "light"} <= {word for word, _ in rows}
    for word, text in rows:
        sentences, labels = contextual.parse_lines(text)
        assert len(sentences) >= 8 and len(set(labels)) >= 2 and min(labels.count(x) for x in set(labels)) >= 4
        assert all(len(word_pattern(word).findall(s)) == 1 for s in sentences), word


def test_the_heatmap_shows_the_cosine_of_the_vectors(tiny_env: Path) -> None:
    from demo import contextual_plots

    lines, labels = contextual.parse_lines(SENTENCES)
    result = contextual.explore_word(lines, "bank", "local:tiny-bert", labels)
    vectors = np.array([o["vectors"] for o in contextual.word_vectors(lines, "bank", "local:tiny-bert")["occurrences"]])
    for layer in range(result["num_layers"]):
        figure = contextual_plots.similarity_heatmap(result, layer)
        unit = vectors[:, layer] / np.linalg.norm(vectors[:, layer], axis=1, keepdims=True)
        np.testing.assert_allclose(np.asarray(figure.data[0].z, dtype=float), unit @ unit.T, atol=2e-5)
        assert list(figure.data[0].y) == ["1 · x", "2 · y", "3 · x", "4 · x"]
        projection = contextual_plots.projection_scatter(result, layer)
        assert [trace.name for trace in projection.data] == ["x", "y"]
