"""A study's runs in MLflow, through the ``mlflow`` client: the experiment, one parent run per
study, one nested run per trial.

Every method is one short series of client calls, made on the tracking queue's thread and
retried there whole, so each is idempotent: runs are created once and found again, parameters
are logged with the same values, metrics by (key, step).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# Tags that link MLflow back to the service, Optuna and Ray.
STUDY_ID_TAG = "hpo.study_id"
KIND_TAG = "hpo.kind"  # "study" (the parent run) or "trial"
TRIAL_NUMBER_TAG = "hpo.trial_number"
STATE_TAG = "hpo.state"  # the Optuna state: COMPLETE, PRUNED or FAIL
RAY_JOB_TAG = "hpo.ray_job_id"
RAY_TRIAL_TAG = "hpo.ray_trial_id"
STUDY_URL_TAG = "hpo.study_url"
# The MLflow run status of each Optuna state (a pruned trial was stopped early: KILLED).
RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
MAX_TAG_CHARS = 5000
# MLflow 3's UI opens an experiment of this kind on its training runs (not the GenAI overview).
TRAINING_EXPERIMENT = {"mlflow.experimentKind": "custom_model_development"}


@dataclass(frozen=True)
class TrackedStudy:
    """What the runs say about their study."""

    study_id: str
    name: str
    experiment: str
    ray_job_id: str
    study_url: str | None
    params: dict[str, str]  # the parent run's parameters (algorithm, scheduler, task, …)


@dataclass(frozen=True)
class StudyOutcome:
    """How the study ended, for its parent run."""

    succeeded: bool
    reason: str
    counts: dict[str, int]  # finished trials by Optuna state
    best_trial: int | None
    best_values: dict[str, float]  # the best trial's value of each objective metric


class MlflowStudyRuns:
    """The experiment, parent run and trial runs of one study on one tracking server."""

    def __init__(self, client: Any, study: TrackedStudy) -> None:
        self._client = client
        self._study = study
        self._experiment_id: str | None = None
        self._parent_id: str | None = None
        self.trial_runs: dict[str, str] = {}  # Tune trial id -> MLflow run id

    def parent(self) -> str:
        """The study's parent run (found again on a resumed study, else created), RUNNING."""
        if self._parent_id is not None:
            return self._parent_id
        experiment_id = self._experiment()
        found = self._client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{STUDY_ID_TAG}` = '{self._study.study_id}' "
            f"and tags.`{KIND_TAG}` = 'study'",
            max_results=1,
        )
        if found:
            run_id = found[0].info.run_id
            self._client.update_run(run_id, status="RUNNING")
            self._end_interrupted(experiment_id)
        else:
            tags = {STUDY_ID_TAG: self._study.study_id, KIND_TAG: "study"}
            if self._study.study_url:
                tags[STUDY_URL_TAG] = self._study.study_url
                tags["mlflow.note.content"] = f"hpo-service study: {self._study.study_url}"
            run = self._client.create_run(experiment_id, tags=tags, run_name=self._study.name)
            run_id = run.info.run_id
            self._client.log_batch(run_id, params=_params(self._study.params))
        self._client.set_tag(run_id, RAY_JOB_TAG, self._study.ray_job_id)
        log.info("MLflow: the study's run is %s in experiment %s", run_id, experiment_id)
        self._parent_id = run_id
        return run_id

    def trial(self, tune_id: str, number: int | None, params: dict[str, Any]) -> str:
        """The trial's run, nested under the study's (created on first use)."""
        if tune_id in self.trial_runs:
            return self.trial_runs[tune_id]
        parent = self.parent()
        label = f"trial-{number}" if number is not None else f"trial-{tune_id}"
        tags = {
            "mlflow.parentRunId": parent,
            STUDY_ID_TAG: self._study.study_id,
            KIND_TAG: "trial",
            RAY_JOB_TAG: self._study.ray_job_id,
            RAY_TRIAL_TAG: tune_id,
        }
        if number is not None:
            tags[TRIAL_NUMBER_TAG] = str(number)
        run = self._client.create_run(self._experiment(), tags=tags, run_name=label)
        self._client.log_batch(run.info.run_id, params=_params(params))
        self.trial_runs[tune_id] = run.info.run_id
        return run.info.run_id

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int) -> None:
        """One epoch's metrics of a run, at ``step``."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(key, value, now, step) for key, value in sorted(metrics.items())]
        if batch:
            self._client.log_batch(run_id, metrics=batch)

    def end(self, run_id: str, state: str, error: str | None = None) -> None:
        """Mark a run with its Optuna state and end it (COMPLETE / PRUNED / FAIL)."""
        self._client.set_tag(run_id, STATE_TAG, state)
        if error:
            self._client.set_tag(run_id, "hpo.error", error[-MAX_TAG_CHARS:])
        self._client.set_terminated(run_id, status=RUN_STATUS.get(state, "FAILED"))

    def finish(self, outcome: StudyOutcome) -> None:
        """End the parent run: the study's status and reason, trial counts, the best trial's
        values (``best_<metric>``) and number; the best trial's run is tagged ``hpo.best``."""
        parent = self.parent()
        metrics = {f"trials_{state.lower()}": float(n) for state, n in outcome.counts.items()}
        metrics.update({f"best_{key}": value for key, value in outcome.best_values.items()})
        self.log_metrics(parent, metrics, step=0)
        self._client.set_tag(parent, "hpo.status", "SUCCEEDED" if outcome.succeeded else "FAILED")
        self._client.set_tag(parent, "hpo.reason", outcome.reason[:MAX_TAG_CHARS])
        if outcome.best_trial is not None:
            self._client.set_tag(parent, "hpo.best_trial_number", str(outcome.best_trial))
            best_run = self._run_of_number(outcome.best_trial)
            if best_run is not None:
                self._client.set_tag(best_run, "hpo.best", "true")
        self._client.set_terminated(parent, status="FINISHED" if outcome.succeeded else "FAILED")

    def _run_of_number(self, number: int) -> str | None:
        found = self._client.search_runs(
            [self._experiment()],
            filter_string=f"tags.`{STUDY_ID_TAG}` = '{self._study.study_id}' "
            f"and tags.`{TRIAL_NUMBER_TAG}` = '{number}'",
            max_results=1,
        )
        return found[0].info.run_id if found else None

    def _experiment(self) -> str:
        if self._experiment_id is None:
            found = self._client.get_experiment_by_name(self._study.experiment)
            if found is None:
                try:
                    self._experiment_id = self._client.create_experiment(
                        self._study.experiment, tags=TRAINING_EXPERIMENT
                    )
                except Exception:  # created meanwhile by another study's driver
                    found = self._client.get_experiment_by_name(self._study.experiment)
                    if found is None:
                        raise
            if found is not None:
                if found.lifecycle_stage == "deleted":
                    self._client.restore_experiment(found.experiment_id)
                self._experiment_id = found.experiment_id
        assert self._experiment_id is not None
        return self._experiment_id

    def _end_interrupted(self, experiment_id: str) -> None:
        """A resumed study: the trial runs its dead driver left RUNNING end as KILLED (Optuna
        stores those trials FAIL, "interrupted", and runs their configurations again)."""
        left = self._client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{STUDY_ID_TAG}` = '{self._study.study_id}' "
            "and attributes.status = 'RUNNING'",
        )
        for run in left:
            if run.data.tags.get(KIND_TAG) == "trial":
                self._client.set_tag(run.info.run_id, STATE_TAG, "FAIL")
                self._client.set_terminated(run.info.run_id, status="KILLED")


def _params(values: dict[str, Any]) -> list[Any]:
    from mlflow.entities import Param

    return [Param(key, str(value)[:6000]) for key, value in sorted(values.items())]
