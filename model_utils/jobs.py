"""Background training jobs: one at a time across the app, first come first served, each belonging to someone.

A job is any function ``work(job) -> result`` that reports through ``job.emit(event_dict)`` and polls
``job.should_stop()`` (``model_utils.finetune.run(..., on_event=job.emit, should_stop=job.should_stop)``,
``model_utils.pretrain_session.run_pretraining(...)``). :meth:`JobRunner.submit` queues it and starts it
in its own thread once every job before it has ended, so request threads of other tabs are never
blocked and the jobs behind it wait visibly, each knowing its place and about how long it will wait.

Events a job may emit: ``{"kind": "phase", "phase": "loading" | "tokenizing" | "training" | "evaluating" |
"saving"}`` and ``{"kind": "progress", "step", "total"}`` (the panel shows phases, steps, elapsed and
remaining time from them), plus whatever the job's own UI draws. Each job has an ``owner`` (a browser
session): one unfinished job per owner, and when the owner leaves (:meth:`JobRunner.stop_owner`) a
waiting job is dropped and a running one stopped, as by Stop. Exceptions are captured in
``job.error`` (a user's mistake in its own words, anything else with an error id) and the app keeps
serving. A running job is stopped once it exceeds its time limit (``PLM_JOB_TIME_LIMIT_MIN``).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from model_utils.config import get_settings
from model_utils.errors import UserError, define, public_error

logger = logging.getLogger("plm_playground.jobs")

WAITING, RUNNING, DONE, STOPPED, FAILED = "waiting", "running", "done", "stopped", "failed"
FINISHED = (DONE, STOPPED, FAILED)
KEEP_FINISHED = 20  # finished jobs remembered (their results are plain data)
_ids = itertools.count(1)

define({
    "jobs.one_per_session": "You already have a {kind} job waiting or running ({description}); stop it first, or "
                            "wait for it to end.",
    "jobs.time_limit": "the time limit of {minutes:g} min was reached",
    "jobs.not_found": "There is no unfinished job {job_id}.",
    "jobs.session_ended": "the browser session that started it ended",
    "jobs.stopped_by_admin": "an admin stopped it",
    "jobs.not_yours": "Job {job_id} was not started in this browser session; only an admin (PLM_ADMIN_TOKEN) can "
                      "stop it.",
})


@dataclass
class Job:
    """One background job; read its fields freely, change it only through its methods."""

    kind: str  # e.g. "fine-tune", "pretrain"
    description: str  # one line shown to users waiting for it
    owner: str = ""  # who started it (a browser session), so that only they (or an admin) stop it
    id: str = field(default_factory=lambda: f"job-{next(_ids)}")
    state: str = WAITING
    events: list[dict] = field(default_factory=list)  # everything emitted so far, in order
    result: Any = None
    error: str | None = None  # what the user is told (no paths, class names or tracebacks)
    error_detail: ValueError | None = field(default=None, repr=False)  # the same, with its code if a UserError
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    time_limit: float = 0.0  # seconds of running time before the job is stopped; 0 = none
    estimate_s: float | None = None  # expected running time, measured or calibrated before it started
    stop_reason: UserError | None = None  # why it was stopped, when not by its owner
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _changed: threading.Condition = field(default_factory=threading.Condition, repr=False)

    def emit(self, event: dict) -> None:
        """Record a progress event (called from the job's thread) and wake followers."""
        with self._changed:
            self.events.append(dict(event, time=time.time()))
            self._changed.notify_all()

    def should_stop(self) -> bool:
        """True once :meth:`stop` was called or the time limit passed; training loops poll it."""
        if (not self._stop.is_set() and self.time_limit and self.started is not None
                and time.time() - self.started > self.time_limit):
            self.stop_reason = UserError("jobs.time_limit", minutes=self.time_limit / 60)
            logger.warning("job %s (%s): %s", self.id, self.kind, self.stop_reason)
            self._stop.set()
        return self._stop.is_set()

    def stop(self, reason: UserError | None = None) -> None:
        """Ask the job to end as soon as possible (a waiting job never starts); ``reason`` when not its owner."""
        if reason is not None and self.stop_reason is None:
            self.stop_reason = reason
        self._stop.set()
        self._set_state(self.state)

    def _set_state(self, state: str, **values: Any) -> None:
        with self._changed:
            self.state = state
            for key, value in values.items():
                setattr(self, key, value)
            self._changed.notify_all()

    @property
    def done(self) -> bool:
        """True when the job finished, was stopped, or failed."""
        return self.state in FINISHED

    @property
    def stopping(self) -> bool:
        """True when a stop was asked and the job has not ended yet."""
        return self._stop.is_set() and not self.done

    def phase(self) -> str | None:
        """The latest phase the job announced ("loading", "training", ...), or None."""
        return next((e["phase"] for e in reversed(self.events) if e.get("kind") == "phase"), None)

    def progress(self) -> tuple[int, int] | None:
        """``(step, total)`` of the latest progress event, or None before the first step."""
        latest = next((e for e in reversed(self.events) if e.get("kind") == "progress"), None)
        return None if latest is None else (int(latest["step"]), int(latest["total"]))

    def elapsed(self) -> float:
        """Seconds it has been running (0 while waiting)."""
        if self.started is None:
            return 0.0
        return (self.finished or time.time()) - self.started

    def remaining(self) -> float | None:
        """About how many seconds it still needs: from its pace once steps are done, else its estimate."""
        if self.done:
            return 0.0
        steps = [e for e in self.events if e.get("kind") == "progress"]
        if len(steps) >= 2 and steps[-1]["total"]:
            first, last = steps[0], steps[-1]
            pace = (last["time"] - first["time"]) / max(1, last["step"] - first["step"])
            return max(0.0, pace * (last["total"] - last["step"]))
        if self.estimate_s is not None:
            return max(0.0, self.estimate_s - self.elapsed())
        return None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has finished (or ``timeout`` seconds); returns :attr:`done`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while not self.done:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._changed.wait(left)
        return self.done

    def updates(self, interval: float = 1.0) -> Iterator["Job"]:
        """Yield the job at least every ``interval`` seconds (so clocks move) and once more at its end."""
        while True:
            with self._changed:
                if not self.done:
                    self._changed.wait(interval)
            yield self
            if self.done:
                return
            time.sleep(min(interval, 0.25))  # coalesce bursts of per-step events


class JobRunner:
    """Runs jobs in background threads, one at a time, in the order they were submitted."""

    def __init__(self) -> None:
        self._lock = threading.Condition()  # guards _jobs, _queue and _running; notified when the slot frees
        self._jobs: dict[str, Job] = {}
        self._queue: deque[Job] = deque()  # waiting jobs, first in line first
        self._running: Job | None = None

    def submit(self, kind: str, description: str, work: Callable[[Job], Any], owner: str = "",
               time_limit: float | None = None, estimate_s: float | None = None,
               on_end: Callable[[Job], None] | None = None) -> Job:
        """Queue ``work(job)``; it starts in its own thread once the jobs before it have ended.

        ``work`` should return plain data (it is kept with the job), not models. ``time_limit``:
        seconds of running time (waiting excluded) before the job is stopped; None = the settings'.
        ``estimate_s``: its expected running time (shown until its own pace is known). ``on_end(job)``
        runs once it has ended in any way, even dropped before it started (e.g. to release what it
        reserved). UserError when ``owner`` already has an unfinished job (one per session).
        """
        if time_limit is None:
            time_limit = get_settings().job_time_limit_s
        job = Job(kind=kind, description=description, owner=owner, time_limit=time_limit, estimate_s=estimate_s)
        with self._lock:
            mine = next((j for j in self._jobs.values() if not j.done and owner and j.owner == owner), None)
            if mine is not None:
                raise UserError("jobs.one_per_session", kind=mine.kind, description=mine.description)
            finished = [j.id for j in self._jobs.values() if j.done]
            for old in finished[: max(0, len(finished) - KEEP_FINISHED)]:
                del self._jobs[old]
            self._jobs[job.id] = job
            self._queue.append(job)
        threading.Thread(target=self._run, args=(job, work, on_end), name=job.id, daemon=True).start()
        return job

    def _take_turn(self, job: Job) -> bool:
        """Wait until ``job`` is first in line and the slot is free; False if it was stopped meanwhile."""
        with self._lock:
            while not (self._queue and self._queue[0] is job and self._running is None):
                if job.should_stop():
                    self._queue.remove(job)
                    self._lock.notify_all()
                    return False
                self._lock.wait(0.5)
            self._queue.popleft()
            self._running = job
            return True

    def _run(self, job: Job, work: Callable[[Job], Any], on_end: Callable[[Job], None] | None = None) -> None:
        try:
            self._work(job, work)
        finally:
            if on_end is not None:
                try:
                    on_end(job)
                except Exception:  # noqa: BLE001 - a cleanup's failure must not stop the runner
                    logger.exception("job %s: its end callback failed", job.id)

    def _work(self, job: Job, work: Callable[[Job], Any]) -> None:
        if not self._take_turn(job):
            job._set_state(STOPPED, finished=time.time())
            return
        try:
            if job.should_stop():
                job._set_state(STOPPED, finished=time.time())
                return
            job._set_state(RUNNING, started=time.time())
            result = work(job)
            job._set_state(STOPPED if job.should_stop() else DONE, result=result, finished=time.time())
        # BaseException: a library's sys.exit (SystemExit) must end the job as failed too, or it would
        # stay 'running' forever and whoever follows it would wait forever (the thread is ours).
        except BaseException as err:  # noqa: BLE001 - a failed job must leave the app healthy
            shown = public_error(err, f"job {job.id} ({job.kind})")  # logged with an id unless the user's fault
            job._set_state(FAILED, error=str(shown), error_detail=shown, finished=time.time())
        finally:
            with self._lock:
                self._running = None
                self._lock.notify_all()

    def get(self, job_id: str | None) -> Job | None:
        """The job with this id, or None."""
        with self._lock:
            return self._jobs.get(job_id or "")

    def running(self) -> Job | None:
        """The job holding the training slot now, or None."""
        with self._lock:
            return self._running

    def position(self, job: Job) -> int | None:
        """1 for the next job to start, 2 for the one after it...; None unless ``job`` is waiting."""
        with self._lock:
            return list(self._queue).index(job) + 1 if job in self._queue else None

    def wait_estimate(self, job: Job) -> float | None:
        """About how many seconds until ``job`` starts (None when a job ahead has no estimate yet)."""
        with self._lock:
            ahead = ([self._running] if self._running else []) + list(itertools.takewhile(
                lambda j: j is not job, self._queue))
        total = 0.0
        for other in ahead:
            left = other.remaining()
            if left is None:
                return None
            total += left
        return total

    def unfinished(self, owner: str | None = None) -> list[Job]:
        """Jobs waiting or running (only ``owner``'s when given), the running one first, then in line."""
        with self._lock:
            jobs = ([self._running] if self._running else []) + list(self._queue)
        return [j for j in jobs if not j.done and (owner is None or j.owner == owner)]

    def stop(self, job_id: str | None, reason: UserError | None = None) -> bool:
        """Ask job ``job_id`` to stop; False if there is no such unfinished job."""
        job = self.get(job_id)
        if job is None or job.done:
            return False
        job.stop(reason)
        return True

    def stop_owner(self, owner: str, reason: UserError | None = None) -> int:
        """Stop every unfinished job of ``owner`` (their session ended); returns how many."""
        jobs = self.unfinished(owner) if owner else []
        for job in jobs:
            job.stop(reason)
        return len(jobs)


_runner = JobRunner()


def get_runner() -> JobRunner:
    """The process-wide job runner (one training job at a time across the app)."""
    return _runner
