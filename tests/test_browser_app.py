"""End to end in Debian's Chromium: fill a mask, score a sentence pair, and see the Chinese UI.

A screenshot of each run is kept under test-artifacts/ (gitignored; CI can upload it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import model_utils
from conftest import ARTIFACTS, require_bundled, running_app

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed")]


def open_app(page, url: str) -> None:
    """Load the app and wait until Gradio has rendered it (the Fill-Mask button is there)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(url, timeout=120_000)
    playwright_api.expect(page.locator("#fm-run")).to_be_visible(timeout=120_000)


def fill(page, selector: str, value: str) -> None:
    """Type into a textbox and check the value stuck (it can be reset while the app hydrates)."""
    box = page.locator(selector)
    box.fill(value)
    playwright_api.expect(box).to_have_value(value)


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as play:
        chromium = play.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


def test_fill_mask_then_next_sentence(browser, app_server: str, tiny_env: Path) -> None:
    text = "the cat sat on the [MASK] ."
    best = model_utils.fill_mask(text, "local:tiny-bert", top_k=1)[0][0]["token_str"]
    pair = ("i was hungry after work .", "so i ate dinner .")
    is_next = model_utils.next_sentence(*pair, "local:tiny-bert")["is_next"]
    page = browser.new_page(locale="en-US", viewport={"width": 1280, "height": 1600})
    try:
        open_app(page, app_server)
        fill(page, "#fm-text textarea", text)
        page.locator("#fm-run").click()
        filled = page.locator("#fm-filled")
        playwright_api.expect(filled).to_contain_text(best, timeout=120_000)
        playwright_api.expect(page.locator("#fm-table")).to_contain_text(best)
        playwright_api.expect(page.locator("#fm-chart")).to_contain_text("local:tiny-bert · mask 1", timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "browser_fill_mask.png"), full_page=True)

        page.get_by_role("tab", name="Next Sentence").click()
        fill(page, "#ns-first textarea", pair[0])
        fill(page, "#ns-second textarea", pair[1])
        page.locator("#ns-run").click()
        label = page.locator("#ns-label")
        playwright_api.expect(label).to_contain_text("IsNext", timeout=120_000)
        playwright_api.expect(label).to_contain_text(f"{round(is_next * 100)}%")
    finally:
        page.screenshot(path=str(ARTIFACTS / "browser_app.png"), full_page=True)
        page.close()


def test_chinese_ui_and_visible_error(browser, app_server: str) -> None:
    page = browser.new_page(locale="zh-CN")
    try:
        open_app(page, app_server)
        playwright_api.expect(page.get_by_role("tab", name="掩码填充")).to_be_visible(timeout=60_000)
        playwright_api.expect(page.locator("#offline-banner")).to_contain_text("离线模式")
        fill(page, "#fm-text textarea", "no mask here")
        page.locator("#fm-run").click()
        # the error is in the browser's language too (Accept-Language: zh-CN)
        playwright_api.expect(page.get_by_text("没有找到掩码").first).to_be_visible(timeout=60_000)
    finally:
        page.screenshot(path=str(ARTIFACTS / "browser_zh_error.png"), full_page=True)
        page.close()


def test_messages_quoting_angle_brackets_show_whole(browser, app_server: str, tiny_env: Path) -> None:
    """Messages quoting <mask>, local:<name> or the user's input are shown whole, not taken for HTML tags."""
    from model_utils.fill_mask import run_fill_mask

    text, words = "the cat sat on the [MASK] .", "<cat>, mat"
    notice = run_fill_mask([text], "local:tiny-bert", 5, words)[0]["notices"][0]
    assert "<cat>" in notice
    bad_id = "no <such> model"
    page = browser.new_page(locale="en-US", viewport={"width": 1280, "height": 1600})
    try:
        open_app(page, app_server)
        fill(page, "#fm-text textarea", text)
        fill(page, "#fm-targets textarea", words)
        page.locator("#fm-run").click()
        playwright_api.expect(page.locator("#fm-notices")).to_contain_text(notice, timeout=120_000)

        page.get_by_role("tab", name="Next Sentence").click()
        model = page.locator("#ns-model input")
        model.fill(bad_id)
        model.press("Enter")
        page.locator("#ns-run").click()
        toast = page.get_by_test_id("toast-body").filter(has_text="not a valid model id")
        playwright_api.expect(toast).to_contain_text(f"'{bad_id}' is not a valid model id", timeout=60_000)
        playwright_api.expect(toast).to_contain_text("'local:<name>' or 'bundled:<name>')")

        page.get_by_role("tab", name="Models").click()
        status = page.locator("#models-status")
        playwright_api.expect(status).to_contain_text("offered as local:<name>", timeout=60_000)
        playwright_api.expect(status).to_contain_text("Cache:")
    finally:
        page.screenshot(path=str(ARTIFACTS / "browser_messages.png"), full_page=True)
        page.close()


@pytest.mark.slow
def test_next_sentence_on_the_bundled_default_tells_coherent_from_unrelated(browser, tmp_path: Path) -> None:
    """Offline, with no model chosen, the Next Sentence tab uses bundled:minilm-pretrained and answers right."""
    require_bundled("bundled:minilm-pretrained")
    cases = [("I was very hungry after work.", "Penguins live in the southern hemisphere.", "NotNext"),
             ("I was very hungry after work.", "So I cooked a big dinner.", "IsNext")]
    with running_app(tmp_path / "app.log") as (url, _):
        page = browser.new_page(locale="en-US", viewport={"width": 1280, "height": 1400})
        try:
            open_app(page, url)
            page.get_by_role("tab", name="Next Sentence").click()
            for first, second, answer in cases:
                fill(page, "#ns-first textarea", first)
                fill(page, "#ns-second textarea", second)
                page.locator("#ns-run").click()
                top = page.locator("#ns-label [data-testid='label-output-value']")
                playwright_api.expect(top).to_have_text(answer, timeout=120_000)
                page.screenshot(path=str(ARTIFACTS / f"browser_nsp_bundled_{answer}.png"), full_page=True)
        finally:
            page.close()
