"""Whether the remote server answers, and when to try it again.

States: "untried" (no request yet), "ok", "unreachable". The first failure starts an outage:
the user is told once (`on_change("outage", reason)`), not on every keystroke. During an outage
requests are not sent until a backoff has passed (1 s, doubling to 30 s); then the next request
is the probe. The first success ends the outage (`on_change("recovered", ...)`) and completions
simply resume.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

INITIAL_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0


class Health:
    def __init__(self, on_change: Callable[[str, str], None], initial_backoff_s: float = INITIAL_BACKOFF_S,
                 max_backoff_s: float = MAX_BACKOFF_S, clock: Callable[[], float] = time.monotonic):
        self.on_change = on_change
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.clock = clock
        self.state = "untried"
        self.last_error = ""
        self.failures = 0  # consecutive, in this outage
        self.outages = 0
        self._retry_at = 0.0
        self._lock = threading.Lock()

    def admit(self) -> bool:
        """May a request go out now? False while an outage's backoff runs."""
        with self._lock:
            return self.state != "unreachable" or self.clock() >= self._retry_at

    def succeeded(self) -> None:
        with self._lock:
            was_down = self.state == "unreachable"
            self.state, self.failures = "ok", 0
        if was_down:
            self.on_change("recovered", "the remote server answers again")

    def failed(self, reason: str) -> None:
        with self._lock:
            starts_outage = self.state != "unreachable"
            self.state, self.last_error = "unreachable", reason
            self.failures += 1
            self.outages += starts_outage
            backoff = min(self.max_backoff_s, self.initial_backoff_s * 2 ** (self.failures - 1))
            self._retry_at = self.clock() + backoff
        if starts_outage:
            self.on_change("outage", reason)

    def retry_in_s(self) -> float:
        with self._lock:
            return max(0.0, self._retry_at - self.clock()) if self.state == "unreachable" else 0.0

    def to_json(self) -> dict:
        return {"state": self.state, "lastError": self.last_error, "failures": self.failures,
                "outages": self.outages, "retryInMs": round(self.retry_in_s() * 1e3)}
