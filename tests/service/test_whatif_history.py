"""The what-if's view of a study's event log: event order, a retried trial's last attempt only,
and a 409 reason for what cannot be replayed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from service.db import make_engine, upgrade_tables
from service.store.events import EventStore, add_event
from service.whatif import NotReplayable, history


def _log(tmp_path: Path, events: list[tuple[str, dict[str, Any]]]) -> EventStore:
    engine = make_engine(f"sqlite:///{tmp_path / 'events.db'}")
    upgrade_tables(engine)
    with engine.begin() as conn:
        add_event(conn, "s", "status", {"status": "RUNNING"})
        for kind, data in events:
            add_event(conn, "s", kind, data)
    return EventStore(engine)


def _result(number: int, epoch: int, accuracy: float) -> tuple[str, dict[str, Any]]:
    return "trial_result", {
        "number": number,
        "epoch": epoch,
        "metrics": {"eval_accuracy": accuracy},
    }


def test_steps_follow_the_events_and_keep_a_retried_trials_last_attempt(tmp_path: Path) -> None:
    events = _log(
        tmp_path,
        [
            ("trial_started", {"number": 0}),
            _result(0, 1, 0.1),
            ("trial_started", {"number": 1}),
            ("trial_retried", {"number": 0}),
            ("trial_started", {"number": 0}),
            _result(1, 1, 0.5),
            _result(0, 1, 0.2),
            ("trial_failed", {"number": 1}),
            _result(0, 2, 0.3),
            ("trial_completed", {"number": 0}),
            ("trial_started", {"number": 2}),
            ("trial_failed", {"number": 2}),  # no result: the replay ignores it
        ],
    )
    found = history(events, "s", "eval_accuracy")
    assert found.steps == [
        ["add", 0],
        ["add", 1],
        ["result", 1, 1, 0.5],
        ["result", 0, 1, 0.2],
        ["end", 1, "failed"],
        ["result", 0, 2, 0.3],
        ["end", 0, "complete"],
        ["add", 2],
        ["end", 2, "failed"],
    ]
    assert (found.epochs, found.longest) == (3, 2)


@pytest.mark.parametrize(
    ("events", "reason"),
    [
        ([_result(0, 1, 0.5), _result(1, 1, 0.6)], "at most 1 epoch"),
        ([("trial_started", {"number": 0})], "no per-epoch values of eval_accuracy"),
    ],
)
def test_what_cannot_be_replayed_says_why(
    tmp_path: Path, events: list[tuple[str, dict[str, Any]]], reason: str
) -> None:
    with pytest.raises(NotReplayable, match=reason):
        history(_log(tmp_path, events), "s", "eval_accuracy")
