"""Failure isolation (issue 7, item 5): one broken thing never takes the rest of the app with it.

* A checkpoint that fails to load (damaged weights or config, pickle-only weights, an unknown
  architecture, no tokenizer) gives a clear ValueError through ``model_utils`` and a clear error
  through the running app's API; nothing is cached for it, a good model still answers, and once
  the folder is repaired the same name loads. A Hub id while the Hub is unreachable (without
  ``HF_HUB_OFFLINE``) fails fast and the defaults fall back to the bundled models.
* A fine-tune that crashes mid-run is reported as failed, the other tabs answer during and after
  it, and the training slot is free again.
* The app starts when the checkpoints folder is missing, unwritable or a file, says so, and
  refuses to start a run that could not save its result.
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import (ADMIN_TOKEN, ROOT, TINY_WORDS, build_tiny_model, free_port, require_bundled, running_app,
                      tiny_tokenizer)

TEXT = "the cat sat on the [MASK] ."
WEIGHTS = "model.safetensors"


def build_short_vocab_model(folder: Path, vocab_size: int = 40) -> Path:
    """A tiny BERT whose embeddings cover only the first ``vocab_size`` ids of its (larger) tokenizer."""
    import torch
    import transformers as tf

    torch.manual_seed(0)
    config = tf.BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=64, max_position_embeddings=64)
    tf.BertForPreTraining(config).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


def _edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))


def _pickle_only(folder: Path) -> None:
    import torch
    from safetensors.torch import load_file

    torch.save(load_file(folder / WEIGHTS), folder / "pytorch_model.bin")
    (folder / WEIGHTS).unlink()


def _truncate(folder: Path) -> None:
    data = (folder / WEIGHTS).read_bytes()
    (folder / WEIGHTS).write_bytes(data[: len(data) // 2])


def _drop_tokenizer(folder: Path) -> None:
    for path in folder.iterdir():
        if path.name.startswith(("tokenizer", "vocab", "special_tokens")):
            path.unlink()


# kind -> (how to damage a copy of a good checkpoint, what the error must say)
DAMAGE = {
    "truncated-weights": (_truncate, "weights file is damaged or incomplete"),
    "garbage-weights": (lambda f: (f / WEIGHTS).write_bytes(os.urandom(4096)), "weights file is damaged"),
    "empty-weights": (lambda f: (f / WEIGHTS).write_bytes(b""), "weights file is damaged"),
    "no-weights": (lambda f: (f / WEIGHTS).unlink(), "no .safetensors weights"),
    "pickle-only": (_pickle_only, "safetensors weights only"),
    "config-not-json": (lambda f: (f / "config.json").write_text("{not json"), "config.json cannot be read"),
    "config-not-object": (lambda f: (f / "config.json").write_text("[1, 2]"), "not an object"),
    "unknown-architecture": (lambda f: _edit_config(f, model_type="nosuchmodel",
                                                    architectures=["NoSuchForMaskedLM"]),
                             "model type 'nosuchmodel'.*does not know"),
    "shapes-unlike-config": (lambda f: _edit_config(f, hidden_size=64), "does not match its config"),
    "no-tokenizer": (_drop_tokenizer, "no tokenizer vocabulary"),
    "vocab-mismatch": (lambda f: (shutil.rmtree(f), build_short_vocab_model(f)),
                       "tokenizer has \\d+ tokens but the model has embeddings for 40"),
}


def make_broken(root: Path, template: Path, kind: str, name: str | None = None) -> Path:
    """Copy the good ``template`` checkpoint to ``root/<name>`` and damage it the ``kind`` way."""
    folder = root / (name or kind)
    shutil.copytree(template, folder)
    DAMAGE[kind][0](folder)
    return folder


def repair(folder: Path, template: Path) -> None:
    shutil.rmtree(folder)
    shutil.copytree(template, folder)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A good tiny BERT (MLM + NSP heads) that the tests copy and damage."""
    return build_tiny_model(tmp_path_factory.mktemp("template") / "good")


