"""Issue 15, fast tier: runs sized before they start (estimate, presets, rows drawn), names that never collide,
jobs that end with their session, the Models tab's job list with its owner hidden."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_finetune import sentiment_rows

from model_utils import duration, finetune
from model_utils.checkpoints import free_name, release_name, reserve_name
from model_utils.errors import UserError
from model_utils.jobs import RUNNING, STOPPED, WAITING, JobRunner


# ---------------------------------------------------------------- the estimate

def test_workload_flops_follow_the_training_arithmetic():
    """6 FLOPs per weight and trained token (forward 2, backward 4), 2 per evaluated token."""
    full = duration.Workload("fine-tune", weights=1_000_000, steps=10, train_tokens=1000, eval_tokens=500)
    assert full.gflop == pytest.approx(1e6 * (6 * 1000 + 2 * 500) / 1e9)
    lora = duration.Workload("fine-tune", 1_000_000, 10, 1000, 0, train_weights_share=0.0)
    assert lora.gflop == pytest.approx(1e6 * 4 * 1000 / 1e9)  # no weight gradients: a cheaper backward


def test_padded_tokens_pad_each_batch_to_its_longest_row_rounded_up():
    assert duration.padded_tokens([3, 5], batch_size=2, multiple=16) == 2 * 16
    assert duration.padded_tokens([3, 17, 40, 1], batch_size=4, multiple=16) == 4 * 48
    assert duration.padded_tokens([10] * 5, batch_size=2, multiple=1) == 50


def test_encoder_weights_of_bert_base():
    assert duration.encoder_weights(duration.BERT_BASE) == 12 * (4 * 768 ** 2 + 2 * 768 * 3072)  # ~85M


def test_approx_tokens_counts_words_punctuation_and_each_cjk_character():
    assert duration.approx_tokens("The cat sat.") == 4
    assert duration.approx_tokens("我很累") == 3
    assert duration.approx_tokens("") == 0


def test_calibration_scales_with_threads_and_learns_from_finished_runs():
    calibration = duration.Calibration()
    work = duration.Workload("fine-tune", 10_000_000, 100, 200_000, 0)  # 12,000 GFLOP
    pace, fixed = duration.DEFAULTS[("fine-tune", "cpu")]
    one, two = calibration.estimate(work, "cpu", 1), calibration.estimate(work, "cpu", 2)
    assert one.seconds == pytest.approx(fixed + work.gflop * pace)
    assert two.seconds - fixed == pytest.approx((one.seconds - fixed) / 2) and not one.measured
    slower = fixed + 2 * (two.seconds - fixed)  # the machine turned out twice as slow
    calibration.observe(work, "cpu", 2, slower)
    after = calibration.estimate(work, "cpu", 2)
    assert after.measured and two.seconds < after.seconds < slower  # moved most of the way, not all
    calibration.observe(work, "cpu", 2, 1e9)  # a stall moves it by a bounded factor only
    assert calibration.estimate(work, "cpu", 2).seconds < fixed + duration.MAX_CORRECTION * (after.seconds - fixed) + 1


# ---------------------------------------------------------------- presets and rows drawn

def test_draw_rows_keeps_label_shares_and_is_reproducible():
    rows = [{"text": str(i), "label": "a" if i % 4 else "b"} for i in range(400)]  # 3:1
    drawn = finetune.draw_rows(rows, 100, "label")
    assert len(drawn) == 100 and Counter(r["label"] for r in drawn) == {"a": 75, "b": 25}
    assert drawn == finetune.draw_rows(rows, 100, "label") and len({r["text"] for r in drawn}) == 100
    assert finetune.draw_rows(rows, 0, "label") == rows and finetune.draw_rows(rows, 999, "label") == rows


def test_quick_preset_on_the_sample_is_a_few_hundred_rows_and_minutes(monkeypatch):
    from demo import finetune_tab

    monkeypatch.setattr(duration, "where", lambda: ("cpu", 2))  # the 2-vCPU box the presets are sized for
    monkeypatch.setattr(duration, "_contention_now", lambda threads, exclude_running: 1.0)  # and nothing else on it
    quick = finetune_tab.plan_of(finetune_tab.preset_form("quick")).summary()
    full = finetune_tab.plan_of(finetune_tab.preset_form("full")).summary()
    assert 200 <= quick["train_rows"] <= 1000 and quick["available_train_rows"] > 5000
    assert quick["steps"] == 3 * -(-quick["train_rows"] // quick["batch_size"])  # 3 epochs of batches
    assert 30 <= quick["estimate"]["seconds"] <= 180  # a minute or so on free cores, minutes under a class
    assert full["train_rows"] == full["available_train_rows"] and full["estimate"]["seconds"] > 5 * 60


def test_gpu_presets_train_on_more():
    for module in (finetune, __import__("model_utils.pretrain_session", fromlist=["preset"])):
        cpu, gpu = module.preset("quick", "cpu"), module.preset("quick", "cuda")
        assert any(gpu[k] > cpu[k] for k in cpu if isinstance(cpu[k], (int, float)))


# ---------------------------------------------------------------- names

def test_a_taken_name_gets_the_next_free_suffix(tmp_path: Path):
    (tmp_path / "reviews-demo").mkdir()
    (tmp_path / "reviews-demo-2").mkdir()
    assert free_name("reviews-demo", tmp_path) == "reviews-demo-3"
    assert free_name("fresh", tmp_path) == "fresh"
    first, second = reserve_name("reviews-demo", tmp_path), reserve_name("reviews-demo", tmp_path)
    assert (first, second) == ("reviews-demo-3", "reviews-demo-4")  # two runs at once, two names
    release_name(first)
    assert reserve_name("reviews-demo", tmp_path) == "reviews-demo-3"
    for name in ("reviews-demo-3", "reviews-demo-4"):
        release_name(name)
    with pytest.raises(UserError):
        free_name("../escape", tmp_path)


def test_the_plan_suggests_a_free_name_instead_of_refusing(tiny_bert_dir: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PLM_CHECKPOINTS_DIR", str(tiny_bert_dir.parent))
    (tiny_bert_dir.parent / "reviews-demo").mkdir()
    training = {"num_train_epochs": 1, "per_device_train_batch_size": 8}
    checked = finetune.plan(sentiment_rows(40), {}, {"base_model": "local:tiny-bert",
                                                     "checkpoint_name": "reviews-demo"}, training, reserve=True)
    try:
        assert checked.model.checkpoint_name == "reviews-demo-2" and checked.requested_name == "reviews-demo"
        other = finetune.plan(sentiment_rows(40), {}, {"base_model": "local:tiny-bert",
                                                       "checkpoint_name": "reviews-demo"}, training)
        assert other.model.checkpoint_name == "reviews-demo-3"  # -2 is promised to the first run
    finally:
        checked.release()


def test_the_chinese_ui_says_the_suggestion_in_chinese():
    from demo import finetune_tab
    from demo.messages import say

    summary = {"estimate": {"seconds": 130, "device": "cpu", "threads": 2, "measured": False}, "max_steps": -1,
               "train_rows": 800, "available_train_rows": 8980, "validation_rows": 200,
               "available_validation_rows": 1092, "epochs": 3.0, "steps": 150, "batch_size": 16, "max_length": 128,
               "requested_name": "reviews-demo", "checkpoint": "reviews-demo-2"}
    chinese = say("finetune.name_taken", "zh-CN", requested="reviews-demo", name="reviews-demo-2")
    assert "reviews-demo-2" in chinese and "已经存在" in chinese
    line = finetune_tab.plan_markdown(summary)
    assert "150 steps" in line and "2 min 10 s" in line and "reviews-demo-2" in line


# ---------------------------------------------------------------- jobs that belong to someone

def test_the_end_callback_runs_for_finished_and_for_dropped_jobs():
    runner, ended, gate = JobRunner(), [], threading.Event()
    first = runner.submit("fine-tune", "a", lambda job: gate.wait(10), owner="s1", on_end=ended.append)
    second = runner.submit("fine-tune", "b", lambda job: "never", owner="s2", on_end=ended.append)
    assert runner.stop_owner("s2") == 1 and second.wait(5) and second.state == STOPPED
    gate.set()
    assert first.wait(5) and sorted(job.id for job in ended) == sorted([first.id, second.id])


def test_closing_a_session_lets_the_next_sessions_job_start_within_seconds(monkeypatch):
    from demo import job_panel
    from model_utils import jobs

    runner = JobRunner()
    monkeypatch.setattr(jobs, "_runner", runner)
    orphan = runner.submit("fine-tune", "left behind", lambda job: [time.sleep(0.05) for _ in iter(
        lambda: job.should_stop(), True)], owner="closed-tab")
    assert _until(lambda: orphan.state == RUNNING)
    nxt = runner.submit("fine-tune", "next", lambda job: "ran", owner="next-tab")
    assert nxt.state == WAITING and runner.position(nxt) == 1
    started = time.monotonic()
    job_panel.leave(SimpleNamespace(session_hash="closed-tab"))  # what Gradio's unload event calls
    assert nxt.wait(5) and nxt.result == "ran" and time.monotonic() - started < 5
    assert orphan.state == STOPPED and orphan.stop_reason.code == "jobs.session_ended"


def test_models_tab_lists_jobs_with_owners_hidden_and_stops_only_with_the_right(monkeypatch):
    from demo import models_panel
    from model_utils import jobs
    runner, gate = JobRunner(), threading.Event()
    monkeypatch.setattr(jobs, "_runner", runner)
    monkeypatch.setattr(models_panel, "get_runner", lambda: runner)
    monkeypatch.setattr(models_panel.gr, "Info", lambda *a, **k: None)
    running = runner.submit("fine-tune", "base → local:a", lambda job: any(
        gate.wait(0.05) or job.should_stop() for _ in iter(job.should_stop, True)), owner="secret-session-1")
    waiting = runner.submit("pretrain", "base → local:b", lambda job: "ok", owner="secret-session-2")
    assert _until(lambda: running.state == RUNNING)
    rows, _ = models_panel.jobs_table(SimpleNamespace(session_hash="secret-session-2"))
    cells = rows["data"] if isinstance(rows, dict) else rows.value["data"]
    assert [row[0] for row in cells] == [running.id, waiting.id]
    assert "secret" not in repr(cells) and cells[1][3] == "you" and "number 1" in cells[1][4]
    with pytest.raises(UserError, match="only an admin"):
        models_panel.stop_job(running.id, "", SimpleNamespace(session_hash="secret-session-2"))
    monkeypatch.setenv("PLM_ADMIN_TOKEN", "sesame")
    models_panel.stop_job(running.id, "sesame", SimpleNamespace(session_hash="someone"))
    assert running.wait(5) and running.stop_reason.code == "jobs.stopped_by_admin"
    gate.set()
    assert waiting.wait(5) and waiting.result == "ok"


def _until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_a_busy_cpu_stretches_the_estimate_by_its_demand_over_its_cores():
    assert duration.contention(2, load=0.0, cores=2) == 1.0  # free cores
    assert duration.contention(2, load=6.0, cores=2) == pytest.approx(4.0)  # 6 others + 2 of ours on 2 cores
    assert duration.contention(2, running_here=2, load=2.5, cores=2) == pytest.approx(1.25)  # our job will be gone
    calibration = duration.Calibration()
    work = duration.Workload("pretrain", 10_000_000, 40, 100_000, 0)
    free, busy = calibration.estimate(work, "cpu", 2), calibration.estimate(work, "cpu", 2, contention=3.0)
    fixed = duration.DEFAULTS[("pretrain", "cpu")][1]
    assert busy.seconds - fixed == pytest.approx(3 * (free.seconds - fixed)) and busy.contention == 3.0
    calibration.observe(work, "cpu", 2, busy.seconds, contention=3.0)  # as expected for that load: unchanged
    assert calibration.estimate(work, "cpu", 2).seconds == pytest.approx(free.seconds)
