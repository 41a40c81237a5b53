"""``/studies/{id}/trials`` and ``/studies/{id}/best``: read trials from Optuna's tables."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query

from service.api.studies import require_study
from service.deps import StoreDep, TrialsDep
from service.schemas import TrialPublic, TrialsPublic
from service.store.trials import TRIAL_STATES

router = APIRouter(prefix="/studies", tags=["trials"])

TrialState = Literal["RUNNING", "WAITING", "COMPLETE", "PRUNED", "FAIL"]
assert set(TrialState.__args__) == set(TRIAL_STATES)  # type: ignore[attr-defined]


@router.get("/{study_id}/trials", response_model=TrialsPublic)
def list_trials(
    study_id: str,
    store: StoreDep,
    trials: TrialsDep,
    state: TrialState | None = None,
    sort: Literal["number", "value"] = "number",
    order: Literal["asc", "desc"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> TrialsPublic:
    """Trials filtered by state, sorted by number or value (best first by default), paginated."""
    study = require_study(store, study_id)
    optuna_id = trials.study_id(study.optuna_study_name)
    if optuna_id is None:
        return TrialsPublic(data=[], count=0)
    if order is None:
        maximize = trials.directions(optuna_id)[:1] == ["MAXIMIZE"]
        descending = sort == "value" and maximize
    else:
        descending = order == "desc"
    page, count = trials.page(
        optuna_id, state=state, sort=sort, descending=descending, limit=limit, offset=offset
    )
    return TrialsPublic(data=[TrialPublic.of(t) for t in page], count=count)


@router.get("/{study_id}/best", response_model=TrialPublic | TrialsPublic)
def read_best_trial(
    study_id: str, store: StoreDep, trials: TrialsDep
) -> TrialPublic | TrialsPublic:
    """The best completed trial (404 while there is none); for several objectives, the Pareto
    front ({data, count})."""
    study = require_study(store, study_id)
    optuna_id = trials.study_id(study.optuna_study_name)
    if optuna_id is not None and len(trials.directions(optuna_id)) > 1:
        front = trials.pareto(optuna_id)
        if front:
            return TrialsPublic(data=[TrialPublic.of(t) for t in front], count=len(front))
    best = trials.best(optuna_id) if optuna_id is not None else None
    if best is None:
        raise HTTPException(
            404, f"study {study_id!r} has no completed trial yet (status {study.status})"
        )
    return TrialPublic.of(best)
