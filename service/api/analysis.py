"""``/studies/{id}/pareto`` and ``/studies/{id}/importance``."""

from __future__ import annotations

from typing import Annotated, Literal

import optuna
from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from service.api.studies import require_study
from service.auth.principal import PrincipalDep
from service.deps import OptunaStorageDep, StoreDep, TrialsDep
from service.schemas import TrialPublic, TrialsPublic

router = APIRouter(prefix="/studies", tags=["analysis"])

MIN_TRIALS_FOR_IMPORTANCE = 4


class ImportancePublic(BaseModel):
    """How much each parameter explains the objective's variation (sums to 1)."""

    evaluator: str
    objective: int
    n_trials: int
    importances: dict[str, float]


@router.get("/{study_id}/pareto", response_model=TrialsPublic)
def read_pareto_front(
    study_id: str, store: StoreDep, principal: PrincipalDep, trials: TrialsDep
) -> TrialsPublic:
    """The Pareto-optimal completed trials (for one objective: the best trial(s))."""
    study = require_study(store, study_id, principal)
    optuna_id = trials.study_id(study.optuna_study_name)
    front = trials.pareto(optuna_id) if optuna_id is not None else []
    return TrialsPublic(data=[TrialPublic.of(t) for t in front], count=len(front))


@router.get("/{study_id}/importance", response_model=ImportancePublic)
def read_importance(
    study_id: str,
    store: StoreDep,
    principal: PrincipalDep,
    trials: TrialsDep,
    storage: OptunaStorageDep,
    evaluator: Literal["fanova", "ped_anova"] = "fanova",
    objective: Annotated[int, Query(ge=0, le=7)] = 0,
) -> ImportancePublic:
    """Parameter importance (fANOVA or PED-ANOVA); 409 until enough trials completed."""
    study = require_study(store, study_id, principal)
    optuna_id = trials.study_id(study.optuna_study_name)
    counts = trials.counts(optuna_id) if optuna_id is not None else {}
    complete = counts.get("COMPLETE", 0)
    if complete < MIN_TRIALS_FOR_IMPORTANCE:
        raise HTTPException(
            409,
            f"importance needs at least {MIN_TRIALS_FOR_IMPORTANCE} completed trials; "
            f"{complete} so far",
        )
    assert optuna_id is not None
    if objective >= len(trials.directions(optuna_id)):
        raise HTTPException(422, f"objective {objective} does not exist in this study")
    loaded = optuna.load_study(study_name=study.optuna_study_name, storage=storage)
    chosen = (
        optuna.importance.FanovaImportanceEvaluator(seed=0)
        if evaluator == "fanova"
        else optuna.importance.PedAnovaImportanceEvaluator()
    )
    try:
        values = optuna.importance.get_param_importances(
            loaded, evaluator=chosen, target=lambda t: t.values[objective]
        )
    except (ValueError, RuntimeError) as exc:
        raise HTTPException(409, f"cannot compute importance yet: {exc}") from None
    return ImportancePublic(
        evaluator=evaluator,
        objective=objective,
        n_trials=complete,
        importances={k: float(v) for k, v in values.items()},
    )
