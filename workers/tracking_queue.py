"""Calls to an experiment tracker, made in order on a background thread, never failing a trial.

The study driver's Tune loop only enqueues; a slow or unreachable tracking server never holds up
a trial. A call that raises is retried after ``RETRY_DELAYS_S``; when every attempt failed it is
dropped, and the outage is recorded as a study event (``tracking_failed``: what failed and why).
While the tracker stays unreachable each later call is tried once (no waits, no event each);
the first call that works again records ``tracking_recovered`` with how many calls were lost.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

RETRY_DELAYS_S = (1.0, 3.0)
FAILED_EVENT = "tracking_failed"
RECOVERED_EVENT = "tracking_recovered"

Record = Callable[[str, dict[str, Any]], None]  # (event kind, data): the study's event log


class TrackingQueue:
    """Runs tracking calls on one daemon thread, in the order they were put."""

    def __init__(
        self, tracker: str, record: Record, delays: tuple[float, ...] = RETRY_DELAYS_S
    ) -> None:
        self._tracker = tracker
        self._record = record
        self._delays = delays
        self._calls: queue.Queue[tuple[str, Callable[[], Any]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.lost = 0  # calls dropped after their last attempt, in the current outage
        self.lost_in_all = 0
        self._down = False
        self._last_error = ""

    def put(self, what: str, call: Callable[[], Any]) -> None:
        """Run ``call`` after the calls put before it; ``what`` names it in the study events."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="tracking", daemon=True)
            self._thread.start()
        self._calls.put((what, call))

    def close(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the calls put so far; False if some were left undone
        (recorded as a study event)."""
        if self._thread is None:
            return True
        self._calls.put(None)
        self._thread.join(timeout_s)
        left = self._calls.qsize()
        if self._thread.is_alive():
            self._event(FAILED_EVENT, "close", f"{left} calls not done within {timeout_s:.0f} s")
            return False
        if self._down:
            self._event(FAILED_EVENT, "close", self._last_error, lost=self.lost)
        return True

    def _serve(self) -> None:
        while (item := self._calls.get()) is not None:
            what, call = item
            self._attempt(what, call)

    def _attempt(self, what: str, call: Callable[[], Any]) -> None:
        delays = () if self._down else self._delays
        for attempt in range(len(delays) + 1):
            try:
                call()
            except Exception as exc:  # whatever the tracker raises, the study goes on
                self._last_error = f"{type(exc).__name__}: {exc}"[:2000]
                if attempt < len(delays):
                    time.sleep(delays[attempt])
                continue
            if self._down:
                self._down = False
                self._event(RECOVERED_EVENT, what, None, lost=self.lost)
                self.lost = 0
            return
        self.lost += 1
        self.lost_in_all += 1
        log.warning("%s: %s failed: %s", self._tracker, what, self._last_error)
        if not self._down:
            self._down = True
            self._event(FAILED_EVENT, what, self._last_error, attempts=len(delays) + 1)

    def _event(self, kind: str, what: str, error: str | None, **data: Any) -> None:
        body = {"tracker": self._tracker, "operation": what, **data}
        if error is not None:
            body["error"] = error
        try:
            self._record(kind, body)
        except Exception:
            log.warning("could not record %s", kind, exc_info=True)

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles callbacks with its experiment state: no thread or queue in the copy.
        return {**self.__dict__, "_calls": None, "_thread": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._calls = queue.Queue()
