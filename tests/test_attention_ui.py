"""End-to-end tests of the Attention tab on the running app (tiny local BERT as the default model).

The browser test blocks every non-local request (as a machine without internet would) and checks
that bertviz's head view still draws its SVG attention lines, that the model view, the heatmaps and
the formula view render. The API test calls the tab's ``/attention`` and ``/attention_math``
endpoints with gradio_client.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from conftest import ARTIFACTS

CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
LOCAL = ("http://127.0.0.1", "http://localhost", "about:", "data:", "blob:")


def open_tab(page, tab_id: str) -> None:
    """Select the tab with Gradio id ``tab_id``, even when it sits in the overflow menu of a narrow tab bar."""
    button = page.locator(f'button[data-tab-id="{tab_id}"]').first
    button.wait_for(state="attached", timeout=60_000)
    button.dispatch_event("click")


@pytest.mark.browser
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian chromium is not installed")
def test_views_render_with_the_network_blocked(app_server: str) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    blocked: list[str] = []

    def only_local(route) -> None:
        url = route.request.url
        if url.startswith(LOCAL):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.route("**/*", only_local)
            page.goto(app_server)
            open_tab(page, "tab_attention")
            page.locator("#attn-text textarea").fill("The cat sat on the mat.")
            page.locator("#attn-pair textarea").fill("It was happy.")
            page.locator("#attn-run").click()

            # the default view is the heatmap; bertviz's views are built when their sub-tab is opened
            page.locator("#attn-heatmap .js-plotly-plot").wait_for(timeout=90_000)
            assert page.locator("#attn-heatmap .xtick text").first.text_content() == "[CLS] (0)"
            open_tab(page, "attn-head-view")
            head_view = page.frame_locator("#attn-head-html iframe")
            head_view.locator("svg line").first.wait_for(state="attached", timeout=60_000)
            lines = head_view.locator("svg line").count()
            tokens = math.isqrt(lines // 4)  # the tiny model has 4 heads: one line per head and token pair
            assert tokens >= 10 and lines == 4 * tokens * tokens
            assert head_view.locator("#layer option").count() == 2  # bertviz's own layer picker

            open_tab(page, "attn-model-view")
            model_view = page.frame_locator("#attn-model-html iframe")
            model_view.locator("svg line").first.wait_for(state="attached", timeout=30_000)
            assert model_view.locator("svg line").count() == 2 * lines  # 2 layers x 4 heads

            open_tab(page, "attn-math")
            page.locator("#attn-explain").click()
            page.get_by_text("These weights equal the attention the model itself returned").wait_for(timeout=30_000)
        finally:
            browser.close()
    assert all(not url.startswith(LOCAL) for url in blocked)


def chart_title(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} .gtitle").first.text_content() or ""


def slide(page, elem_id: str, fraction: float) -> None:
    """Drag the slider ``elem_id`` with the mouse to ``fraction`` (0 = left end, 1 = right end) and let go."""
    box = page.locator(f"#{elem_id} input[type=range]").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + 2 + fraction * (box["width"] - 4), y, steps=5)
    page.mouse.up()


def catalogue(language: str, code: str, **params: object) -> str:
    """The text of message ``code`` in ``language``, as the server writes it."""
    from demo import attention_tab  # noqa: F401 - registers the tab's messages
    from demo.i18n import MESSAGES

    return MESSAGES[language][code].format(**params)


@pytest.mark.browser
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian chromium is not installed")
@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_layer_and_head_pickers_redraw_on_every_change(app_server: str, language: str) -> None:
    """Typing a number, arrow keys and the slider each redraw the open chart for the chosen layer/head, from
    the session's state (no new forward pass), the latest change only; in both UI languages."""
    sync_api = pytest.importorskip("playwright.sync_api")
    expect = sync_api.expect
    heatmap = lambda layer, head: catalogue(language, "attention.heatmap_title", layer=layer, head=head)  # noqa: E731
    grid = lambda layer: catalogue(language, "attention.plot.layer_heads", layer=layer)  # noqa: E731
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(locale=language, viewport={"width": 1300, "height": 1000})
            page.goto(app_server)
            open_tab(page, "tab_attention")
            page.locator("#attn-text textarea").fill("The cat sat on the mat.")
            page.locator("#attn-run").click()
            title = page.locator("#attn-heatmap .gtitle").first
            expect(title).to_have_text(heatmap(0, 0), timeout=90_000)
            runs: list[str] = []
            page.on("request", lambda r: runs.append(r.url) if "queue/join" in r.url else None)

            page.locator("#attn-layer input[type=number]").fill("1")  # typing a number
            expect(title).to_have_text(heatmap(1, 0), timeout=30_000)
            head_range = page.locator("#attn-head input[type=range]")
            head_range.focus()
            for _ in range(3):  # arrow keys, pressed faster than the charts are drawn
                head_range.press("ArrowRight")
            expect(title).to_have_text(heatmap(1, 3), timeout=30_000)
            head_range.press("ArrowLeft")
            expect(title).to_have_text(heatmap(1, 2), timeout=30_000)
            slide(page, "attn-layer", 0.0)  # the slider itself, by the mouse
            expect(title).to_have_text(heatmap(0, 2), timeout=30_000)
            expect(page.locator("#attn-layer input[type=number]")).to_have_value("0")
            assert 3 <= len(runs) <= 6  # at most one redraw per change (stale ones are dropped)

            open_tab(page, "attn-grid")  # another view follows the pickers too
            grid_title = page.locator("#attn-grid .gtitle").first
            expect(grid_title).to_have_text(grid(0), timeout=30_000)
            slide(page, "attn-layer", 1.0)
            expect(grid_title).to_have_text(grid(1), timeout=30_000)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"attention_pickers_{language}.png"), full_page=False)
        finally:
            browser.close()


