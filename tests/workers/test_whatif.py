"""The what-if replay feeds recorded epochs to Ray Tune's scheduler in event order."""

from __future__ import annotations

from typing import Any

from workers.whatif import replay

SPEC: dict[str, Any] = {
    "name": "whatif",
    "task": {"model": "toy", "epochs": 4},
    "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2},
    "search_space": {"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2}},
}


def _trial(number: int, values: list[float], end: str = "complete") -> list[list[Any]]:
    results = [["result", number, epoch, v] for epoch, v in enumerate(values, start=1)]
    return [["add", number], *results, ["end", number, end]]


def _stops(steps: list[list[Any]]) -> dict[int, tuple[int, int | None]]:
    return {t["number"]: (t["epochs_run"], t["stopped_at"]) for t in replay(SPEC, steps)}


def test_the_order_of_events_decides_what_asha_sees() -> None:
    first, second = [0.5, 0.6, 0.7, 0.8], [0.4, 0.45, 0.5, 0.55]
    one_at_a_time = _trial(0, first) + _trial(1, second)
    assert _stops(one_at_a_time) == {0: (4, None), 1: (1, 1)}  # 0.4 below 0.5 at rung 1
    # Concurrent: trial 1 reaches rung 1 first (nothing to compare with), then meets 0.6 at 2.
    order = [(1, 1), (0, 1), (0, 2), (1, 2), (0, 3), (0, 4), (1, 3), (1, 4)]
    values = {0: first, 1: second}
    steps = [["add", 0], ["add", 1]]
    steps += [["result", n, epoch, values[n][epoch - 1]] for n, epoch in order]
    assert _stops(steps) == {0: (4, None), 1: (2, 2)}


def test_a_stop_at_the_last_recorded_epoch_is_no_early_stop() -> None:
    steps = _trial(0, [0.5, 0.6, 0.7, 0.8]) + _trial(1, [0.4], end="failed")
    steps += [["add", 2], ["end", 2, "failed"]]  # failed with no result: not replayed
    assert _stops(steps) == {0: (4, None), 1: (1, None)}