@pytest.fixture
def broken_env(tmp_path: Path, template: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkpoints folder holding local:good, pointed to by the settings, and a fresh model manager."""
    from model_utils import manager

    root = tmp_path / "checkpoints"
    shutil.copytree(template, root / "good")
    monkeypatch.setenv("PLM_CHECKPOINTS_DIR", str(root))
    monkeypatch.setenv("PLM_DEVICE", "cpu")
    monkeypatch.setattr(manager, "_manager", manager.ModelManager())
    return root


# ---- 1. a checkpoint that fails to load, through model_utils ----

@pytest.mark.parametrize("kind", DAMAGE)
def test_broken_checkpoint_is_refused_clearly_and_never_cached(kind: str, broken_env: Path, template: Path) -> None:
    import model_utils
    from model_utils import registry
    from model_utils.manager import get_manager

    folder = make_broken(broken_env, template, kind)
    name = f"local:{kind}"
    registry.choices("fill-mask")  # listing the folder must not fail either
    manager = get_manager()
    for attempt in range(2):  # the second request fails the same way: no half-loaded entry
        with pytest.raises(ValueError, match=DAMAGE[kind][1]) as caught:
            manager.get(name, "masked-lm", task="fill-mask")
        assert name in str(caught.value) and len(str(caught.value)) < 600
    with pytest.raises(ValueError, match=DAMAGE[kind][1]):
        model_utils.fill_mask(TEXT, name)
    assert manager.loaded() == []

    good = model_utils.fill_mask(TEXT, "local:good")
    assert [m["checkpoint"] for m in manager.loaded()] == ["local:good"]

    repair(folder, template)  # the same name now loads: no failure was remembered
    assert model_utils.fill_mask(TEXT, name) == good
    assert {m["checkpoint"] for m in manager.loaded()} == {"local:good", name}


def test_every_task_reports_a_broken_checkpoint(broken_env: Path, template: Path) -> None:
    import model_utils

    make_broken(broken_env, template, "truncated-weights", "broken")
    calls = {
        "next sentence": lambda: model_utils.next_sentence("the cat sat .", "it ate .", "local:broken"),
        "classify": lambda: model_utils.classify("the cat sat .", "local:broken"),
        "attention": lambda: model_utils.attention("the cat sat .", "local:broken"),
    }
    for task, call in calls.items():
        with pytest.raises(ValueError, match="local:broken: its weights file is damaged"):
            call()
    assert 0 <= model_utils.next_sentence("the cat sat .", "it ate .", "local:good")["is_next"] <= 1


def test_unreadable_checkpoints_folder_lists_nothing_instead_of_failing(broken_env: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from model_utils import registry

    def refuse(self):
        raise PermissionError(13, "Permission denied", str(self))

    assert "local:good" in registry.choices("fill-mask")
    monkeypatch.setattr(Path, "iterdir", refuse)
    assert not [c for c in registry.choices("fill-mask") if c.startswith("local:")]


UNREACHABLE_HUB_SCRIPT = textwrap.dedent("""
    import json, socket, sys, threading, time
    hole = socket.socket(); hole.bind(("127.0.0.1", 0)); hole.listen(64)   # accepts, never answers
    kept = []
    threading.Thread(target=lambda: [kept.append(hole.accept()) for _ in iter(int, 1)], daemon=True).start()
    import os
    os.environ["HF_ENDPOINT"] = "http://127.0.0.1:%d" % hole.getsockname()[1]
    sys.path.insert(0, os.getcwd())
    from model_utils.config import TASKS, get_settings, hub_offline
    from model_utils.manager import get_manager
    from model_utils import finetune
    out = {}
    start = time.monotonic(); out["offline"] = hub_offline(); out["check_s"] = time.monotonic() - start
    out["defaults"] = {t: get_settings().default_checkpoint(t, hub_offline()) for t in TASKS}
    def attempt(key, call):
        start = time.monotonic()
        try:
            call(); out[key] = "loaded"
        except ValueError as err:
            out[key] = str(err)
        out[key + "_s"] = time.monotonic() - start
    attempt("hub", lambda: get_manager().get("bert-base-uncased", "masked-lm"))
    attempt("finetune_hub", lambda: finetune.load_model(finetune.ModelArguments(base_model="org/some-model"), ["a", "b"]))
    attempt("local", lambda: get_manager().get("local:tiny", "masked-lm"))
    print("RESULT " + json.dumps(out))
""")


@pytest.mark.slow
def test_unreachable_hub_fails_fast_and_defaults_fall_back(tmp_path: Path) -> None:
    """Without HF_HUB_OFFLINE, a Hub that accepts connections but never answers: no hang, clear errors."""
    build_tiny_model(tmp_path / "tiny")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "PLM_OFFLINE")}
    env.update(PLM_HUB_TIMEOUT="0.5", PLM_CHECKPOINTS_DIR=str(tmp_path), PLM_DEVICE="cpu",
               HF_HOME=str(tmp_path / "hf-home"))  # an empty Hub cache: nothing can come from it
    for task in ("FILL_MASK", "NEXT_SENTENCE", "TEXT_CLASSIFICATION", "ATTENTION", "FINE_TUNE_BASE", "PRETRAIN_BASE",
                 "TEXT_GENERATION"):
        env.pop(f"PLM_DEFAULT_{task}", None)
    done = subprocess.run([sys.executable, "-c", UNREACHABLE_HUB_SCRIPT], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, done.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["offline"] and out["check_s"] < 5
    assert set(out["defaults"].values()) <= {"bundled:minilm-pretrained", "bundled:minilm-sentiment",
                                             "bundled:minilm-causal"}
    assert "Hub is unreachable" in out["hub"] and out["hub_s"] < 10  # was minutes of retries
    assert "unreachable" in out["finetune_hub"] and out["finetune_hub_s"] < 10
    assert out["local"] == "loaded"


# ---- 2. a crashing training job leaves the app answering ----

@pytest.mark.parametrize("crash", [RuntimeError("boom at step 3"), SystemExit(3)])
def test_crashing_job_leaves_tasks_answering_and_frees_the_slot(crash: BaseException, tiny_env: Path) -> None:
    import model_utils
    from model_utils.jobs import DONE, FAILED, JobRunner

    runner, started, release = JobRunner(), threading.Event(), threading.Event()

    def crashing(job):
        job.emit({"kind": "progress", "step": 3, "total": 10})
        started.set()
        release.wait(30)
        raise crash

    job = runner.submit("fine-tune", "a run that crashes", crashing)
    assert started.wait(30)
    assert runner.running() is job  # the tasks below run while the job holds the training slot
    masked = model_utils.fill_mask(TEXT, "local:tiny-bert")
    assert masked[0][0]["token_str"]
    assert 0 <= model_utils.next_sentence("the cat sat .", "it ate .", "local:tiny-bert")["is_next"] <= 1
    assert {r["label"] for r in model_utils.classify("a good film", "local:tiny-classifier")} == {"negative", "positive"}
    release.set()
    assert job.wait(30) and job.state == FAILED
    assert job.error and "error id" in job.error and type(crash).__name__ not in job.error
    assert runner.running() is None
    assert model_utils.fill_mask(TEXT, "local:tiny-bert") == masked
    after = runner.submit("fine-tune", "the next run", lambda job: "trained")
    assert after.wait(30) and after.state == DONE and after.result == "trained"


# ---- 3. the checkpoints folder: missing, unwritable, a file ----

def unusable_folder(tmp_path: Path) -> Path:
    """A checkpoints folder nobody can write: read-only, or (as root, who writes anywhere) under a file."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    (tmp_path / "a-file").write_text("not a folder")
    return tmp_path / "a-file" / "checkpoints"


def test_storage_problem_says_why_and_saving_is_refused(tmp_path: Path) -> None:
    from model_utils.checkpoints import atomic_checkpoint, ensure_new, storage_problem

    missing = tmp_path / "not-yet" / "checkpoints"
    assert storage_problem(missing) is None  # created on the first save
    with atomic_checkpoint("first", missing) as tmp:
        (tmp / "config.json").write_text("{}")
    assert (missing / "first" / "config.json").is_file()

    a_file = tmp_path / "plain-file"
    a_file.write_text("x")
    assert "is a file" in storage_problem(a_file)
    unusable = unusable_folder(tmp_path)
    assert "cannot be saved" in storage_problem(unusable)
    for root in (a_file, unusable):
        with pytest.raises(ValueError, match="cannot be saved.*PLM_CHECKPOINTS_DIR"):
            ensure_new("model", root)
        with pytest.raises(ValueError, match="cannot be saved"):
            with atomic_checkpoint("model", root):
                pass
    assert a_file.read_text() == "x"


@pytest.mark.slow
@pytest.mark.parametrize("case", ["missing", "a-file"])
def test_app_builds_and_says_so(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import app
    from demo import models_panel

    path = tmp_path / "checkpoints"
    if case == "a-file":
        path.write_text("not a folder")
    monkeypatch.setenv("PLM_CHECKPOINTS_DIR", str(path))
    demo = app.build_demo()
    banner = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "checkpoints-banner")
    status = models_panel.status_markdown()
    if case == "missing":
        assert not banner.visible and "does not exist yet" in status
    else:
        assert banner.visible and "⚠️" in status and "is a file" in status


# ---- through the running app's API (the shared tiny-model server) ----

API_BROKEN = ("truncated-weights", "config-not-json", "pickle-only", "unknown-architecture", "no-tokenizer")


@pytest.fixture(scope="module")
def client(app_server: str):
    gradio_client = pytest.importorskip("gradio_client")
    return gradio_client.Client(app_server, verbose=False)


def answers(client) -> tuple:
    """Fill-Mask, Next Sentence and Classify answers of the running app (tiny models)."""
    filled = client.predict(TEXT, ["local:tiny-bert"], 3, "", api_name="/fill_mask")["results"][0]["predictions"]
    pair = client.predict("the cat sat .", "it ate dinner .", "local:tiny-bert", api_name="/next_sentence")
    label = client.predict("local:tiny-classifier", "a good film", "", api_name="/classify")[0]
    assert filled[0][0]["token_str"] and 0 <= pair["is_next"] <= 1
    assert {c["label"] for c in label["confidences"]} == {"negative", "positive"}
    return filled, pair["is_next"], label["label"]


@pytest.mark.slow
def test_api_broken_checkpoints_fail_clearly_and_are_not_cached(client, tiny_checkpoints_dir: Path,
                                                                 template: Path) -> None:
    from gradio_client.exceptions import AppError

    folders = [make_broken(tiny_checkpoints_dir, template, kind, f"fi-{kind}") for kind in API_BROKEN]
    try:
        for kind in API_BROKEN:
            with pytest.raises(AppError, match=DAMAGE[kind][1]) as caught:
                client.predict(TEXT, [f"local:fi-{kind}"], 3, "", api_name="/fill_mask")
            assert f"local:fi-{kind}" in str(caught.value) and "Traceback" not in str(caught.value)
        with pytest.raises(AppError, match="weights file is damaged"):
            client.predict("the cat sat .", "it ate .", "local:fi-truncated-weights", api_name="/next_sentence")
        with pytest.raises(AppError, match="weights file is damaged"):
            client.predict("local:fi-truncated-weights", "a good film", "", api_name="/classify")
        before = answers(client)
        _, table, _ = client.predict(api_name="/models_status")
        assert not [row for row in table["data"] if row[0].startswith("local:fi-")]

        repair(folders[0], tiny_checkpoints_dir / "tiny-bert")  # the same weights as local:tiny-bert
        repaired = client.predict(TEXT, ["local:fi-truncated-weights"], 3, "", api_name="/fill_mask")
        assert repaired["results"][0]["predictions"] == before[0]
    finally:
        client.predict("local:fi-truncated-weights", ADMIN_TOKEN, api_name="/unload_models")
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


def write_crash_data(path: Path) -> Path:
    """Training rows the short-vocabulary model can embed, validation rows it cannot (an IndexError mid-run)."""
    vocab = tiny_tokenizer().get_vocab()
    low = [w for w in TINY_WORDS if vocab[w] < 40]
    high = [w for w in TINY_WORDS if vocab[w] >= 40]
    rnd = random.Random(0)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["text", "label", "split"])
        for i in range(64):
            writer.writerow([" ".join(rnd.choice(low) for _ in range(8)), "ab"[i % 2], "train"])
        for i in range(8):
            writer.writerow([" ".join(rnd.choice(high) for _ in range(8)), "ab"[i % 2], "test"])
    return path


