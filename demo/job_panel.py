"""The part both training tabs share: a job's status line, its progress bar, following it, and Stop.

A training tab submits its job to :func:`model_utils.jobs.get_runner` and hands it to :func:`follow`,
which yields the tab's outputs every second until the job ends (the status line, with the place in
line and the expected wait, the phase, the step, the time spent and left; a progress bar from the
first second), then the tab's final outputs. :func:`stop` stops the caller's own job of a kind.
Everything is said in the request's language (:data:`MESSAGES`).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import gradio as gr

from demo.common import ui_error
from demo.i18n import add_messages
from demo.messages import say, translate
from model_utils.errors import UserError
from model_utils.jobs import DONE, FAILED, WAITING, Job, get_runner

MESSAGES = {
    "en": {
        "job.waiting": "⏳ Waiting: number {position} in line for the training slot{wait}; it starts when the jobs "
                       "before it end.",
        "job.wait_estimate": " (about {time} to go)",
        "job.phase.queued": "⏳ Queued…",
        "job.phase.loading": "⚙️ Loading the model…",
        "job.phase.tokenizing": "⚙️ Reading and tokenizing the data…",
        "job.phase.training": "🏋️ Training…",
        "job.phase.evaluating": "📏 Evaluating…",
        "job.phase.saving": "💾 Saving the checkpoint…",
        "job.step": "🏋️ Step {step} / {total}",
        "job.clock": " · {elapsed} elapsed",
        "job.clock_left": " · {elapsed} elapsed, about {left} left",
        "job.stopping": "⏹ Stopping… (the run ends after the current step)",
        "job.none": "No {kind} job of yours is waiting or running.",
        "job.failed.fine-tune": "Fine-tuning failed: {error}",
        "job.failed.pretrain": "Pretraining failed: {error}",
        "job.stopped_before": "⏹ Stopped before training started; nothing was saved.",
        "job.kind.fine-tune": "fine-tuning",
        "job.kind.pretrain": "pretraining",
        "job.minutes": "{minutes} min {seconds} s",
        "job.seconds": "{seconds} s",
        "job.device.cpu": "CPU, {threads} threads",
        "job.device.cpu_busy": "CPU, {threads} threads, shared with other work: about {factor:.1f}× slower than free",
        "job.device.cuda": "GPU",
        "job.device.other": "{device}",
    },
    "zh-CN": {
        "job.waiting": "⏳ 等待中：排在第 {position} 位{wait}；前面的任务结束后开始。",
        "job.wait_estimate": "（大约还要 {time}）",
        "job.phase.queued": "⏳ 排队中…",
        "job.phase.loading": "⚙️ 正在加载模型…",
        "job.phase.tokenizing": "⚙️ 正在读取数据并分词…",
        "job.phase.training": "🏋️ 训练中…",
        "job.phase.evaluating": "📏 正在评估…",
        "job.phase.saving": "💾 正在保存检查点…",
        "job.step": "🏋️ 第 {step} / {total} 步",
        "job.clock": " · 已用 {elapsed}",
        "job.clock_left": " · 已用 {elapsed}，大约还要 {left}",
        "job.stopping": "⏹ 正在停止…（当前这一步结束后停止）",
        "job.none": "你没有等待中或运行中的{kind}任务。",
        "job.failed.fine-tune": "微调失败：{error}",
        "job.failed.pretrain": "预训练失败：{error}",
        "job.stopped_before": "⏹ 训练开始前已停止；没有保存任何内容。",
        "job.kind.fine-tune": "微调",
        "job.kind.pretrain": "预训练",
        "job.minutes": "{minutes} 分 {seconds} 秒",
        "job.seconds": "{seconds} 秒",
        "job.device.cpu": "CPU，{threads} 个线程",
        "job.device.cpu_busy": "CPU，{threads} 个线程，与其他任务共用：比空闲时慢约 {factor:.1f} 倍",
        "job.device.cuda": "GPU",
        "job.device.other": "{device}",
        "jobs.session_ended": "启动它的浏览器会话已结束",
        "jobs.stopped_by_admin": "管理员停止了它",
        "jobs.not_yours": "任务 {job_id} 不是在本浏览器会话中启动的；只有管理员（PLM_ADMIN_TOKEN）可以停止它。",
        "jobs.one_per_session": "你已经有一个{kind}任务在等待或运行（{description}）；请先停止它，或等它结束。",
        "jobs.time_limit": "已达到 {minutes:g} 分钟的时间上限",
        "jobs.not_found": "没有未结束的任务 {job_id}。",
        "knob.out_of_range": "{name} 必须在 {low:g} 到 {high:g} 之间（实际是 {value}）。",
        "knob.not_a_number": "{name} 必须是数字（实际是 {value!r}）。",
    },
}
add_messages(MESSAGES)


def owner_of(request: gr.Request | None) -> str:
    """Whose job it is: the browser session of the request."""
    return getattr(request, "session_hash", None) or ""


def duration(seconds: float) -> str:
    """``seconds`` as "2 min 5 s" (or "40 s") in the request's language."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return say("job.seconds", seconds=seconds)
    return say("job.minutes", minutes=seconds // 60, seconds=seconds % 60)


def estimate_words(estimate: dict) -> tuple[str, str]:
    """``(time, device)`` of a plan's estimate (:func:`model_utils.duration.describe`), in the request's language."""
    device = estimate["device"]
    busy = estimate.get("contention", 1.0)
    where = say("job.device.cpu_busy", threads=estimate["threads"], factor=busy) if device == "cpu" and busy >= 1.2 \
        else say("job.device.cpu", threads=estimate["threads"]) if device == "cpu" else \
        say("job.device.cuda") if device == "cuda" else say("job.device.other", device=device)
    return duration(estimate["seconds"]), where


def leave(request: gr.Request | None) -> None:
    """The page's ``unload`` event: the session ended (tab closed, connection lost), so its waiting job is
    dropped and its running one stopped, as by Stop."""
    owner = owner_of(request)
    if owner:
        get_runner().stop_owner(owner, UserError("jobs.session_ended"))


def status_line(job: Job) -> str:
    """One line: the place in line and expected wait, or the phase / step, with the time spent and left."""
    runner = get_runner()
    if job.stopping:
        return say("job.stopping")
    if job.state == WAITING:
        wait = runner.wait_estimate(job)
        return say("job.waiting", position=runner.position(job) or 1,
                   wait=say("job.wait_estimate", time=duration(wait)) if wait is not None else "")
    step = job.progress()
    phase = job.phase()
    if step and phase in (None, "training"):
        line = say("job.step", step=step[0], total=step[1])
    else:
        line = say(f"job.phase.{phase or 'loading'}")
    left = job.remaining()
    clock = say("job.clock_left", elapsed=duration(job.elapsed()), left=duration(left)) if left is not None \
        else say("job.clock", elapsed=duration(job.elapsed()))
    return line + clock


def _report(job: Job, progress: gr.Progress) -> None:
    """The progress bar: steps once training counts them, the elapsed share of the estimate before."""
    step = job.progress()
    if job.state != WAITING and step and step[1]:
        progress((step[0], step[1]), desc=status_line(job), unit="steps")
    elif job.state != WAITING and job.estimate_s:
        progress(min(0.99, job.elapsed() / job.estimate_s), desc=status_line(job))
    else:
        progress(0.0, desc=status_line(job))


def follow(job: Job, progress: gr.Progress, live: Callable[[Job, str], tuple],
           final: Callable[[Job], tuple]) -> Iterator[tuple]:
    """Yield ``live(job, status line)`` every second while ``job`` runs, then ``final(job)``."""
    for current in job.updates(interval=1.0):
        if current.done:
            break
        _report(current, progress)
        yield live(current, status_line(current))
    if job.state == FAILED:
        raise ui_error(say(f"job.failed.{job.kind}", error=translate(job.error_detail or job.error)))
    yield final(job)


def stopped_line(job: Job, stopped_code: str, done: str) -> str:
    """The last status: ``done`` when it finished, else message ``stopped_code`` with the reason (``{reason}``)
    when someone or something else stopped it."""
    if job.state == DONE:
        return done
    reason = f": {translate(job.stop_reason)}" if job.stop_reason is not None else ""
    return say(stopped_code, reason=reason)


def stop(kind: str, request: gr.Request | None) -> str:
    """Stop the caller's own waiting or running job of ``kind``; the status line says what happened."""
    jobs = [j for j in get_runner().unfinished(owner_of(request)) if j.kind == kind]
    for job in jobs:
        job.stop()
    return say("job.stopping") if jobs else say("job.none", kind=say(f"job.kind.{kind}"))


def submitted(submit: Callable[..., Job], *args: Any) -> Job:
    """``submit(*args)``: the job, or a visible error for a refused request (nothing queued)."""
    from demo.common import user_errors

    return user_errors(submit)(*args)
