"""The Classify tab end to end: the real API through gradio_client, the real UI in Chromium."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import transformers

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
MODEL = "local:tiny-classifier"
ROWS = [("the cat sat on the mat", "positive"), ("i hate rain", "negative"), ("a good day", "positive"),
        ("the dog ate my dinner", "negative"), ("", "positive"), ("very happy", "1")]


@pytest.fixture(scope="module")
def client(app_server):
    gradio_client = pytest.importorskip("gradio_client")
    return gradio_client.Client(app_server, verbose=False)


@pytest.fixture(scope="module")
def pipe(tiny_checkpoints_dir):
    return transformers.pipeline("text-classification", model=str(tiny_checkpoints_dir / "tiny-classifier"),
                                 top_k=None, device="cpu")


def pipeline_scores(pipe, text):
    out = pipe(text)
    return out[0] if isinstance(out[0], list) else out


@pytest.fixture
def labelled_csv(tmp_path):
    path = tmp_path / "reviews.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["review", "sentiment"])
        writer.writerows(ROWS)
    return path


def open_tab(page, name: str) -> None:
    """Click the tab ``name``, through Gradio's overflow menu when the tab bar is too narrow."""
    tab = page.get_by_role("tab", name=name)
    tab.first.wait_for(state="attached", timeout=60_000)
    if tab.first.is_visible():
        tab.first.click(timeout=60_000)
    else:
        page.locator(".overflow-menu button").first.click(timeout=60_000)
        page.locator(".overflow-dropdown button", has_text=name).first.click(timeout=60_000)


def expected_accuracy(pipe):
    gold = {"1": "positive"}
    rows = [(t, gold.get(g, g)) for t, g in ROWS if t]
    return sum(pipeline_scores(pipe, t)[0]["label"] == g for t, g in rows) / len(rows)


def test_api_classify_matches_pipeline(client, pipe):
    label, _plot, picker = client.predict(MODEL, "the cat sat on the mat", "", api_name="/classify")
    reference = pipeline_scores(pipe, "the cat sat on the mat")
    assert label["label"] == reference[0]["label"] == picker["value"]
    assert sorted(c[1] for c in picker["choices"]) == sorted(r["label"] for r in reference)
    got = {c["label"]: c["confidence"] for c in label["confidences"]}
    for r in reference:
        assert got[r["label"]] == pytest.approx(r["score"], abs=1e-5)


def test_api_explain_covers_the_words(client):
    spans, note = client.predict(MODEL, "the cat sat on the mat", "", "positive", "integrated-gradients",
                                 api_name="/classify_explain")
    scored = [s for s in spans if s["class_or_confidence"] is not None]
    assert [s["token"] for s in scored] == "the cat sat on the mat".split()
    assert max(abs(s["class_or_confidence"]) for s in scored) == pytest.approx(1.0)
    assert "positive" in note and "✓" in note


def test_api_errors_are_messages(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="empty"):
        client.predict(MODEL, "   ", "", api_name="/classify")
    with pytest.raises(AppError, match="sequence-classification|not a text classifier"):
        client.predict("local:tiny-bert", "the cat", "", api_name="/classify")
    assert client.predict(MODEL, "still serving", "", api_name="/classify")[0]["label"]


def test_api_batch_metrics(client, pipe, labelled_csv):
    from gradio_client import handle_file

    table, download, accuracy, macro_f1, _matrix, summary = client.predict(
        MODEL, handle_file(str(labelled_csv)), "review", "sentiment", "", api_name="/classify_batch")
    assert accuracy == pytest.approx(expected_accuracy(pipe), abs=1e-4)
    assert 0.0 <= macro_f1 <= 1.0
    assert len(table["data"]) == 5 and "5 / 6" in summary and "partial" in summary
    lines = Path(download).read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("row,text,prediction,score,gold,correct") and len(lines) == 6


@pytest.mark.browser
def test_browser_classify_explain_and_batch(app_server, pipe, labelled_csv):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(locale="en-US", viewport={"width": 1600, "height": 1200})
            page.set_default_timeout(60_000)  # the CI machine is shared and slow
            page.goto(app_server, timeout=120_000)
            open_tab(page, "Classify")
            page.locator("#classify-model input").fill(MODEL)
            page.locator("#classify-model input").press("Enter")
            page.locator("#classify-text textarea").fill("the cat sat on the mat")
            page.locator("#classify-run").click()
            top = pipeline_scores(pipe, "the cat sat on the mat")[0]["label"]
            # The first request imports torch and loads the model in the server: allow for a slow machine.
            sync_api.expect(page.locator("#classify-label")).to_contain_text(top, timeout=180_000)
            explanation = page.locator("#classify-explanation")
            sync_api.expect(explanation).to_contain_text("mat", timeout=60_000)
            sync_api.expect(page.locator("#classify-explanation-note")).to_contain_text("✓", timeout=60_000)

            page.locator("#classify-file input[type=file]").set_input_files(str(labelled_csv))
            sync_api.expect(page.locator("#classify-text-column input")).to_have_value("review", timeout=60_000)
            sync_api.expect(page.locator("#classify-label-column input")).to_have_value("sentiment")
            page.locator("#classify-batch-run").click()
            sync_api.expect(page.locator("#classify-batch-summary")).to_contain_text("5 / 6", timeout=60_000)
            accuracy = float(page.locator("#classify-accuracy input").input_value())
            assert accuracy == pytest.approx(expected_accuracy(pipe), abs=1e-4)
            sync_api.expect(page.locator("#classify-confusion")).to_contain_text("predicted", timeout=30_000)
        finally:
            browser.close()