def finetune_request(path: Path, base: str, name: str, max_steps: int) -> list:
    from gradio_client import handle_file

    # file, use sample, text, label, base, name, epochs, batch, lr, warmup, decay, max length, max steps, seed,
    # LoRA rank, compare from scratch
    return [handle_file(str(path)), False, "text", "label", base, name, 1, 8, 1e-3, 0, 0, 16, max_steps, 42, 0, False]


@pytest.mark.slow
def test_api_crashing_finetune_leaves_the_other_tabs_answering(client, tiny_checkpoints_dir: Path,
                                                               tmp_path: Path) -> None:
    """The base's embeddings are shorter than its tokenizer: training runs, the first evaluation crashes."""
    from gradio_client.exceptions import AppError

    build_short_vocab_model(tiny_checkpoints_dir / "fi-short-vocab")
    data = write_crash_data(tmp_path / "crash.csv")
    created = [tiny_checkpoints_dir / n for n in ("fi-short-vocab", "fi-crashed", "fi-after-crash")]
    try:
        job = client.submit(*finetune_request(data, "local:fi-short-vocab", "fi-crashed", 400), api_name="/finetune")
        deadline = time.monotonic() + 300
        while not any("Step " in str(o[0]) for o in job.outputs()) and not job.done():
            assert time.monotonic() < deadline, "the fine-tune never started training"
            time.sleep(0.2)
        during = answers(client)  # while the job trains (it fails at its first evaluation, step 40)
        with pytest.raises(AppError, match=r"Fine-tuning failed: Something went wrong on the server \(error id") as caught:
            job.result(timeout=600)
        assert len(str(caught.value)) < 600 and "Traceback" not in str(caught.value)
        assert "IndexError" not in str(caught.value)  # the class and the traceback are in the server log only
        assert answers(client) == during
        assert not (tiny_checkpoints_dir / "fi-crashed").exists()

        status = client.predict(*finetune_request(data, "local:tiny-bert", "fi-after-crash", 2),
                                api_name="/finetune")[0]
        assert "Done" in status  # the training slot was released
        assert (tiny_checkpoints_dir / "fi-after-crash" / WEIGHTS).is_file()
    finally:
        for folder in created:
            shutil.rmtree(folder, ignore_errors=True)


