"""Background job runner: one job at a time, visible waiting, stop, captured failures, event streaming."""

from __future__ import annotations

import threading
import time

import pytest

from model_utils.jobs import DONE, FAILED, RUNNING, STOPPED, WAITING, JobRunner


def _until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_one_job_at_a_time_and_the_second_waits_visibly():
    runner = JobRunner()
    release = threading.Event()
    first = runner.submit("fine-tune", "first", lambda job: release.wait(10) and "one")
    assert _until(lambda: first.state == RUNNING)
    second = runner.submit("pretrain", "second", lambda job: "two")
    time.sleep(0.3)
    assert second.state == WAITING and runner.running() is first
    release.set()
    assert second.wait(10) and first.wait(10)
    assert (first.state, first.result, second.state, second.result) == (DONE, "one", DONE, "two")
    assert first.finished <= second.started


def test_stop_ends_a_polling_job_and_a_waiting_job_never_starts():
    runner = JobRunner()
    steps = []

    def work(job):
        while not job.should_stop():
            steps.append(1)
            job.emit({"kind": "progress", "step": len(steps)})
            time.sleep(0.01)
        return len(steps)

    job = runner.submit("fine-tune", "loop", work, owner="alice")
    waiting = runner.submit("fine-tune", "later", lambda job: steps.append("ran"), owner="bob")
    assert _until(lambda: len(job.events) >= 3)
    assert [j.id for j in runner.unfinished("bob")] == [waiting.id]
    assert runner.stop(waiting.id) and waiting.wait(5) and waiting.state == STOPPED
    started = time.monotonic()
    assert runner.stop(job.id) and job.wait(5)
    assert time.monotonic() - started < 2 and job.state == STOPPED and job.result == len(job.events)
    assert "ran" not in steps and not runner.stop(job.id)


def test_failures_are_captured_and_the_runner_keeps_working(caplog):
    runner = JobRunner()
    bad = runner.submit("fine-tune", "bad input", lambda job: (_ for _ in ()).throw(ValueError("Need two classes")))
    crash = runner.submit("fine-tune", "crash", lambda job: 1 / 0)
    assert bad.wait(5) and crash.wait(5)
    assert (bad.state, bad.error) == (FAILED, "Need two classes")
    # an unexpected crash is told without its class or traceback, under an id the log has
    assert crash.state == FAILED and "error id" in crash.error and "ZeroDivision" not in crash.error
    error_id = crash.error.split("error id ")[1][:8]
    logged = [r for r in caplog.records if error_id in r.getMessage()]
    assert logged and logged[0].exc_info[0] is ZeroDivisionError
    ok = runner.submit("fine-tune", "fine", lambda job: 42)
    assert ok.wait(5) and ok.result == 42


def test_updates_follow_events_until_the_end():
    runner = JobRunner()
    go = threading.Event()

    def work(job):
        go.wait(5)
        for step in range(3):
            job.emit({"kind": "progress", "step": step})
            time.sleep(0.05)
        return "done"

    job = runner.submit("fine-tune", "stream", work)
    seen = []
    for current in job.updates(interval=0.05):
        seen.append((current.state, len(current.events)))
        go.set()
    assert seen[-1] == (DONE, 3) and len(seen) >= 2
    assert [e["step"] for e in job.events] == [0, 1, 2]


def test_a_job_past_its_time_limit_is_stopped_and_says_why():
    runner = JobRunner()

    def work(job):
        while not job.should_stop():
            time.sleep(0.01)
        return "ended"

    job = runner.submit("pretrain", "endless", work, time_limit=0.3)
    assert job.wait(10) and job.state == STOPPED and job.result == "ended"
    assert job.finished - job.started < 3 and job.stop_reason.code == "jobs.time_limit"
    assert "time limit of 0.005 min" in str(job.stop_reason)
    unlimited = runner.submit("pretrain", "quick", lambda job: job.should_stop(), time_limit=0)
    assert unlimited.wait(5) and unlimited.state == DONE and unlimited.result is False


def test_the_time_limit_comes_from_the_settings(monkeypatch):
    monkeypatch.setenv("PLM_JOB_TIME_LIMIT_MIN", "2")
    job = JobRunner().submit("fine-tune", "quick", lambda job: None)
    assert job.wait(5) and job.time_limit == 120


def test_jobs_run_in_line_and_know_their_place_and_wait(monkeypatch):
    runner, gate, order = JobRunner(), threading.Event(), []

    def work(name, seconds):
        def run(job):
            job.emit({"kind": "progress", "step": 1, "total": 2})
            gate.wait(10)
            order.append(name)
        return run

    first = runner.submit("fine-tune", "first", work("first", 0), owner="a", estimate_s=60)
    while runner.running() is not first:
        time.sleep(0.01)
    second = runner.submit("pretrain", "second", work("second", 0), owner="b", estimate_s=30)
    third = runner.submit("fine-tune", "third", work("third", 0), owner="c", estimate_s=10)
    assert (runner.position(first), runner.position(second), runner.position(third)) == (None, 1, 2)
    assert runner.wait_estimate(second) == pytest.approx(60, abs=2)  # what is left of the running one
    assert runner.wait_estimate(third) == pytest.approx(90, abs=2)  # ... plus the one ahead of it
    assert [j.description for j in runner.unfinished()] == ["first", "second", "third"]
    gate.set()
    assert all(j.wait(10) for j in (first, second, third)) and order == ["first", "second", "third"]


def test_one_unfinished_job_per_session_and_leaving_stops_it():
    from model_utils.errors import UserError

    runner, gate = JobRunner(), threading.Event()
    running = runner.submit("fine-tune", "mine", lambda job: gate.wait(10) or job.should_stop(), owner="s1")
    waiting = runner.submit("pretrain", "other's", lambda job: "ran", owner="s2")
    with pytest.raises(UserError) as caught:
        runner.submit("pretrain", "a second one", lambda job: None, owner="s1")
    assert caught.value.code == "jobs.one_per_session" and "mine" in str(caught.value)
    assert runner.stop_owner("s2") == 1 and waiting.wait(5) and waiting.state == STOPPED  # never started
    assert runner.stop_owner("s1") == 1 and running.wait(15)
    assert running.state == STOPPED and runner.stop_owner("s1") == 0
    again = runner.submit("pretrain", "after", lambda job: "ok", owner="s1")  # the session may start anew
    assert again.wait(5) and again.result == "ok"
