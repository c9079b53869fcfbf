"""Background training jobs: one at a time across the app, stoppable, with streamed progress events.

A job is any function ``work(job) -> result`` that reports through ``job.emit(event_dict)`` and polls
``job.should_stop()`` (``model_utils.finetune.run(..., on_event=job.emit, should_stop=job.should_stop)``,
``model_utils.pretrain.train(args, on_event=job.emit, should_stop=job.should_stop)``). :meth:`JobRunner.submit`
starts it in its own thread, which first waits for the single training slot, so request threads of
other tabs are never blocked and a second job waits visibly (state ``"waiting"``). Exceptions are
captured in ``job.error`` (the message of a ValueError as is, others with their type) and the app
keeps serving. A running job is stopped, like :meth:`Job.stop`, once it exceeds its time limit
(``PLM_JOB_TIME_LIMIT_MIN``); ``job.stop_reason`` then says so. :meth:`Job.updates` lets a UI generator follow a job until it ends.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from model_utils.config import get_settings
from model_utils.errors import public_error

logger = logging.getLogger("plm_playground.jobs")

WAITING, RUNNING, DONE, STOPPED, FAILED = "waiting", "running", "done", "stopped", "failed"
FINISHED = (DONE, STOPPED, FAILED)
KEEP_FINISHED = 20  # finished jobs remembered (their results are plain data)
_ids = itertools.count(1)


@dataclass
class Job:
    """One background job; read its fields freely, change it only through its methods."""

    kind: str  # e.g. "fine-tune", "pretrain"
    description: str  # one line shown to users waiting for it
    owner: str = ""  # who started it (e.g. a browser session), so that only they stop it
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
    stop_reason: str | None = None  # why it was stopped, when not by a user
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
            self.stop_reason = f"the time limit of {self.time_limit / 60:g} min was reached"
            logger.warning("job %s (%s): %s", self.id, self.kind, self.stop_reason)
            self._stop.set()
        return self._stop.is_set()

    def stop(self) -> None:
        """Ask the job to end as soon as possible (a waiting job never starts)."""
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
        """Yield the job whenever it changed (at most every ``interval`` seconds) and once more at its end."""
        seen = (-1, None)
        while True:
            with self._changed:
                if (len(self.events), self.state) == seen and not self.done:
                    self._changed.wait(interval)
                now = (len(self.events), self.state)
            if now != seen or self.done:
                seen = now
                yield self
            if self.done:
                return
            time.sleep(min(interval, 0.25))  # coalesce bursts of per-step events


class JobRunner:
    """Runs jobs in background threads, one at a time, first come first served."""

    def __init__(self) -> None:
        self._slot = threading.Lock()  # held by the running job
        self._lock = threading.Lock()  # guards _jobs
        self._jobs: dict[str, Job] = {}

    def submit(self, kind: str, description: str, work: Callable[[Job], Any], owner: str = "",
               time_limit: float | None = None) -> Job:
        """Start ``work(job)`` in a new thread once the training slot is free; returns the job at once.

        ``work`` should return plain data (it is kept with the job), not models. ``time_limit``:
        seconds of running time (waiting excluded) before the job is stopped; None = the settings'.
        """
        if time_limit is None:
            time_limit = get_settings().job_time_limit_s
        job = Job(kind=kind, description=description, owner=owner, time_limit=time_limit)
        with self._lock:
            finished = [j.id for j in self._jobs.values() if j.done]
            for old in finished[: max(0, len(finished) - KEEP_FINISHED)]:
                del self._jobs[old]
            self._jobs[job.id] = job
        threading.Thread(target=self._run, args=(job, work), name=job.id, daemon=True).start()
        return job

    def _run(self, job: Job, work: Callable[[Job], Any]) -> None:
        while not self._slot.acquire(timeout=0.5):
            if job.should_stop():
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
            self._slot.release()

    def get(self, job_id: str | None) -> Job | None:
        """The job with this id, or None."""
        with self._lock:
            return self._jobs.get(job_id or "")

    def running(self) -> Job | None:
        """The job holding the training slot now, or None."""
        with self._lock:
            return next((j for j in self._jobs.values() if j.state == RUNNING), None)

    def unfinished(self, owner: str | None = None) -> list[Job]:
        """Jobs waiting or running (only ``owner``'s when given), oldest first."""
        with self._lock:
            return [j for j in self._jobs.values() if not j.done and (owner is None or j.owner == owner)]

    def stop(self, job_id: str | None) -> bool:
        """Ask job ``job_id`` to stop; False if there is no such unfinished job."""
        job = self.get(job_id)
        if job is None or job.done:
            return False
        job.stop()
        return True


_runner = JobRunner()


def get_runner() -> JobRunner:
    """The process-wide job runner (one training job at a time across the app)."""
    return _runner
