"""The Fine-tune tab end to end: the API through gradio_client, the UI in Chromium, and a 2-process run."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_classify_app import CHROMIUM, CHROMIUM_ARGS, open_tab
from test_finetune import sentiment_rows

ROOT = Path(__file__).resolve().parent.parent
LABELS = {"positive": "upbeat", "negative": "downbeat"}  # names only this data has: proves which model answers


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=["review", "mood", "split"])
        writer.writeheader()
        writer.writerows({"review": r["text"], "mood": LABELS[r["label"]], "split": r["split"]} for r in rows)
    return path


@pytest.fixture(scope="module")
def client(app_server):
    gradio_client = pytest.importorskip("gradio_client")
    return gradio_client.Client(app_server, verbose=False)


@pytest.fixture
def reviews_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "reviews.csv", sentiment_rows(40))


def finetune_args(path, name: str, max_steps: int = 4) -> list:
    from gradio_client import handle_file

    # file, use sample, text column, label column, base, name, epochs, batch size, lr, warmup,
    # weight decay, max length, max steps, seed, LoRA rank, compare from scratch
    return [handle_file(str(path)), False, "review", "mood", "local:tiny-bert", name, 1, 8, 5e-3, 0, 0, 16,
            max_steps, 42, 0, False]


@pytest.mark.slow
def test_api_finetune_then_classify_with_the_new_checkpoint(client, reviews_csv, tiny_checkpoints_dir):
    status, _, _, summary, confusion = client.predict(*finetune_args(reviews_csv, "api-tuned"), api_name="/finetune")
    assert "Done" in status and "local:api-tuned" in summary and confusion is not None
    card = (tiny_checkpoints_dir / "api-tuned" / "README.md").read_text()
    assert "| max_steps | 4 |" in card and "source: reviews.csv" in card
    label = client.predict("local:api-tuned", "the film was great", "", api_name="/classify")[0]
    assert label["label"] in {"upbeat", "downbeat"}
    assert {c["label"] for c in label["confidences"]} == {"upbeat", "downbeat"}


def test_api_stop_mid_run_keeps_the_model_trained_so_far(client, reviews_csv, tiny_checkpoints_dir):
    import time

    name = "api-stopped"
    job = client.submit(*finetune_args(reviews_csv, name, max_steps=100_000), api_name="/finetune")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not any("Step" in str(o[0]) for o in job.outputs()):
        time.sleep(0.5)
    assert "Stopping" in client.predict(api_name="/finetune_stop")
    status, _, _, summary, _ = job.result(timeout=240)
    assert "Stopped" in status and "Stopped at step" in summary
    assert (tiny_checkpoints_dir / name).is_dir()  # Stop ends training early; what was learned is saved
    assert "No fine-tuning job of yours" in client.predict(api_name="/finetune_stop")


def test_api_refuses_bad_requests_with_messages(client, reviews_csv, tmp_path, tiny_checkpoints_dir):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="Invalid checkpoint name"):
        client.predict(*finetune_args(reviews_csv, "../escape"), api_name="/finetune")
    one_class = write_csv(tmp_path / "one.csv", [r for r in sentiment_rows(20) if r["label"] == "positive"])
    with pytest.raises(AppError, match="at least two classes"):
        client.predict(*finetune_args(one_class, "one-class"), api_name="/finetune")
    args = finetune_args(reviews_csv, "unknown-base")
    args[4] = "bundled:does-not-exist"
    with pytest.raises(AppError, match="Unknown bundled model"):
        client.predict(*args, api_name="/finetune")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("review,mood\ncaf\xe9,a\n".encode("latin-1"))
    with pytest.raises(AppError, match="not UTF-8"):
        client.predict(*finetune_args(latin, "latin"), api_name="/finetune")
    assert not (tiny_checkpoints_dir / "one-class").exists()


@pytest.mark.browser
def test_browser_trains_on_a_file_then_classifies_with_it(app_server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed")
    data = write_csv(tmp_path / "moods.csv", sentiment_rows(40, seed=1))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(locale="en-US", viewport={"width": 1600, "height": 1400})
            page.set_default_timeout(60_000)
            page.goto(app_server, timeout=120_000)
            open_tab(page, "Fine-tune")
            page.locator("#finetune-file input[type=file]").set_input_files(str(data))
            # the first upload imports torch in a busy server: allow for a slow machine
            sync_api.expect(page.locator("#finetune-text-column input")).to_have_value("review", timeout=180_000)
            sync_api.expect(page.locator("#finetune-label-column input")).to_have_value("mood", timeout=60_000)
            sync_api.expect(page.locator("#finetune-preview")).to_contain_text("downbeat", timeout=60_000)
            page.locator("#finetune-base input").fill("local:tiny-bert")
            page.locator("#finetune-base input").press("Enter")
            page.locator("#finetune-name textarea, #finetune-name input").first.fill("browser-tuned")
            page.get_by_text("Hyperparameters").click()
            page.locator("#finetune-max-steps input").fill("4")
            page.locator("#finetune-learning-rate input").fill("0.005")
            page.locator("#finetune-start").click()
            sync_api.expect(page.locator("#finetune-summary")).to_contain_text("local:browser-tuned", timeout=240_000)
            sync_api.expect(page.locator("#finetune-loss")).to_contain_text("training loss", timeout=60_000)
            open_tab(page, "Classify")
            page.locator("#classify-model input").click()
            sync_api.expect(page.get_by_role("option", name="local:browser-tuned")).to_be_visible(timeout=60_000)
            page.get_by_role("option", name="local:browser-tuned").click()
            page.locator("#classify-text textarea").fill("the film was great")
            page.locator("#classify-run").click()
            sync_api.expect(page.locator("#classify-label")).to_contain_text("beat", timeout=120_000)
        finally:
            browser.close()


@pytest.mark.slow
def test_torchrun_two_processes_write_one_checkpoint(tiny_bert_dir: Path, tmp_path: Path):
    data = write_csv(tmp_path / "moods.csv", sentiment_rows(40))
    env = dict(os.environ, PLM_CHECKPOINTS_DIR=str(tmp_path / "ckpt"), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "model_utils.finetune",
               "--train_file", str(data), "--text_column", "review", "--label_column", "mood",
               "--base_model", str(tiny_bert_dir), "--checkpoint_name", "ddp", "--output_dir", str(tmp_path / "run"),
               "--max_steps", "3", "--per_device_train_batch_size", "4", "--max_length", "16",
               "--use_cpu", "--ddp_backend", "gloo", "--disable_tqdm", "true"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=480)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = tmp_path / "ckpt" / "ddp"
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == ["ddp"]
    log = json.loads((folder / "training_log.json").read_text())
    assert log["hyperparameters"]["processes"] == 2 and json.loads((folder / "config.json").read_text())[
        "id2label"] == {"0": "downbeat", "1": "upbeat"}
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())["summary"]
    assert summary["steps"] == 3 and summary["checkpoint"] == "local:ddp"
