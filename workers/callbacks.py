"""Tune callbacks of the study driver: the event log, trial error texts, the failure budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.tune import Callback, Stopper
from ray.tune.experiment import Trial

from search_spaces.tunables import TRIAL_NUMBER_KEY
from workers.events import EventWriter
from workers.search import RecordingOptunaSearch

ERROR_TAIL_LINES = 15


def error_text(trial: Trial) -> str:
    """The last lines of a trial's stored error (its traceback), or a placeholder."""
    path = trial.error_file
    if path and Path(path).exists():
        lines = Path(path).read_text(errors="replace").strip().splitlines()
        lines = [line for line in lines if line.strip(" ^~")]  # drop caret-marker lines
        return "\n".join(lines[-ERROR_TAIL_LINES:])
    return "the trial failed (no error text was recorded)"


class StudyEvents(Callback):
    """Writes trial events (started, epoch result, completed, retried, failed) to the event log,
    and hands each final error text to the searcher so it is stored with the Optuna trial."""

    def __init__(self, writer: EventWriter, searcher: RecordingOptunaSearch) -> None:
        self._writer = writer
        self._searcher = searcher
        self.failed = 0

    def on_trial_start(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        params = {k: v for k, v in trial.config.items() if k != TRIAL_NUMBER_KEY}
        self._writer.write("trial_started", self._about(trial, params=params))

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict[str, Any], **info: Any
    ) -> None:
        metrics = {k: v for k, v in result.items() if k in RecordingOptunaSearch.metric_keys}
        epoch = result.get("training_iteration")
        self._writer.write("trial_result", self._about(trial, epoch=epoch, metrics=metrics))

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        result = trial.last_result or {}
        metric = self._searcher.metric
        names = metric if isinstance(metric, list) else [metric]
        values = [result.get(name) for name in names]
        self._writer.write("trial_completed", self._about(trial, values=values, value=values[0]))

    def on_trial_recover(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self._writer.write("trial_retried", self._about(trial, error=error_text(trial)))

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self.failed += 1
        text = error_text(trial)
        self._searcher.record_failure(trial.trial_id, text)
        self._writer.write("trial_failed", self._about(trial, error=text))

    def _about(self, trial: Trial, **data: Any) -> dict[str, Any]:
        return {
            "number": self._searcher.trial_number(trial.trial_id),
            "trial_id": trial.trial_id,
            **data,
        }


class FailureBudget(Stopper):
    """Stops the whole experiment once ``limit`` trials have failed for good."""

    def __init__(self, events: StudyEvents, limit: int | None) -> None:
        self._events = events
        self._limit = limit

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return self._limit is not None and self._events.failed >= self._limit
