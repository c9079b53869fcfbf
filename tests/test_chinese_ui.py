"""The whole app in Chinese, in Debian's Chromium: every tab is used, then its visible text (the page and
the charts' SVG) is scanned for the app's own English strings.

The list of English strings is the catalogue's: each UI text and message whose Chinese differs is cut
into its English phrases (two words or more); a phrase on the Chinese page means something the
server wrote, or a header, a chart title, a status line, stayed English. A screenshot of each tab
is kept under test-artifacts/.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from conftest import ARTIFACTS

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed")]

CORPUS = ("The river flows to the sea. Boats sail on the river. The sea is deep and blue. Fish swim in it.\n\n"
          "The cat sleeps on the mat. The dog barks at the cat. Both animals like the sun. They nap all day.\n\n"
          "Bread is baked in an oven. The baker sells bread every morning. People buy warm bread. It smells good.\n\n"
          "Rain fell on the town. The streets were wet. Children jumped in puddles. Then the sun came out.")
# Text in the page that is English on purpose: model and file names, the examples' sentences, formulas.
ALLOWED = re.compile(r"^(?:Hugging Face|PLM_|local:|bundled:)")
VISIBLE_TEXT = """() => {
  const seen = [document.body.innerText];
  for (const node of document.querySelectorAll('svg text')) {
    if (node.getClientRects().length) seen.push(node.textContent);
  }
  return seen.join('\\n');
}"""


def english_phrases() -> dict[str, str]:
    """English phrases of the catalogue whose Chinese differs: phrase -> the key or code it comes from."""
    import app  # noqa: F401 - every tab adds its strings and messages to the catalogue
    from demo import i18n

    pairs = [(key, english, i18n.I18N.translations["zh-CN"].get(key, ""))
             for key, english in i18n.I18N.translations["en"].items()]
    pairs += [(code, english, i18n.MESSAGES["zh-CN"].get(code, "")) for code, english in i18n.MESSAGES["en"].items()]
    phrases: dict[str, str] = {}
    for key, english, chinese in pairs:
        if not chinese or chinese == english or key.endswith("_placeholder"):  # a placeholder shows an example
            continue
        for piece in re.split(r"\{[^}]*\}|%\{[^}]*\}|[\n:;,.!?()\[\]*`“”\"'|<>—–=+/…·%#_]", english):
            piece = " ".join(piece.split())
            if len(piece) >= 10 and len(piece.split()) >= 2 and re.fullmatch(r"[A-Za-z][A-Za-z -]*[A-Za-z]", piece) \
                    and piece not in chinese and not ALLOWED.match(piece):
                phrases.setdefault(piece, key)
    return phrases


@pytest.fixture(scope="module")
def page(app_server: str):
    with playwright_api.sync_playwright() as play:
        browser = play.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(locale="zh-CN", viewport={"width": 1400, "height": 2000})
        page.set_default_timeout(60_000)
        page.goto(app_server, timeout=120_000)
        expect(page.locator("#fm-run")).to_be_visible(timeout=120_000)
        yield page
        browser.close()


def zh(key: str) -> str:
    from demo.i18n import text

    return text(key, "zh-CN")


def scan(page, where: str, phrases: dict[str, str]) -> list[str]:
    """The English phrases visible on ``page`` now (a screenshot kept as ``zh_<where>.png``)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.wait_for_timeout(300)  # the last event's redraw
    page.screenshot(path=str(ARTIFACTS / f"zh_{where}.png"), full_page=True)
    shown = page.evaluate(VISIBLE_TEXT)
    return [f"{where}: “{phrase}” ({key})" for phrase, key in phrases.items() if phrase in shown]


def open_tab(page, key: str) -> None:
    page.get_by_role("tab", name=zh(key), exact=True).click()


def inner_tabs(page, keys: list[str], where: str, phrases: dict[str, str]) -> list[str]:
    found = []
    for key in keys:
        open_tab(page, key)
        found += scan(page, f"{where}_{key}", phrases)
    return found