@pytest.mark.slow
def test_api_endpoints(app_server: str) -> None:
    client_module = pytest.importorskip("gradio_client")
    client = client_module.Client(app_server, verbose=False)
    outputs = client.predict("local:tiny-bert", "the cat sat", "", 1, 3, "svg", api_name="/attention")
    notice, layer, head, query, head_html, model_html, files, table, heatmap, grid, rollout, summary = outputs
    assert layer["value"] == 1 and head["value"] == 3 and [c[0] for c in query["choices"]][:3] == [
        "[CLS] (0)", "the (1)", "cat (2)"]
    # only the default view (the heatmap of the chosen layer and head) is drawn; the bertviz views, the other
    # charts and the summary are drawn when their sub-tab is opened
    assert head_html is model_html is files is grid is rollout is summary is None and table["data"] == []
    markdown, table, _ = client.predict(1, 3, 2, "svg", api_name="/attention_math")
    assert "layer 1, head 3" in markdown and "cat \\(2\\)" in markdown  # Markdown-escaped: shown as typed
    weights = [row[4] for row in table["data"]]
    assert sum(weights) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.slow
def test_the_compact_answer_matches_full_precision_attention(app_server: str, tiny_env: Path) -> None:
    """The heatmap sent is the model's attention rounded to the 4 decimals shown (tolerance 5e-5), and small."""
    import json

    import numpy as np
    from gradio_client import Client

    from model_utils.attention import attention

    text = " ".join(["the cat sat on the mat and the dog ran in the park"] * 4)  # 54 tokens with [CLS]/[SEP]
    outputs = Client(app_server, verbose=False).predict("local:tiny-bert", text, "", 1, 2, "png",
                                                        api_name="/attention")
    plot = json.loads(outputs[8]["plot"])
    full = attention(text, "local:tiny-bert")  # the same tiny model, loaded here in full precision
    expected = np.asarray(full["attentions"])[1, 2]
    assert np.asarray(plot["data"][0]["z"]).shape == expected.shape == (54, 54)
    np.testing.assert_allclose(plot["data"][0]["z"], expected, atol=5e-5, rtol=0)
    assert len(json.dumps(outputs)) < 60_000  # the heatmap shown (2,916 values), not every view of every layer
