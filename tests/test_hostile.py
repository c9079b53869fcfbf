"""Hostile and careless users against a running app: one request must not take the app down, one user
must not break another's run (issue 20).

The server runs the tiny local models (the memory blow-up of unbounded pairs was the tokenizer's,
whatever the model) in a checkpoints folder of its own, so checkpoints can be made and deleted.
"""

from __future__ import annotations

import csv
import shutil
import time
from pathlib import Path

import psutil
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from conftest import ARTIFACTS, running_app
from test_finetune_app import finetune_args, write_csv
from test_finetune import sentiment_rows

pytestmark = pytest.mark.slow

MEGABYTE_A = "a " * 500_000  # 1 MB of text, 500k tokens
MEGABYTE_B = "b " * 500_000
UNDER_LIMIT_A = "a " * 9_999  # just under the 20,000-character limit: answered, not refused
UNDER_LIMIT_B = "b " * 9_999


@pytest.fixture(scope="module")
def hostile_app(tiny_checkpoints_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The app on a copy of the tiny checkpoints; yields (url, server process, checkpoints folder)."""
    root = tmp_path_factory.mktemp("hostile") / "checkpoints"
    shutil.copytree(tiny_checkpoints_dir, root)
    log = root.parent / "app.log"
    with running_app(log, PLM_CHECKPOINTS_DIR=str(root), PLM_DEFAULT_FILL_MASK="local:tiny-bert",
                     PLM_DEFAULT_NEXT_SENTENCE="local:tiny-bert", PLM_DEFAULT_ATTENTION="local:tiny-bert",
                     PLM_DEFAULT_TEXT_CLASSIFICATION="local:tiny-classifier",
                     PLM_DEFAULT_PRETRAIN_BASE="local:tiny-bert") as (url, proc):
        yield url, psutil.Process(proc.pid), root


def text_calls(client: Client) -> dict:
    """Every endpoint that takes free text, called with (text A, text B)."""
    return {
        "next_sentence": lambda a, b: client.predict(a, b, "local:tiny-bert", api_name="/next_sentence"),
        "paragraph": lambda a, b: client.predict(f"{a}. {b}.", "local:tiny-bert", 0,
                                                 api_name="/next_sentence_paragraph"),
        "attention": lambda a, b: client.predict("local:tiny-bert", a, b, 0, 0, "png", api_name="/attention"),
        "classify": lambda a, b: client.predict("local:tiny-classifier", a, b, api_name="/classify"),
        "explain": lambda a, b: client.predict("local:tiny-classifier", a, b, "", "gradient-x-input",
                                               api_name="/classify_explain"),
        "fill_mask": lambda a, b: client.predict(f"{a} [MASK] {b}", ["local:tiny-bert"], 5, "", api_name="/fill_mask"),
        "fill_mask_targets": lambda a, b: client.predict("the [MASK] sat", ["local:tiny-bert"], 5, a + b,
                                                         api_name="/fill_mask"),
        "contextual": lambda a, b: client.predict("local:tiny-bert", "cat", f"{a}\n{b}", api_name="/contextual"),
        "contextual_neighbours": lambda a, b: client.predict("local:tiny-bert", "cat", a + b, 1, 1,
                                                             api_name="/contextual_neighbours"),
        "sentence_similarity": lambda a, b: client.predict("local:tiny-bert", f"{a}\n{b}", "mean",
                                                           api_name="/sentence_similarity"),
        "pretrain_corpus": lambda a, b: client.predict(f"{a}\n\n{b}", [], False, api_name="/pretrain_corpus"),
        # an invalid checkpoint name: a probe within the limit is refused for the name, never trained
        "pretrain_probe": lambda a, b: client.predict("", [], True, "local:tiny-bert", "../no", f"{a} [MASK] {b}",
                                                      10, 4, 4, 1e-3, 32, 0.15, True, 1, api_name="/pretrain"),
    }


def timed(call, *args) -> tuple[float, object]:
    started = time.monotonic()
    try:
        result = call(*args)
    except AppError as err:
        result = err
    return time.monotonic() - started, result


def test_megabyte_pairs_are_refused_at_once_on_every_text_endpoint(hostile_app) -> None:
    url, server, _ = hostile_app
    client = Client(url, verbose=False)
    for name, call in text_calls(client).items():
        timed(call, "the cat sat.", "the dog ran.")  # warm: models loaded, caches filled
        before = server.memory_info().rss
        seconds, result = timed(call, MEGABYTE_A, MEGABYTE_B)
        grown = (server.memory_info().rss - before) / 2**20
        assert seconds < 2.0 and grown < 200, (name, seconds, grown)
        if name == "pretrain_corpus":  # the corpus may be 10 MB: 1 MB is read and judged too small
            assert "too small" in str(result), result
        else:
            assert isinstance(result, AppError) and "characters long; the limit is 20,000" in str(result), (name, result)
    assert client.predict("the cat sat.", "the dog ran.", "local:tiny-bert", api_name="/next_sentence")["is_next"] >= 0


def test_pairs_just_under_the_limit_are_answered_quickly_and_cut_with_a_notice(hostile_app) -> None:
    url, server, _ = hostile_app
    client = Client(url, verbose=False)
    calls = text_calls(client)
    for name in ("next_sentence", "attention", "classify", "explain", "paragraph"):
        halves = 3 if name == "paragraph" else 1  # one box holds both sentences
        before = server.memory_info().rss
        seconds, result = timed(calls[name], UNDER_LIMIT_A[:len(UNDER_LIMIT_A) // halves],
                                UNDER_LIMIT_B[:len(UNDER_LIMIT_B) // halves])
        grown = (server.memory_info().rss - before) / 2**20
        assert not isinstance(result, AppError), (name, result)
        assert seconds < 2.0 and grown < 200, (name, seconds, grown)
    attention = calls["attention"](UNDER_LIMIT_A, UNDER_LIMIT_B)
    notice = attention[0]["value"]  # the notice above the views
    assert "only the first" in notice and "Cut from text A" in notice and "Cut from text B" in notice


def _wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_starting_fine_tunes_from_other_sessions_does_not_break_the_running_one(hostile_app, tmp_path) -> None:
    """Session A trains; B and C press Start meanwhile (their jobs wait); A finishes normally, then B and C."""
    url, _, root = hostile_app
    data = write_csv(tmp_path / "reviews.csv", sentiment_rows(40))
    long_run = finetune_args(data, "job-a", max_steps=400)
    clients = [Client(url, verbose=False) for _ in range(3)]
    job_a = clients[0].submit(*long_run, api_name="/finetune")
    _wait_until(lambda: any("Step " in str(out[0]) for out in job_a.outputs()), 120, "job A never trained")
    others = [client.submit(*finetune_args(data, f"job-{name}", max_steps=4), api_name="/finetune")
              for client, name in zip(clients[1:], "bc")]
    _wait_until(lambda: all(any("Waiting" in str(out[0]) for out in job.outputs()) for job in others), 60,
                "jobs B and C were not queued behind A")
    statuses = [job.result(timeout=300)[0] for job in (job_a, *others)]
    assert all("Done" in status for status in statuses), statuses
    for name in ("job-a", "job-b", "job-c"):
        assert (root / name / "model.safetensors").is_file(), name


HOSTILE_LABELS = ('<img src=x onerror="window.pwned=1">', "[click](https://evil.example)")


@pytest.mark.browser
def test_uploaded_labels_show_as_text_and_a_session_deletes_its_own_checkpoint(hostile_app, tmp_path) -> None:
    """Labels from an uploaded CSV render literally in the summary and the Plotly confusion matrix (no image, no
    link, no script); the session that trained the model finds it under Models and deletes it."""
    from playwright.sync_api import expect, sync_playwright

    from test_classify_app import CHROMIUM, CHROMIUM_ARGS, open_tab

    url, _, root = hostile_app
    data = tmp_path / "hostile.csv"
    with data.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=["review", "mood", "split"])
        writer.writeheader()
        writer.writerows({"review": r["text"], "mood": HOSTILE_LABELS[r["label"] == "positive"], "split": r["split"]}
                         for r in sentiment_rows(40, seed=2))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(locale="en-US", viewport={"width": 1600, "height": 1400})
            page.set_default_timeout(60_000)
            page.goto(url, timeout=120_000)
            open_tab(page, "Fine-tune")
            page.locator("#finetune-file input[type=file]").set_input_files(str(data))
            expect(page.locator("#finetune-label-column input")).to_have_value("mood", timeout=180_000)
            page.locator("#finetune-base input").fill("local:tiny-bert")
            page.locator("#finetune-base input").press("Enter")
            page.locator("#finetune-name textarea, #finetune-name input").first.fill("hostile-labels")
            page.get_by_text("Hyperparameters").click()
            page.locator("#finetune-max-steps input").fill("4")
            page.locator("#finetune-start").click()
            expect(page.locator("#finetune-summary")).to_contain_text("local:hostile-labels", timeout=240_000)
            expect(page.locator("#finetune-summary")).to_contain_text(HOSTILE_LABELS[0])
            expect(page.locator("#finetune-summary")).to_contain_text(HOSTILE_LABELS[1])
            expect(page.locator("#finetune-confusion")).to_contain_text(HOSTILE_LABELS[0], timeout=60_000)
            assert page.locator("img[src='x']").count() == 0
            assert page.locator("a[href='https://evil.example'], a[*|href='https://evil.example']").count() == 0
            assert page.evaluate("window.pwned") is None
            page.screenshot(path=str(ARTIFACTS / "hostile-labels.png"), full_page=True)

            open_tab(page, "Models")
            page.get_by_text("Admin and your checkpoints").click()
            page.locator("#models-mine input").click()
            page.get_by_role("option", name="hostile-labels").click()
            page.locator("#models-delete").click()
            expect(page.get_by_text("Deleted local:hostile-labels").first).to_be_visible(timeout=60_000)
        finally:
            browser.close()
    assert not (root / "hostile-labels").exists() and (root / "tiny-bert").is_dir()
