"""MLflow tracking of a study (spec ``tracking.mlflow``), as a Tune callback of the study driver.

Each study is a parent run in the spec's experiment (default: the study's name), each trial a
run nested under it: its hyperparameters as parameters, every epoch's metrics (quality, cost,
and at the end the deployment metrics) as steps, tags linking it to the study id, the Optuna
trial number and the Ray job, and its end state: COMPLETE → FINISHED, PRUNED → KILLED, FAIL →
FAILED (``hpo.state`` holds the Optuna state). When the study ends, the best model is logged
with the parent run (``workers.mlflow_model``) and the parent run ends with the study.

Every MLflow call runs on a ``TrackingQueue``: retried, then recorded as a study event, never
failing a trial. The MLflow client finds credentials in the driver's environment
(``MLFLOW_TRACKING_TOKEN``, ``MLFLOW_TRACKING_USERNAME`` / ``_PASSWORD``, …), never in the spec.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from ray.tune import Callback
from ray.tune.experiment import Trial

from search_spaces.converters import trial_hyperparameters
from search_spaces.tasks import known_metrics
from search_spaces.tunables import COST_KEYS, DDP_KEYS, DEPLOY_KEYS, REPORT_KEYS, RUN_KEYS
from workers.mlflow_runs import MlflowStudyRuns, StudyOutcome, TrackedStudy
from workers.search import RecordingOptunaSearch
from workers.tracking_queue import Record, TrackingQueue

# MLflow's own HTTP retries (7, exponential back-off) would hold a call for minutes; the queue
# retries instead. Each ended run's URL would be printed to the driver's log: the study's run is
# logged once instead. Values set in the driver's environment win.
CLIENT_ENV_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}
METRIC_KEYS = tuple(
    key
    for key in (
        *known_metrics(),
        *REPORT_KEYS,
        *COST_KEYS,
        *RUN_KEYS,
        *DDP_KEYS,
        *DEPLOY_KEYS,
        "checkpoint_bytes",
    )
    if key != "epoch"  # the step
)
FINISH_TIMEOUT_S = 120.0


class MlflowCallback(Callback):
    """Sends the study's trials to MLflow; every call goes through the tracking queue."""

    def __init__(
        self,
        tracking_uri: str,
        study: TrackedStudy,
        spec: Any,
        searcher: RecordingOptunaSearch,
        record: Record,
    ) -> None:
        for key, value in CLIENT_ENV_DEFAULTS.items():
            os.environ.setdefault(key, value)
        self._uri = tracking_uri
        self._spec = spec
        self._searcher = searcher
        self._queue = TrackingQueue("mlflow", record)
        self._runs: MlflowStudyRuns | None = None
        self._study = study
        self._steps: dict[str, int] = {}  # the last step logged, per Tune trial
        self._params: dict[str, dict[str, Any]] = {}  # each trial's hyperparameters
        self._open: set[str] = set()  # trials started and not ended
        self._queue.put("start the study's run", lambda: self._mlflow().parent())

    def on_trial_start(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        key, number = trial.trial_id, self._searcher.trial_number(trial.trial_id)
        params = trial_hyperparameters(self._spec, dict(trial.config))
        self._params[key] = params
        self._open.add(key)
        self._queue.put(f"start trial {number}", lambda: self._run(key, number))

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict[str, Any], **info: Any
    ) -> None:
        self._log_result(trial, result)

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self._log_result(trial, trial.last_result or {})  # Tune may withhold a stopping result
        self._end(trial.trial_id, self._searcher.trial_state(trial.trial_id) or "COMPLETE")

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        from workers.callbacks import error_text

        self._end(trial.trial_id, "FAIL", error_text(trial))

    def finish(self, outcome: StudyOutcome, best_model: Path | None) -> None:
        """After the study: end the runs still open, log the best model, end the parent run,
        then wait (``FINISH_TIMEOUT_S`` at most) for every call to be made."""
        for key in list(self._open):
            self._end(key, self._searcher.trial_state(key) or "FAIL")
        if best_model is not None and best_model.is_dir():
            self._queue.put("log the best model", lambda: self._log_model(best_model))
        self._queue.put("end the study's run", lambda: self._mlflow().finish(outcome))
        self._queue.close(FINISH_TIMEOUT_S)

    def _log_result(self, trial: Trial, result: dict[str, Any]) -> None:
        step = int(result.get("training_iteration") or 0)
        if step < 1 or self._steps.get(trial.trial_id, 0) >= step:
            return
        self._steps[trial.trial_id] = step
        metrics = {k: float(result[k]) for k in METRIC_KEYS if _finite(result.get(k))}
        number = self._searcher.trial_number(trial.trial_id)
        key = trial.trial_id
        self._queue.put(
            f"log epoch {step} of trial {number}",
            lambda: self._mlflow().log_metrics(self._run(key, number), metrics, step),
        )

    def _end(self, key: str, state: str, error: str | None = None) -> None:
        self._open.discard(key)
        number = self._searcher.trial_number(key)
        self._queue.put(
            f"end trial {number} ({state})",
            lambda: self._mlflow().end(self._run(key, number), state, error),
        )

    def _run(self, key: str, number: int | None) -> str:
        """The trial's run, created now if MLflow was unreachable when the trial started."""
        return self._mlflow().trial(key, number, self._params.get(key, {}))

    def _log_model(self, directory: Path) -> None:
        from workers.mlflow_model import log_best_model

        log_best_model(self._uri, self._mlflow().parent(), directory)

    def _mlflow(self) -> MlflowStudyRuns:
        if self._runs is None:
            from mlflow import MlflowClient

            self._runs = MlflowStudyRuns(MlflowClient(self._uri), self._study)
        return self._runs

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles callbacks with its experiment state; the client is made again on use.
        return {**self.__dict__, "_runs": None}


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