# ---- a server whose checkpoints folder is unusable, with the Hub unreachable (no HF_HUB_OFFLINE) ----

def turn_into_file(path: Path) -> None:
    """Make the configured checkpoints path itself a regular file (its parent becomes a writable folder)."""
    parent = path.parent
    if parent.is_file():
        parent.unlink()
        parent.mkdir()
    if path.is_dir():
        path.chmod(0o755)
        path.rmdir()
    path.write_text("not a folder")


@pytest.fixture(scope="module")
def unsaveable_app(tmp_path_factory: pytest.TempPathFactory):
    require_bundled()
    base = tmp_path_factory.mktemp("unsaveable")
    folder = unusable_folder(base)
    hub = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with running_app(base / "app.log", PLM_CHECKPOINTS_DIR=str(folder), HF_HUB_OFFLINE="0",
                     TRANSFORMERS_OFFLINE="0", HF_ENDPOINT=hub, PLM_HUB_TIMEOUT="0.5") as (url, _):
        yield url, folder, base / "app.log"
    if folder.is_dir():
        folder.chmod(0o755)


def component_props(url: str) -> dict[str, dict]:
    """The app's components' properties by elem_id, as the browser receives them."""
    with urllib.request.urlopen(url + "config", timeout=30) as response:
        config = json.load(response)
    return {c["props"]["elem_id"]: c["props"] for c in config["components"] if c.get("props", {}).get("elem_id")}


