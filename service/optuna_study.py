"""The Optuna study behind a study, made to speak the user's names in optuna-dashboard.

The Optuna study is named ``<name>-<id>`` (``search_spaces.protocol.optuna_study_name``), its
objectives carry their metric names (``set_metric_names``: ``eval_f1`` instead of "Objective
0"), and its user attributes say what the study is: the name the user gave it, the algorithm,
the early-stopping scheduler, the task, and the link to the study in the service's API.
"""

from __future__ import annotations

import warnings
from typing import Any

import optuna
from optuna.study import StudyDirection

from search_spaces.protocol import STUDY_URL_ATTR
from search_spaces.spec import StudySpec

# Study user attributes (optuna-dashboard shows them as "Study User Attributes").
NAME_ATTR = "name"
ALGORITHM_ATTR = "algorithm"
SCHEDULER_ATTR = "scheduler"
TASK_ATTR = "task"
URL_ATTR = STUDY_URL_ATTR


def create_optuna_study(
    storage: optuna.storages.BaseStorage, study_name: str, spec: StudySpec, study_url: str
) -> optuna.Study:
    """Create the Optuna study with its directions, metric names and user attributes."""
    study = optuna.create_study(
        storage=storage,
        study_name=study_name,
        directions=[
            StudyDirection.MAXIMIZE if o.direction == "maximize" else StudyDirection.MINIMIZE
            for o in spec.goals
        ],
    )
    with warnings.catch_warnings():  # experimental since Optuna 3.2, still so in 5.x
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([o.metric for o in spec.goals])
    for key, value in study_attributes(spec, study_url).items():
        study.set_user_attr(key, value)
    return study


def study_attributes(spec: StudySpec, study_url: str) -> dict[str, Any]:
    """The user attributes that describe ``spec`` (plain strings, as the dashboard shows them)."""
    return {
        NAME_ATTR: spec.name,
        ALGORITHM_ATTR: _algorithm(spec),
        SCHEDULER_ATTR: _scheduler(spec),
        TASK_ATTR: _task(spec),
        URL_ATTR: study_url,
    }


def _algorithm(spec: StudySpec) -> str:
    settings = ", ".join(f"{k}={v}" for k, v in sorted(spec.algorithm_settings.items()))
    return f"{spec.algorithm} ({settings})" if settings else spec.algorithm


def _scheduler(spec: StudySpec) -> str:
    scheduler = spec.scheduler
    if scheduler.type == "none":
        return "none"
    goal = spec.stopping_goal()
    return f"{scheduler.type} on {goal.metric} (grace_period={scheduler.grace_period})"


def _task(spec: StudySpec) -> str:
    task = spec.task
    if task.model == "toy":
        return f"toy objective, {task.epochs} epochs"
    if task.model == "replay":
        return f"replay of {task.dataset.name}, {task.epochs} epochs"
    dataset = task.dataset.name or task.dataset.train or "?"
    return f"{task.model} on {dataset}, {task.epochs} epochs"
