"""The study driver's experiment trackers: made from the spec's ``tracking`` section when the
study starts, told how it ended when it ends (see ``workers.mlflow_callback``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from search_spaces.protocol import STUDY_URL_ATTR, ray_job_id
from workers.events import EventWriter
from workers.search import RecordingOptunaSearch

log = logging.getLogger(__name__)


def make_trackers(
    stored: Any, attempt: int, storage: Any, searcher: RecordingOptunaSearch, writer: EventWriter
) -> list[Any]:
    """The Tune callbacks that track this study (none when its spec asks for no tracker)."""
    spec = stored.spec
    settings = spec.tracking.mlflow
    if settings is None:
        return []
    if settings.tracking_uri is None:  # resolved at submit; a spec checked only locally has none
        writer.write("tracking_failed", {"tracker": "mlflow", "error": "no tracking_uri"})
        return []
    from workers.mlflow_callback import MlflowCallback
    from workers.mlflow_runs import TrackedStudy

    attributes = _study_attributes(storage, stored.optuna_study_name)
    params = {k: str(v) for k, v in attributes.items() if k not in ("name", STUDY_URL_ATTR)}
    params.update(
        objectives=", ".join(f"{o.metric} ({o.direction})" for o in spec.goals),
        n_trials=str(spec.budget.n_trials),
        optuna_study_name=stored.optuna_study_name,
    )
    study = TrackedStudy(
        study_id=stored.id,
        name=spec.name,
        experiment=settings.experiment or spec.name,
        ray_job_id=ray_job_id(stored.id, attempt),
        study_url=attributes.get(STUDY_URL_ATTR),
        params=params,
    )
    return [MlflowCallback(settings.tracking_uri, study, spec, searcher, writer.write)]


def finish_trackers(
    trackers: list[Any],
    storage: Any,
    stored: Any,
    outcome: tuple[bool, str],
    best_model: Path | None,
) -> None:
    """Tell every tracker how the study ended and wait for it to send what is left."""
    if not trackers:
        return
    from workers.mlflow_runs import StudyOutcome

    try:
        counts, best, values = _trial_summary(storage, stored)
    except Exception:  # the study's outcome stands; its run gets the status without a summary
        log.warning("could not summarise the trials for the trackers", exc_info=True)
        counts, best, values = {}, None, {}
    result = StudyOutcome(outcome[0], outcome[1], counts, best, values)
    for tracker in trackers:
        tracker.finish(result, best_model)


def _study_attributes(storage: Any, study_name: str) -> dict[str, Any]:
    import optuna

    try:
        return dict(optuna.load_study(study_name=study_name, storage=storage).user_attrs)
    except Exception:  # a study made by an older service, or a database hiccup: no attributes
        log.warning("could not read the study's attributes", exc_info=True)
        return {}


def _trial_summary(
    storage: Any, stored: Any
) -> tuple[dict[str, int], int | None, dict[str, float]]:
    """Finished trials by state, the best trial's number and its objective values."""
    import optuna

    from workers.artifacts import best_trial

    study = optuna.load_study(study_name=stored.optuna_study_name, storage=storage)
    counts = dict.fromkeys(("COMPLETE", "PRUNED", "FAIL"), 0)
    for trial in study.get_trials(deepcopy=False):
        if trial.state.name in counts:
            counts[trial.state.name] += 1
    best = best_trial(storage, stored.optuna_study_name)
    if best is None or best.values is None:
        return counts, None, {}
    metrics = [o.metric for o in stored.spec.goals]
    return counts, best.number, dict(zip(metrics, best.values, strict=False))
