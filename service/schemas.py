"""API schemas (not table rows): what the REST endpoints accept and return."""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import BaseModel, Field

from service.population import PAUSED, is_paused, lineage

if TYPE_CHECKING:  # the CLI client imports these schemas without the store's SQLAlchemy
    from service.store import StudyRecord
    from service.store.trials import TrialRecord

StudyStatus = Literal["QUEUED", "RUNNING", "RESUMING", "SUCCEEDED", "FAILED", "CANCELLED"]
TrialState = Literal["RUNNING", "WAITING", "COMPLETE", "PRUNED", "FAIL"]
STUDY_STATUSES: tuple[str, ...] = get_args(StudyStatus)


class TransitionPublic(BaseModel):
    """One status change of a study."""

    status: str
    reason: str | None
    at: datetime


class StudyPublic(BaseModel):
    """A study as the API shows it."""

    id: str
    name: str
    status: str = Field(description="QUEUED | RUNNING | RESUMING | SUCCEEDED | FAILED | CANCELLED")
    status_reason: str | None
    attempts: int = Field(description="Ray jobs this study has run as (1 + resumptions)")
    spec: dict[str, Any]
    optuna_study_name: str
    trial_counts: dict[str, int]
    best_value: float | None
    ray_job_id: str | None
    dashboard_url: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    history: list[TransitionPublic] | None = Field(
        default=None, description="Status transitions with time and reason (single study only)"
    )


class StudiesPublic(BaseModel):
    """A page of studies and the total that matched."""

    data: list[StudyPublic]
    count: int


class TrialPublic(BaseModel):
    """One trial: parameters, objective values, per-epoch values, metrics and timings."""

    number: int
    state: str = Field(description="RUNNING | PAUSED | COMPLETE | PRUNED | FAIL | WAITING")
    params: dict[str, Any]
    value: float | None
    values: list[float | None] | None
    intermediate_values: dict[int, float | None]
    metrics: dict[str, Any]
    error: str | None = Field(description="Why the trial failed (last lines of its error)")
    datetime_start: datetime | None
    datetime_complete: datetime | None
    duration_s: float | None
    lineage: list[dict[str, Any]] = Field(
        default_factory=list,
        description="pbt, pb2: the trial's exploit steps {epoch, from_trial, params}: at "
        "epoch it copied trial from_trial's checkpoint and trained on with params",
    )
    schedule: list[dict[str, Any]] | None = Field(
        default=None,
        description="/best of a population-trained study: the steps {from_epoch, trial, "
        "params} that trained the best trial's weights (null: params alone did)",
    )

    @classmethod
    def of(cls, trial: TrialRecord) -> TrialPublic:
        """Convert a stored trial; non-finite floats become null (JSON has no NaN/inf)."""
        return cls(
            number=trial.number,
            state=PAUSED if is_paused(trial.state, trial.user_attrs) else trial.state,
            params=trial.params,
            value=_finite(trial.value),
            values=[_finite(v) for v in trial.values] if trial.values else None,
            intermediate_values={k: _finite(v) for k, v in trial.intermediate_values.items()},
            metrics=dict(trial.user_attrs.get("metrics", {})),
            error=trial.user_attrs.get("error"),
            datetime_start=trial.datetime_start,
            datetime_complete=trial.datetime_complete,
            duration_s=trial.duration_s,
            lineage=lineage(trial),
        )


class TrialsPublic(BaseModel):
    """A page of trials and the total that matched."""

    data: list[TrialPublic]
    count: int
    next_cursor: str | None = Field(
        default=None, description="Pass as ?cursor= for the next page (null on the last page)"
    )


class HealthPublic(BaseModel):
    """Whether the database and the Ray cluster answer."""

    status: str
    database: bool
    ray: bool


class WhatIfPublic(BaseModel):
    """What an early-stopping scheduler would have done to a finished study."""

    study_id: str
    scheduler: dict[str, Any] = Field(description="The scheduler replayed, defaults filled in")
    metric: str = Field(description="The metric it compared trials on, per epoch")
    direction: str
    trials: int = Field(description="Trials replayed (those with at least one epoch)")
    stopped_trials: list[int] = Field(
        description="Numbers of the trials it would have stopped before their last recorded epoch"
    )
    epochs_run: int = Field(description="Trial-epochs it would have run")
    epochs_study: int = Field(
        description="Trial-epochs the study ran (a retried trial's last attempt)"
    )
    compute_saved_fraction: float = Field(description="1 - epochs_run / epochs_study")
    best_kept: bool | None = Field(
        description="Whether the study's best trial survives (null: no completed trial)"
    )
    best_trial: int | None = Field(
        description="The best completed trial it lets run to its end (null: none)"
    )
    best_value: float | None
    study_best_trial: int | None
    study_best_value: float | None


def study_public(
    study: StudyRecord,
    counts: dict[str, int],
    best: float | None,
    dashboard_url: str | None,
    history: list[TransitionPublic] | None = None,
) -> StudyPublic:
    """Build the public view of a study row plus its trial summary."""
    return StudyPublic(
        id=study.id,
        name=study.name,
        status=study.status,
        status_reason=study.status_reason,
        attempts=study.attempts,
        spec=study.spec,
        optuna_study_name=study.optuna_study_name,
        trial_counts=counts,
        best_value=_finite(best),
        ray_job_id=study.ray_job_id,
        dashboard_url=dashboard_url,
        created_at=study.created_at,
        started_at=study.started_at,
        finished_at=study.finished_at,
        history=history,
    )


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