def test_every_tab_in_chinese_shows_no_english_of_the_app(page, tiny_env: Path) -> None:
    phrases = english_phrases()
    assert len(phrases) > 300, "the catalogue's English phrases"
    assert "Admin and your checkpoints" in phrases and "masked-token accuracy" in phrases  # a sample
    found = scan(page, "start", phrases)

    page.locator("#fm-run").click()
    expect(page.locator("#fm-table")).to_contain_text("local:tiny-bert", timeout=120_000)
    expect(page.locator("#fm-table")).to_contain_text(zh("fm_col_probability"))
    found += scan(page, "fill_mask", phrases)

    open_tab(page, "tab_next_sentence")
    page.locator("#ns-run").click()
    expect(page.locator("#ns-label")).to_contain_text("Next", timeout=120_000)
    found += scan(page, "next_sentence", phrases)
    open_tab(page, "ns_paragraph")
    page.locator("#ns-paragraph-run").click()
    expect(page.locator("#ns-paragraph-chart")).to_contain_text("P(IsNext)", timeout=120_000)
    found += scan(page, "next_sentence_paragraph", phrases)

    open_tab(page, "tab_generate")
    page.locator("#gen-show").click()
    expect(page.locator("#gen-chart .gtitle")).to_contain_text("之后的下一个词元", timeout=120_000)
    page.locator("#gen-step").click()
    expect(page.locator("#gen-text .gen-token")).to_have_count(1, timeout=60_000)
    page.locator("#gen-run").click()
    expect(page.locator("#gen-status")).to_contain_text("结束", timeout=120_000)
    found += scan(page, "generate_steps", phrases)
    open_tab(page, "gen_compare_tab")
    page.locator("#gen-cmp-run").click()
    expect(page.locator("#gen-cmp-table")).to_contain_text("束搜索", timeout=120_000)
    found += scan(page, "generate_compare", phrases)
    open_tab(page, "gen_perplexity_tab")
    page.locator("#gen-ppl-run").click()
    expect(page.locator("#gen-ppl-summary")).to_contain_text("困惑度", timeout=120_000)
    found += scan(page, "generate_perplexity", phrases)
    open_tab(page, "gen_bvg_tab")
    page.locator("#gen-bvg-run").click()
    expect(page.locator("#gen-bvg-mask-causal .gtitle")).to_contain_text("前面的词元", timeout=120_000)
    found += scan(page, "generate_bert_vs_gpt", phrases)

    open_tab(page, "tab_attention")
    page.locator("#attn-run").click()
    expect(page.locator("#attn-heatmap .js-plotly-plot")).to_be_attached(timeout=120_000)
    found += scan(page, "attention_attn_heatmaps", phrases)
    for key, drawn in (("attn_grid", "#attn-grid .js-plotly-plot"), ("attn_rollout", "#attn-rollout-plot .js-plotly-plot"),
                       ("attn_summary", "#attn-summary-plot .js-plotly-plot"), ("attn_head_view", "#attn-head-html iframe"),
                       ("attn_model_view", "#attn-model-html iframe")):  # each view is drawn when opened
        open_tab(page, key)
        expect(page.locator(drawn)).to_be_attached(timeout=60_000)
        found += scan(page, f"attention_{key}", phrases)
    open_tab(page, "attn_math")
    page.locator("#attn-explain").click()
    expect(page.locator("#attn-math-md")).to_contain_text("softmax", timeout=60_000)
    found += scan(page, "attention_math", phrases)

    open_tab(page, "tab_contextual")
    page.locator("#ctx-run").click()
    expect(page.locator("#ctx-heatmap")).to_contain_text("余弦", timeout=120_000)
    found += inner_tabs(page, ["ctx_similarity", "ctx_projection", "ctx_probe"], "contextual", phrases)
    open_tab(page, "ctx_neighbours")
    page.locator("#ctx-nn-run").click()
    expect(page.locator("#ctx-nn-table")).to_contain_text(zh("ctx_col_sentence"), timeout=180_000)
    found += scan(page, "contextual_neighbours", phrases)
    open_tab(page, "ctx_sentence_similarity")
    page.locator("#ctx-st-run").click()
    expect(page.locator("#ctx-st-heatmap")).to_contain_text("句子", timeout=120_000)
    found += scan(page, "contextual_sentences", phrases)

    open_tab(page, "tab_classify")
    page.locator("#classify-run").click()
    expect(page.locator("#classify-label")).to_contain_text("%", timeout=120_000)  # the example sentence
    page.locator("#classify-explain-run").click()
    expect(page.locator("#classify-explanation-note")).to_contain_text("f(x)", timeout=120_000)
    found += scan(page, "classify", phrases)

    open_tab(page, "tab_finetune")
    page.locator("#finetune-use-sample input").check()
    page.locator("#finetune-base input").fill("local:tiny-bert")
    page.locator("#finetune-base input").press("Enter")
    page.locator("#finetune-name input, #finetune-name textarea").first.fill(f"zh-{uuid.uuid4().hex[:6]}")
    page.get_by_text(zh("finetune_hyper"), exact=True).click()
    page.locator("#finetune-max-steps input").fill("4")
    page.locator("#finetune-start").click()
    expect(page.locator("#finetune-summary")).to_contain_text("local:zh-", timeout=240_000)
    found += scan(page, "finetune", phrases)

    open_tab(page, "tab_pretrain")
    page.locator("#pt-text textarea").fill(CORPUS)
    page.locator("#pt-name textarea, #pt-name input").first.fill(f"zh-pt-{uuid.uuid4().hex[:6]}")
    for selector, value in (("#pt-max-steps input", "4"), ("#pt-batch-size input", "4"),
                            ("#pt-max-seq-length input", "32"), ("#pt-probe-every input", "2")):
        page.locator(selector).fill(value)
    page.locator("#pt-start").click()
    expect(page.locator("#pt-status")).to_contain_text("local:zh-pt-", timeout=240_000)
    found += scan(page, "pretrain", phrases)

    open_tab(page, "tab_classroom")
    found += scan(page, "classroom", phrases)
    open_tab(page, "tab_models")
    found += scan(page, "models", phrases)
    assert not found, "English in the Chinese UI:\n" + "\n".join(found)
