"""The tracking queue: calls in order off the trial loop, retried, an outage recorded once."""

from __future__ import annotations

import pickle
from typing import Any

from workers.tracking_queue import TrackingQueue


class Flaky:
    """A tracker call that fails while ``down``."""

    def __init__(self) -> None:
        self.down = False
        self.calls: list[str] = []

    def call(self, name: str) -> None:
        self.calls.append(name)
        if self.down:
            raise ConnectionError("connection refused")


def test_calls_run_in_order_and_an_outage_is_recorded_once() -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    tracker = Flaky()
    tracking = TrackingQueue("mlflow", lambda kind, data: events.append((kind, data)), (0.0, 0.0))
    tracking.put("a", lambda: tracker.call("a"))
    tracking.put("go down", lambda: setattr(tracker, "down", True))
    for name in ("b", "c", "d"):
        tracking.put(name, lambda name=name: tracker.call(name))
    tracking.put("come back", lambda: setattr(tracker, "down", False))
    tracking.put("e", lambda: tracker.call("e"))
    assert tracking.close(timeout_s=10)
    # "b" tried three times (two retries), then c and d once each while it stays down.
    assert tracker.calls == ["a", "b", "b", "b", "c", "d", "e"]
    assert [kind for kind, _ in events] == ["tracking_failed", "tracking_recovered"]
    failed, recovered = events[0][1], events[1][1]
    assert failed == {
        "tracker": "mlflow",
        "operation": "b",
        "attempts": 3,
        "error": "ConnectionError: connection refused",
    }
    assert recovered == {"tracker": "mlflow", "operation": "come back", "lost": 3}
    assert tracking.lost_in_all == 3


def test_a_tracker_still_down_at_the_end_is_recorded_and_never_raises() -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    tracking = TrackingQueue("mlflow", lambda kind, data: events.append((kind, data)), (0.0,))
    for _ in range(3):
        tracking.put("log", lambda: 1 / 0)
    assert tracking.close(timeout_s=10)
    assert [kind for kind, _ in events] == ["tracking_failed", "tracking_failed"]
    assert events[-1][1]["lost"] == 3 and "ZeroDivisionError" in events[-1][1]["error"]


def test_the_queue_survives_tunes_pickling() -> None:
    tracking = TrackingQueue("mlflow", print)
    tracking.put("noop", lambda: None)
    copy = pickle.loads(pickle.dumps(tracking))
    ran: list[int] = []
    copy.put("again", lambda: ran.append(1))
    assert copy.close(timeout_s=10) and ran == [1]
    assert tracking.close(timeout_s=10)
