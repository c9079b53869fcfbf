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

            head_view = page.frame_locator("#attn-head-html iframe")
            head_view.locator("svg line").first.wait_for(state="attached", timeout=90_000)
            lines = head_view.locator("svg line").count()
            tokens = math.isqrt(lines // 4)  # the tiny model has 4 heads: one line per head and token pair
            assert tokens >= 10 and lines == 4 * tokens * tokens
            assert head_view.locator("#layer option").count() == 2  # bertviz's own layer picker

            open_tab(page, "attn-model-view")
            model_view = page.frame_locator("#attn-model-html iframe")
            model_view.locator("svg line").first.wait_for(state="attached", timeout=30_000)
            assert model_view.locator("svg line").count() == 2 * lines  # 2 layers x 4 heads

            open_tab(page, "attn-heatmaps")
            page.locator("#attn-heatmap .js-plotly-plot").wait_for(timeout=30_000)
            assert page.locator("#attn-heatmap .xtick text").first.text_content() == "[CLS] (0)"

            open_tab(page, "attn-math")
            page.locator("#attn-explain").click()
            page.get_by_text("These weights equal the attention the model itself returned").wait_for(timeout=30_000)
        finally:
            browser.close()
    assert all(not url.startswith(LOCAL) for url in blocked)


@pytest.mark.slow
def test_api_endpoints(app_server: str) -> None:
    client_module = pytest.importorskip("gradio_client")
    client = client_module.Client(app_server, verbose=False)
    outputs = client.predict("local:tiny-bert", "the cat sat", "", 1, 3, "svg", api_name="/attention")
    head_html = next(o for o in outputs if isinstance(o, str) and "bertviz head view" in o)
    assert "<iframe" in head_html and "srcdoc=" in head_html
    markdown, table, _ = client.predict(1, 3, 2, "svg", api_name="/attention_math")
    assert "layer 1, head 3" in markdown and "cat \\(2\\)" in markdown  # Markdown-escaped: shown as typed
    weights = [row[4] for row in table["data"]]
    assert sum(weights) == pytest.approx(1.0, abs=1e-4)
