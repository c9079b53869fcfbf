"""The Generate tab through the running app: its API with gradio_client, its UI in Chromium, its streaming.

The app server runs on the tiny local models (``PLM_DEFAULT_TEXT_GENERATION=local:tiny-gpt2``, fill-mask
``local:tiny-bert``); every answer is compared with the in-process model layer on the same checkpoint.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

import model_utils
from conftest import ARTIFACTS
from demo.generate_tab import paced

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
LOCAL = ("http://127.0.0.1", "http://localhost", "about:", "data:", "blob:")
GPT, BERT = "local:tiny-gpt2", "local:tiny-bert"
PROMPT = "the cat sat on the mat. then"


@pytest.fixture(scope="module")
def client(app_server: str):
    gradio_client = pytest.importorskip("gradio_client")
    return gradio_client.Client(app_server, verbose=False)


def token_ids(record: dict) -> list[int]:
    return [t["token_id"] for t in record["tokens"]]


def test_api_next_token_and_generate_equal_the_model_layer(client, tiny_env: Path) -> None:
    shown = client.predict(GPT, PROMPT, 0.8, 5, 0.9, api_name="/next_token")
    expected = model_utils.next_token(PROMPT, GPT, 5, 0.8, 0.9)
    assert [c["token_id"] for c in shown["candidates"]] == [c["token_id"] for c in expected["candidates"]]
    for got, want in zip(shown["candidates"], expected["candidates"]):
        assert got["after_top_p"] == pytest.approx(want["after_top_p"], abs=1e-6)
    # API parameters: model, prompt, temperature, top_k, top_p, strategy, seed, max_new_tokens
    html, status, record = client.predict(GPT, PROMPT, 1.3, 8, 0.95, "sample", 21, 12, api_name="/generate")
    reference = model_utils.generate(PROMPT, GPT, 12, "sample", 1.3, 8, 0.95, seed=21)
    assert token_ids(record) == token_ids(reference) and record["finished"] == reference["finished"]
    assert f"{record['generated']} new tokens" in status and "tokens/s" in status
    assert 'class="gen-token"' in html and html.count('class="gen-token"') == len(record["tokens"])


def test_api_step_by_step_then_continue_equals_one_full_run(app_server: str, tiny_env: Path) -> None:
    from gradio_client import Client

    session = Client(app_server, verbose=False)  # its own session: the steps live in the session's state
    first = session.predict(GPT, PROMPT, 1.0, 10, 1.0, "sample", 5, api_name="/generate_step")
    assert len(first["tokens"]) == 1 and first["candidates"]
    other = first["candidates"][3]["token_id"]
    chosen = session.predict(GPT, PROMPT, 1.0, 10, 1.0, other, api_name="/choose_token")
    assert token_ids(chosen) == token_ids(first) + [other]
    undone = session.predict(GPT, PROMPT, 1.0, 10, 1.0, api_name="/undo_token")
    assert token_ids(undone) == token_ids(first)
    _, _, record = session.predict(GPT, PROMPT, 1.0, 10, 1.0, "sample", 5, 4, api_name="/generate_continue")
    full = model_utils.generate(PROMPT, GPT, 5, "sample", 1.0, 10, 1.0, seed=5)
    assert token_ids(record) == token_ids(full)  # one step by the model, then 4 more = 5 at once
    assert [t["chosen_by"] for t in record["tokens"]] == ["given"] + ["model"] * 4


def test_api_compare_perplexity_and_bert_vs_gpt(client, tiny_env: Path) -> None:
    # model, prompt, temperature, top_k, top_p, seed, num_beams, max_new_tokens
    results = client.predict(GPT, PROMPT, 1.0, 10, 1.0, 3, 3, 6, api_name="/compare_strategies")
    for strategy in ("greedy", "sample", "beam"):
        expected = model_utils.generate(PROMPT, GPT, 6, strategy, 1.0, 10, 1.0, num_beams=3, seed=3)
        assert token_ids(results[strategy]) == token_ids(expected)
    scored = client.predict(BERT, "the cat sat on the mat .", "auto", api_name="/score_text")
    assert scored["method"] == "masked"
    assert scored["perplexity"] == pytest.approx(model_utils.score_text("the cat sat on the mat .", BERT)["perplexity"])
    compared = client.predict(BERT, GPT, "the cat sat on the mat .", api_name="/bert_vs_gpt")
    expected = model_utils.bert_vs_gpt("the cat sat on the mat .", BERT, GPT)
    assert [w["masked_probability"] for w in compared["words"]] == pytest.approx(
        [w["masked_probability"] for w in expected["words"]])
    assert compared["masks"]["causal"]["causal"] and not compared["masks"]["masked"]["causal"]


def test_api_attention_tab_serves_a_causal_model_with_its_mask(app_server: str, tiny_env: Path) -> None:
    from gradio_client import Client

    session = Client(app_server, verbose=False)  # its own session: the formula reads the session's last run
    session.predict(GPT, PROMPT, "", 0, 1, "svg", api_name="/attention")
    _, table, _ = session.predict(0, 1, 2, "svg", api_name="/attention_math")  # layer 0, head 1, the third token
    masked = [row[3] for row in table["data"]]
    weights = [row[4] for row in table["data"]]
    assert masked[:3] == [False] * 3 and all(masked[3:]) and len(masked) > 3  # it sees itself and the tokens before
    assert sum(weights[:3]) == pytest.approx(1.0, abs=1e-5) and not any(weights[3:])


@pytest.mark.parametrize("endpoint, args, message", [
    ("/next_token", (GPT, "   ", 1.0, 10, 1.0), "The text is empty"),
    ("/next_token", (BERT, PROMPT, 1.0, 10, 1.0), "reads the words on both sides"),
    ("/generate", (GPT, PROMPT, 1.0, 10, 1.0, "sample", -1, 5), "minimum value 0|The seed must be"),
    ("/choose_token", (GPT, PROMPT, 1.0, 10, 1.0, "cat"), "the model's token ids"),
    ("/score_text", ("local:tiny-distilbert", "the", "causal"), "causal-language-model|reads the words"),
])
def test_api_bad_input_gets_a_clear_message(client, endpoint: str, args: tuple, message: str) -> None:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name=endpoint)


@pytest.mark.parametrize("model, prompt, message", [
    (GPT, "x" * 100_000, "100,000 characters long"),
    ("../../etc/passwd", PROMPT, "not a valid model id"),
    ("local:../tiny-gpt2", PROMPT, "Invalid local checkpoint name"),
    ("bundled:minilm-pretrained", PROMPT, "has no causal-language-model head"),
])
def test_api_hostile_input_is_refused_and_odd_text_is_served(client, model: str, prompt: str, message: str) -> None:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        client.predict(model, prompt, 1.0, 10, 1.0, "greedy", 0, 3, api_name="/generate")
    odd = "猫 🐱 the \x00cat\u200b sat"
    _, _, record = client.predict(GPT, odd, 1.0, 10, 1.0, "greedy", 0, 3, api_name="/generate")
    assert record["generated"] == 3 or record["finished"] == "eos"


def test_paced_streaming_skips_updates_but_never_the_last_and_stops_its_worker() -> None:
    made, stopped = [], threading.Event()

    def produce(should_stop):
        for i in range(200):
            if should_stop():
                stopped.set()
                return
            time.sleep(0.002)
            made.append(i)
            yield {"i": i}

    seen = [r["i"] for r in paced(produce, interval=0.05)]
    assert seen[-1] == 199 and seen == sorted(seen) and len(seen) < 100  # coalesced, in order, the last kept
    made.clear()
    stream = paced(produce, interval=0.01)
    next(stream)
    stream.close()  # what Gradio does when Stop cancels the event
    assert stopped.wait(5) and len(made) < 200


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed")
def test_browser_steps_filters_streaming_and_bert_vs_gpt(app_server: str) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    expect = sync_api.expect
    ARTIFACTS.mkdir(exist_ok=True)
    blocked: list[str] = []

    def only_local(route) -> None:  # as on a workshop laptop without internet
        if route.request.url.startswith(LOCAL):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_api.sync_playwright() as play:
        browser = play.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(locale="en-US", viewport={"width": 1400, "height": 1100})
            page.set_default_timeout(60_000)
            page.route("**/*", only_local)
            page.goto(app_server, timeout=120_000)
            page.locator('button[data-tab-id="tab_generate"]').first.dispatch_event("click")
            page.locator("#gen-prompt textarea").fill(PROMPT)
            page.locator("#gen-show").click()
            chart = page.locator("#gen-chart")
            expect(chart.locator(".gtitle")).to_contain_text("Next token after", timeout=120_000)
            expect(chart.locator(".ytick text", has_text="✗ top-k")).not_to_have_count(0)  # top-k 10 of 300
            top_k = page.locator("#gen-top-k input[type=number]")
            top_k.fill("3")
            top_k.press("Enter")  # the chart follows the slider
            expect(chart.locator(".gtitle")).to_contain_text("top-k 3 ")
            expect(chart.locator(".ytick text", has_text="✗")).to_have_count(7)  # 3 kept, and the next 7 removed

            text = page.locator("#gen-text")
            page.locator("#gen-step").click()
            expect(text.locator(".gen-token")).to_have_count(1)
            page.locator("#gen-add").click()  # the first candidate, chosen by the user: outlined
            expect(text.locator(".gen-token")).to_have_count(2)
            expect(text.locator('.gen-token[style*="outline"]')).to_have_count(1)
            expect(text.locator(".gen-token").last).to_have_attribute("title", re.compile("chosen by you"))  # hover
            page.locator("#gen-undo").click()
            expect(text.locator(".gen-token")).to_have_count(1)

            page.locator("#gen-max-new input[type=number]").fill("40")
            page.locator("#gen-max-new input[type=number]").press("Enter")
            page.locator("#gen-continue").click()
            expect(page.locator("#gen-status")).to_contain_text("tokens/s", timeout=60_000)
            expect(page.locator("#gen-status")).to_contain_text("ended", timeout=60_000)
            assert text.locator(".gen-token").count() >= 2
            page.locator("#gen-run").click()
            page.locator("#gen-stop").click()
            # Stop may come after the end of a 40-token run of the tiny model
            expect(page.locator("#gen-status")).to_contain_text(re.compile("Stopped|ended"))
            page.screenshot(path=str(ARTIFACTS / "generate_steps_en.png"), full_page=True)

            page.locator('button[data-tab-id="gen-bvg-tab"]').first.dispatch_event("click")
            page.locator("#gen-bvg-run").click()
            expect(page.locator("#gen-bvg-mask-causal .gtitle")).to_contain_text("only itself and the tokens before it",
                                                                                 timeout=120_000)
            expect(page.locator("#gen-bvg-mask-masked .gtitle")).to_contain_text("every token sees every token")
            expect(page.locator("#gen-bvg-table")).to_contain_text("causal LM guess")
            page.screenshot(path=str(ARTIFACTS / "generate_bert_vs_gpt_en.png"), full_page=True)
            page.locator("#gen-bvg-open-attention").click()  # the link to every layer and head
            expect(page.locator("#attn-run")).to_be_visible()
        finally:
            browser.close()
    assert all(not url.startswith(LOCAL) for url in blocked)
