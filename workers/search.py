"""OptunaSearch that also stores each trial's latest metrics as an Optuna user attribute."""

from __future__ import annotations

import logging
import math
from typing import Any

from ray.tune.search.optuna import OptunaSearch

from search_spaces.tunables import REPORT_KEYS

log = logging.getLogger(__name__)


class RecordingOptunaSearch(OptunaSearch):
    """Like ``OptunaSearch``; every result's metrics land in the trial's ``metrics`` user attr.

    Optuna keeps only the objective per step (intermediate values); users also want the
    other metrics (F1, loss, throughput) of every trial, queryable from SQL.
    """

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Record the epoch's objective (as an intermediate value) and all metrics."""
        super().on_trial_result(trial_id, result)
        self._record(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        """Record the final metrics, then tell Optuna the outcome."""
        if result and trial_id not in self._completed_trials:
            self._record(trial_id, result)
        super().on_trial_complete(trial_id, result=result, error=error)

    def _record(self, trial_id: str, result: dict[str, Any]) -> None:
        trial = self._ot_trials.get(trial_id)
        if trial is None:
            return
        metrics = {
            key: float(result[key])
            for key in REPORT_KEYS
            if isinstance(result.get(key), int | float) and math.isfinite(float(result[key]))
        }
        try:
            trial.set_user_attr("metrics", metrics)
            trial.set_user_attr("ray_trial_id", trial_id)
        except Exception:  # a finished trial is immutable; never let bookkeeping kill the study
            log.warning("could not store metrics of trial %s", trial_id, exc_info=True)
