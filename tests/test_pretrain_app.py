"""The Pretrain tab end to end: a short run on a tiny model through the API and in Chromium, bad inputs, Stop.

The run's timeline and before/after numbers are checked against the saved checkpoint itself.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from conftest import ARTIFACTS
from test_pretrain_session import PROBE, TEXT

from model_utils import pretrain as P
from model_utils import pretrain_session as S

gradio_client = pytest.importorskip("gradio_client")

# text, files, use_bundled, base, name, probe, probe_every, steps, batch, lr, max_len, mlm_prob, nsp, example
KNOBS = dict(probe_every=2, steps=6, batch=4, lr=1e-2, max_len=32, mlm=0.15, nsp=True, example=1)


def request(name: str, text: str = TEXT, files=None, base: str = "local:tiny-bert", probe: str = PROBE,
            **knobs) -> tuple:
    k = {**KNOBS, **knobs}
    return (text, files or [], False, base, name, probe, k["probe_every"], k["steps"], k["batch"], k["lr"],
            k["max_len"], k["mlm"], k["nsp"], k["example"])


@pytest.fixture(scope="module")
def client(app_server: str):
    return gradio_client.Client(app_server, verbose=False)


@pytest.mark.slow
def test_api_short_run_numbers_come_from_the_saved_model(client, tiny_checkpoints_dir: Path) -> None:
    from transformers import BertForPreTraining

    name = f"pt-api-{uuid.uuid4().hex[:6]}"
    outputs = client.predict(*request(name), api_name="/pretrain")
    status, summary = outputs[0], outputs[-1]
    assert "Done" in status and f"local:{name}" in status
    assert summary["checkpoint"] == f"local:{name}" and summary["steps"] == 6 and not summary["stopped"]
    assert [p["step"] for p in summary["timeline"]] == [0, 2, 4, 6]
    saved = BertForPreTraining.from_pretrained(str(tiny_checkpoints_dir / name), use_safetensors=True)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_checkpoints_dir / name))
    probe = S.probe_top_k(saved, tok, S.probe_ids(tok, PROBE))
    assert [p["token_str"] for p in probe] == [p["token_str"] for p in summary["timeline"][-1]["predictions"]]
    args = S.app_arguments(max_steps=6, batch_size=4, learning_rate=1e-2, max_seq_length=32, eval_every=1)
    held = S.split_heldout(S.load_corpus(TEXT)[0])[1]
    after = P.evaluate(saved, P.heldout_batches(held, tok, args))
    assert summary["after"]["metrics"]["mlm_loss"] == pytest.approx(after["mlm_loss"], abs=1e-4)
    table = outputs[4]
    rows = {r[0]: r for r in table["data"]}
    assert rows["held-out MLM loss"][2] == pytest.approx(round(after["mlm_loss"], 4), abs=2e-4)
    masking = summary["masking"]
    assert set(masking["scores"]) == {"base", "adapted"} and masking["nsp_label"] in ("IsNext", "NotNext")
    # The new checkpoint works in the other tabs at once.
    filled = client.predict(PROBE, [f"local:{name}"], 5, "", api_name="/fill_mask")
    assert [c["token_str"] for c in filled["results"][0]["predictions"][0]] == [p["token_str"] for p in probe]


@pytest.mark.parametrize("text, base, message", [
    ("", "local:tiny-bert", "empty"),
    ("one sentence. two.\n\nthree.", "local:tiny-bert", "too small"),
    (TEXT, "local:tiny-classifier", "masked-language-model head"),
    (TEXT, "local:tiny-distilbert", "BERT"),
])
def test_api_bad_inputs_are_clear(client, text: str, base: str, message: str) -> None:
    with pytest.raises(Exception, match=message):
        client.predict(*request(f"bad-{uuid.uuid4().hex[:6]}", text=text, base=base), api_name="/pretrain")


def test_api_binary_upload_and_corpus_info(client, tmp_path: Path) -> None:
    binary = tmp_path / "photo.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00" + bytes(range(256)) * 8)
    with pytest.raises(Exception, match="exactly one"):
        client.predict(*request("probe", probe="no mask here"), api_name="/pretrain")
    with pytest.raises(Exception, match="binary"):
        client.predict(*request("bin", text="", files=[gradio_client.handle_file(str(binary))]), api_name="/pretrain")
    info = client.predict(TEXT, [], False, api_name="/pretrain_corpus")
    assert "3 documents, 15 sentences" in info and "enough" in info


def test_api_stop_mid_run_leaves_no_checkpoint(client, tiny_checkpoints_dir: Path) -> None:
    name = f"pt-stop-{uuid.uuid4().hex[:6]}"
    job = client.submit(*request(name, steps=100_000, probe_every=1000), api_name="/pretrain")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not any("Step" in str(o[0]) for o in job.outputs()):
        time.sleep(0.5)
    assert "Stopping" in client.predict(api_name="/pretrain_stop")
    outputs = job.result(timeout=240)
    assert "Stopped" in outputs[0] and "nothing was saved" in outputs[0]
    assert outputs[-1]["stopped"] and outputs[-1]["checkpoint"] is None and outputs[-1]["steps"] < 100_000
    assert not [p for p in tiny_checkpoints_dir.iterdir() if name in p.name], "no folder, not even a hidden one"


@pytest.mark.browser
def test_browser_short_run(app_server: str) -> None:
    playwright_api = pytest.importorskip("playwright.sync_api")
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("Debian chromium is not installed")
    expect = playwright_api.expect
    name = f"pt-browser-{uuid.uuid4().hex[:6]}"
    args = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]
    with playwright_api.sync_playwright() as play:
        browser = play.chromium.launch(executable_path=str(chromium), args=args)
        page = browser.new_page(locale="en-US", viewport={"width": 1280, "height": 2400})
        try:
            page.goto(app_server, timeout=120_000)
            page.get_by_role("tab", name="Pretrain").click(timeout=120_000)
            page.locator("#pt-text textarea").fill(TEXT)
            expect(page.locator("#pt-corpus")).to_contain_text("3 documents, 15 sentences", timeout=60_000)
            for selector, value in (("#pt-name textarea", name), ("#pt-probe textarea", PROBE)):
                page.locator(selector).fill(value)
            for selector, value in (("#pt-max-steps input", "6"), ("#pt-batch-size input", "4"), ("#pt-max-seq-length input", "32"),
                                    ("#pt-probe-every input", "2"), ("#pt-learning-rate input", "0.01")):
                page.locator(selector).fill(value)
            page.locator("#pt-start").click()
            expect(page.locator("#pt-status")).to_contain_text("Done", timeout=240_000)
            expect(page.locator("#pt-status")).to_contain_text(f"local:{name}")
            expect(page.locator("#pt-before-after")).to_contain_text("held-out MLM loss")
            expect(page.locator("#pt-timeline-table")).to_contain_text("6")
            expect(page.locator("#pt-masking")).to_contain_text("[MASK]")
            expect(page.locator("#pt-position-detail")).to_contain_text("−log")
            page.screenshot(path=str(_artifact("browser_pretrain.png")), full_page=True)
            page.get_by_role("tab", name="Fill-Mask").click()
            page.locator("#fm-models input").click()
            expect(page.get_by_role("option", name=f"local:{name}")).to_be_visible(timeout=30_000)
        finally:
            page.screenshot(path=str(_artifact("browser_pretrain_end.png")), full_page=True)
            browser.close()


def _artifact(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
