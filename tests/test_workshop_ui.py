"""Issue 15 in Chromium, in English and in Chinese: the walls a workshop hit, replayed against the offline app.

1. Fine-tune opens on the quick preset with its estimate, steps and rows, and previews what will train.
2. A closed tab's job is stopped and the next session's job starts within seconds; the Models tab lists jobs.
3. The example's taken name gets a suggestion, not an error.
4. Offline pickers offer only what can run; a comparison with a failing model shows the others; Chinese text on
   an English-only model gets a notice naming one that reads it.
6. Paragraph mode shows the contrast with a control built from another text.
Screenshots go to test-artifacts/workshop_<language>_<step>.png.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import pytest
from conftest import ARTIFACTS
from test_classify_app import CHROMIUM, CHROMIUM_ARGS, open_tab

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")]
LANGUAGES = ["en", "zh-CN"]


def words(key: str, language: str) -> str:
    import app  # noqa: F401 - every tab's strings
    from demo.i18n import text

    return text(key, language)


def said(code: str, language: str, **params) -> str:
    import app  # noqa: F401 - the tabs' messages
    from demo.messages import say

    return say(code, language, **params)


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as play:
        chromium = play.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def new_page(browser, url: str, language: str):
    context = browser.new_context(locale=language, viewport={"width": 1400, "height": 1800})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(url, timeout=120_000)
    expect(page.locator("#fm-run")).to_be_visible(timeout=120_000)
    return page


def shot(page, language: str, step: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / f"workshop_{language}_{step}.png"), full_page=True)


def tab(page, key: str, language: str) -> None:
    open_tab(page, words(key, language))


@pytest.mark.parametrize("language", LANGUAGES)
def test_finetune_opens_sized_and_a_taken_name_gets_a_suggestion(browser, app_server, tiny_checkpoints_dir: Path,
                                                                  language: str):
    page = new_page(browser, app_server, language)
    tab(page, "tab_finetune", language)
    plan = page.locator("#finetune-plan")
    estimated = "Estimated time" if language == "en" else "估计用时"
    expect(plan).to_contain_text(estimated, timeout=60_000)
    expect(plan).to_contain_text("800")  # the quick preset's rows, of the sample's thousands
    expect(page.locator("#finetune-preview")).to_contain_text(re.compile("positive|negative"))  # rows that train
    quick = said("finetune.preset.quick", language, rows=800, time="X").split("800")[0]
    expect(page.locator("#finetune-preset")).to_contain_text(quick.strip())
    name = page.locator("#finetune-name input, #finetune-name textarea").first
    assert re.fullmatch(r"classifier-\d{4}-\d{4}", name.input_value())  # dated: two students never collide
    shot(page, language, "finetune_plan")

    (tiny_checkpoints_dir / "reviews-demo").mkdir(exist_ok=True)  # the first student's run
    (tiny_checkpoints_dir / "reviews-demo" / "config.json").write_text("{}")
    name.fill("reviews-demo")
    name.press("Tab")
    expect(plan).to_contain_text("local:reviews-demo-2", timeout=30_000)
    expect(plan).to_contain_text("already exists" if language == "en" else "已经存在")
    shot(page, language, "finetune_name_taken")
    page.context.close()


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_closed_tab_frees_the_slot_for_the_next_session(browser, app_server, language: str):
    first = new_page(browser, app_server, language)
    second = new_page(browser, app_server, language)
    for page, steps in ((first, "5000"), (second, "3")):
        tab(page, "tab_finetune", language)
        page.locator("#finetune-base input").fill("local:tiny-bert")
        page.locator("#finetune-base input").press("Enter")
        page.locator("#finetune-name input, #finetune-name textarea").first.fill(f"ws-{uuid.uuid4().hex[:6]}")
        page.get_by_text(words("finetune_hyper", language), exact=True).click()
        page.locator("#finetune-max-steps input").fill(steps)
        page.locator("#finetune-start").click()
        if page is first:
            elapsed = "elapsed" if language == "en" else "已用"
            expect(first.locator("#finetune-status")).to_contain_text(elapsed, timeout=120_000)
    in_line = said("job.waiting", language, position=1, wait="").split("1")[0]
    expect(second.locator("#finetune-status")).to_contain_text(in_line.strip(), timeout=60_000)
    tab(second, "tab_models", language)
    expect(second.locator("#models-jobs")).to_contain_text(said("models.owner_you", language), timeout=30_000)
    expect(second.locator("#models-jobs")).to_contain_text(said("models.job_running", language))
    shot(second, language, "models_jobs")
    tab(second, "tab_finetune", language)

    closed = time.monotonic()
    first.context.close()  # the first student closes the tab mid-run
    expect(second.locator("#finetune-summary")).to_contain_text("local:ws-", timeout=120_000)
    assert time.monotonic() - closed < 90  # it started within seconds and its 3 steps ran
    shot(second, language, "next_session_ran")
    second.context.close()


@pytest.mark.parametrize("language", LANGUAGES)
def test_offline_pickers_partial_comparisons_and_unreadable_text(browser, app_server, language: str):
    page = new_page(browser, app_server, language)
    picker = page.locator("#fm-models")
    picker.locator("input").click()
    options = page.get_by_role("option")
    expect(options.first).to_be_visible()
    offered = [option.split("\n")[-1].strip() for option in options.all_inner_texts()]  # without the ✓ mark
    assert "local:tiny-bert" in offered and not {"bert-base-uncased", "roberta-base"} & set(offered)
    expect(picker).to_contain_text(words("models_info_offline", language)[:12])
    page.keyboard.press("Escape")

    picker.locator("input").fill("bert-base-uncased")  # a Hub model, typed while offline
    picker.locator("input").press("Enter")
    page.locator("#fm-text textarea").click()  # closes the picker's list
    expect(picker).to_contain_text("bert-base-uncased")
    page.locator("#fm-run").click()
    expect(page.locator("#fm-table")).to_contain_text("local:tiny-bert", timeout=120_000)  # the others answer
    expect(page.locator("#fm-notices")).to_contain_text("bert-base-uncased", timeout=30_000)
    shot(page, language, "fill_mask_partial")

    page.locator("#fm-text textarea").fill("我今天很[MASK]。")
    page.locator("#fm-run").click()
    expect(page.locator("#fm-notices")).to_contain_text("bert-base-chinese", timeout=120_000)
    shot(page, language, "fill_mask_unreadable")

    tab(page, "tab_next_sentence", language)
    page.locator("#ns-first textarea").fill("今天天气很好。")
    page.locator("#ns-second textarea").fill("我们去公园散步。")
    page.locator("#ns-run").click()
    expect(page.locator("#ns-notes")).to_contain_text("bert-base-chinese", timeout=120_000)
    tab(page, "ns_paragraph", language)
    page.locator("#ns-paragraph-run").click()
    contrast = "contrast" if language == "en" else "差距"
    expect(page.locator("#ns-paragraph-notes")).to_contain_text(contrast, timeout=120_000)
    expect(page.locator("#ns-paragraph-chart")).to_contain_text(said("plots.shuffled_control", language))
    shot(page, language, "paragraph_contrast")
    page.context.close()
