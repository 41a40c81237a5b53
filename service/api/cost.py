"""``/studies/{id}/cost``: what a study's trials cost, from the cost keys of their metrics.

Every trial's last report holds its measured cost (``search_spaces.tunables.COST_KEYS``, see
``workers/cost.py``); this sums it over the study, per trial state, for the best trial, and
estimates what early stopping saved.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from service.api.studies import require_study
from service.auth.principal import PrincipalDep
from service.deps import StoreDep, TrialsDep
from service.store.trials import TrialRecord

router = APIRouter(prefix="/studies", tags=["trials"])

COST_STATES = ("COMPLETE", "PRUNED", "FAIL")
_PAGE = 1000


class CostTotals(BaseModel):
    """Summed cost of some trials (a trial without a cost key counts 0 for it)."""

    trials: int = 0
    wall_time_s: float = 0.0
    device_seconds: float = 0.0
    energy_joules: float = 0.0
    energy_estimated: bool = Field(
        default=False, description="Whether any part of energy_joules is an estimate"
    )

    def add(self, metrics: dict[str, Any]) -> None:
        """Count one trial's metrics in."""
        self.trials += 1
        self.wall_time_s += _number(metrics, "wall_time_s")
        self.device_seconds += _number(metrics, "device_seconds")
        self.energy_joules += _number(metrics, "energy_joules")
        self.energy_estimated = self.energy_estimated or _number(metrics, "energy_estimated") > 0


class TrialCost(CostTotals):
    """The cost of one trial."""

    number: int
    state: str


class EarlyStoppingSavings(BaseModel):
    """Estimated cost the scheduler saved by stopping trials early."""

    pruned_trials: int = 0
    epochs_saved: int = 0
    seconds: float = Field(
        default=0.0,
        description="Sum over pruned trials of (planned epochs - epochs run) * their mean "
        "wall seconds per epoch (wall_time_s / epochs run, start-up included): an estimate",
    )
    device_seconds: float = Field(
        default=0.0,
        description="The same with device_seconds per epoch (an estimate)",
    )


class StudyCost(BaseModel):
    """A study's cost: totals, per trial state, the best trial and early stopping's savings."""

    study_id: str
    totals: CostTotals
    by_state: dict[str, CostTotals] = Field(description="COMPLETE, PRUNED and FAIL trials")
    best_trial: TrialCost | None = Field(
        description="The best completed trial (single objective; null while there is none)"
    )
    saved_by_early_stopping: EarlyStoppingSavings


@router.get("/{study_id}/cost", response_model=StudyCost)
def read_cost(
    study_id: str, store: StoreDep, principal: PrincipalDep, trials: TrialsDep
) -> StudyCost:
    """Wall time, device-seconds and energy of the study's trials: in total, per state (what
    pruned and failed trials burnt), of the best trial, and saved by early stopping."""
    study = require_study(store, study_id, principal)
    result = StudyCost(
        study_id=study_id,
        totals=CostTotals(),
        by_state={state: CostTotals() for state in COST_STATES},
        best_trial=None,
        saved_by_early_stopping=EarlyStoppingSavings(),
    )
    optuna_id = trials.study_id(study.optuna_study_name)
    if optuna_id is None:
        return result
    task = study.spec.get("task") or {}
    default_epochs = int(
        (task.get("hyperparameters") or {}).get("epochs") or task.get("epochs") or 1
    )
    saved = result.saved_by_early_stopping
    for trial in trials.every(optuna_id, _PAGE):
        metrics = _metrics(trial)
        result.totals.add(metrics)
        if trial.state in result.by_state:
            result.by_state[trial.state].add(metrics)
        if trial.state == "PRUNED":
            planned = int(trial.params.get("epochs") or default_epochs)
            ran = int(_number(metrics, "epoch") or len(trial.intermediate_values))
            if 0 < ran < planned:
                saved.pruned_trials += 1
                saved.epochs_saved += planned - ran
                saved.seconds += (planned - ran) * _number(metrics, "wall_time_s") / ran
                saved.device_seconds += (planned - ran) * _number(metrics, "device_seconds") / ran
    if len(trials.directions(optuna_id)) == 1:
        best = trials.best(optuna_id)
        if best is not None:
            result.best_trial = TrialCost(number=best.number, state=best.state)
            result.best_trial.add(_metrics(best))
    return result


def _metrics(trial: TrialRecord) -> dict[str, Any]:
    metrics = trial.user_attrs.get("metrics")
    return metrics if isinstance(metrics, dict) else {}


def _number(metrics: dict[str, Any], key: str) -> float:
    value = metrics.get(key)
    return float(value) if isinstance(value, int | float) else 0.0
