"""Tune callbacks of the study driver: the event log, trial error texts, the failure budget,
the deadline for placing the first trial."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback, Stopper
from ray.tune.experiment import Trial

from search_spaces.placement import TrialDemand
from search_spaces.protocol import PLACEMENT_TIMEOUT_ENV
from search_spaces.spec import StudySpec
from search_spaces.tunables import COST_KEYS, RESUME_FROM_KEY, TRIAL_NUMBER_KEY
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
        self.started = 0
        self._paused: set[str] = set()  # paused at the last step
        self._resuming: set[str] = set()  # paused since they last started

    def on_trial_start(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        bookkeeping = (TRIAL_NUMBER_KEY, RESUME_FROM_KEY)
        params = {k: v for k, v in trial.config.items() if k not in bookkeeping}
        if trial.trial_id in self._resuming:  # a paused trial resuming (maybe with new params)
            self._resuming.discard(trial.trial_id)
            self._writer.write("trial_resumed", self._about(trial, params=params))
            return
        self.started += 1
        self._writer.write("trial_started", self._about(trial, params=params))

    def on_step_end(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        """Mark the trials a scheduler paused (and those it resumed) in Optuna."""
        paused = {trial.trial_id for trial in trials if trial.status == Trial.PAUSED}
        for trial_id in paused - self._paused:
            self._searcher.mark_paused(trial_id, True)
            self._resuming.add(trial_id)
        for trial_id in self._paused - paused:
            self._searcher.mark_paused(trial_id, False)
        self._paused = paused

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict[str, Any], **info: Any
    ) -> None:
        kept = (*RecordingOptunaSearch.metric_keys, *COST_KEYS)  # the cost so far, too
        metrics = {k: v for k, v in result.items() if k in kept}
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

    def on_checkpoint(
        self,
        iteration: int,
        trials: list[Trial],
        trial: Trial,
        checkpoint: Any,
        **info: Any,
    ) -> None:
        self._searcher.record_checkpoint(trial.trial_id, str(checkpoint.path))

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


class PlacementDeadline(Stopper):
    """Stops the whole experiment when no trial has started ``timeout_s`` seconds after the
    experiment did: the cluster cannot place one (too large for its nodes, or busy for that
    long). Tune itself would wait for ever, and the study would hold its running slot."""

    def __init__(self, events: StudyEvents, timeout_s: float | None) -> None:
        self._events = events
        self._timeout_s = timeout_s
        self._since: float | None = None
        self.missed = False

    @classmethod
    def from_env(cls, events: StudyEvents) -> PlacementDeadline:
        """The deadline the service set (``HPO_PLACEMENT_TIMEOUT_S``); none if unset."""
        text = os.environ.get(PLACEMENT_TIMEOUT_ENV)
        return cls(events, float(text) if text else None)

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        if self._timeout_s is None or self._events.started:
            return False
        now = time.monotonic()
        self._since = now if self._since is None else self._since
        self.missed = now - self._since >= self._timeout_s
        return self.missed

    def reason(self, spec: StudySpec) -> str:
        """The study's failure reason, with what a trial needs and what the cluster has."""
        import ray

        has = ray.cluster_resources()
        return (
            f"study failed: no trial could be placed within {self._timeout_s:g} s "
            f"({PLACEMENT_TIMEOUT_ENV}): one trial needs {TrialDemand.of(spec).describe()}; "
            "the cluster has "
            f"{has.get('CPU', 0):g} CPUs and {has.get('GPU', 0):g} GPUs"
        )
