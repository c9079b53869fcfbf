"""Per-session rate limits: a token bucket per key (a browser session), kept in this process.

Behind a load balancer a browser session stays on one app process (sticky sessions: Gradio's
queue and ``gr.State`` need that anyway), so a per-process bucket is a per-session limit.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from model_utils.errors import UserError, define

define({"classroom.slow_down": "Too many requests from this page; wait {seconds} s and try again."})


class RateLimiter:
    """Allow ``per_minute`` actions per key on average and ``burst`` at once; refuse the rest."""

    def __init__(self, per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 10_000) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when)
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        """Take one token for ``key``; UserError("classroom.slow_down") when none is left."""
        now = self.clock()
        with self._lock:
            tokens, then = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                raise UserError("classroom.slow_down", seconds=max(1, round((1.0 - tokens) / self.rate)))
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > self.max_keys:
                self._forget_full(now)

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled (their keys are back to a fresh start anyway)."""
        full_after = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}