@pytest.mark.slow
def test_app_starts_without_a_usable_checkpoints_folder_and_says_so(unsaveable_app) -> None:
    from gradio_client import Client
    from gradio_client.exceptions import AppError
    from test_pretrain_session import PROBE, TEXT as CORPUS

    url, folder, log = unsaveable_app
    client = Client(url, verbose=False)
    output = client.predict("paris is the [MASK] of france .", [], 3, "", api_name="/fill_mask")
    assert output["results"][0]["model"] == "bundled:minilm-pretrained"  # the Hub default fell back
    assert output["results"][0]["predictions"][0][0]["token_str"]
    start = time.monotonic()
    with pytest.raises(AppError, match="Hub is unreachable"):
        client.predict(TEXT, ["bert-base-uncased"], 3, "", api_name="/fill_mask")
    assert time.monotonic() - start < 15

    props = component_props(url)
    assert props["checkpoints-banner"]["visible"] and props["offline-banner"]["visible"]
    assert "cannot be saved" in log.read_text()
    status = client.predict(api_name="/models_status")[0]
    assert "⚠️" in status and "cannot be saved" in status and "PLM_CHECKPOINTS_DIR" in status

    finetune = [None, True, "text", "label", "bundled:minilm-pretrained", "wont-save", 1, 8, 5e-5, 0, 0, 32, 2,
                42, 0, False]
    pretrain = [CORPUS, [], False, "bundled:minilm-pretrained", "wont-save", PROBE, 2, 2, 4, 1e-3, 32, 0.15, True, 1]
    for args, api in ((finetune, "/finetune"), (pretrain, "/pretrain")):
        start = time.monotonic()
        with pytest.raises(AppError, match="cannot be saved"):
            client.predict(*args, api_name=api)
        assert time.monotonic() - start < 30  # refused before any training

    turn_into_file(folder)  # (c) the path is a file: the running app notices
    status = client.predict(api_name="/models_status")[0]
    assert "is a file" in status
    with pytest.raises(AppError, match="is a file"):
        client.predict(*finetune, api_name="/finetune")
    folder.unlink()  # (a) missing but creatable: fine
    assert "does not exist yet" in client.predict(api_name="/models_status")[0]
    assert client.predict(TEXT, [], 1, "", api_name="/fill_mask")["results"][0]["predictions"]
