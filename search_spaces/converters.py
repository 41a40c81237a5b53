"""Converters from our search space to Optuna distributions and grids."""

from __future__ import annotations

import itertools
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from search_spaces.params import CategoricalParam, FloatParam, IntParam, grid_values
from search_spaces.rules import TASK_OPTIONS
from search_spaces.spec import StudySpec
from search_spaces.tunables import TUNABLES


def to_distribution(param: FloatParam | IntParam | CategoricalParam) -> BaseDistribution:
    """The Optuna distribution equivalent to one parameter."""
    if isinstance(param, FloatParam):
        return FloatDistribution(param.low, param.high, log=param.log, step=param.step)
    if isinstance(param, IntParam):
        return IntDistribution(param.low, param.high, log=param.log, step=param.step or 1)
    return CategoricalDistribution(param.choices)


def to_distributions(spec: StudySpec) -> dict[str, BaseDistribution]:
    """Optuna distributions of the whole search space, in the spec's order."""
    return {name: to_distribution(param) for name, param in spec.search_space.items()}


class ConditionalSpace:
    """A define-by-run space: parameters with ``when`` are suggested only when it holds.

    Unconditional parameters come first, so every condition's parent is known when its child
    is considered; inactive parameters are neither sampled nor stored. Picklable (plain data).
    """

    def __init__(self, spec: StudySpec) -> None:
        params = spec.search_space
        first = [name for name, param in params.items() if not param.when]
        then = [name for name, param in params.items() if param.when]
        self._items = [(name, params[name]) for name in first + then]

    def __call__(self, trial: Any) -> None:
        """Suggest the active parameters on an Optuna trial (Ray's OptunaSearch protocol)."""
        chosen: dict[str, Any] = {}
        for name, param in self._items:
            when = param.when or {}
            if all(chosen.get(parent) == value for parent, value in when.items()):
                chosen[name] = suggest(trial, name, param)


def suggest(trial: Any, name: str, param: FloatParam | IntParam | CategoricalParam) -> Any:
    """Call the Optuna ``suggest_*`` method matching one parameter."""
    if isinstance(param, FloatParam):
        return trial.suggest_float(name, param.low, param.high, log=param.log, step=param.step)
    if isinstance(param, IntParam):
        return trial.suggest_int(name, param.low, param.high, log=param.log, step=param.step or 1)
    return trial.suggest_categorical(name, param.choices)


def search_space_for_optuna(spec: StudySpec) -> dict[str, BaseDistribution] | ConditionalSpace:
    """The space to hand to OptunaSearch: fixed distributions, or define-by-run if conditional."""
    if any(param.when for param in spec.search_space.values()):
        return ConditionalSpace(spec)
    return to_distributions(spec)


def to_grid(spec: StudySpec) -> dict[str, list[Any]]:
    """The grid for ``GridSampler``: every discrete parameter's values (empty if not discrete).

    Validation bounds a grid study's grid (``limits.MAX_GRID_POINTS``); call this for grid
    studies only (``make_sampler`` does), as other studies' discrete spaces are not bounded so.
    """
    if not all(p.is_discrete for p in spec.search_space.values()):
        return {}
    return {name: grid_values(param) for name, param in spec.search_space.items()}


def grid_points(spec: StudySpec) -> list[dict[str, Any]]:
    """Every point of the grid, the last parameter varying fastest."""
    grid = to_grid(spec)
    names = list(grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*grid.values())]


def trial_hyperparameters(spec: StudySpec, sampled: dict[str, Any]) -> dict[str, Any]:
    """A trial's full hyperparameters: defaults, then the task's fixed values, then the sample;
    ``model`` is the sampled model when the search space tunes it, else the task's."""
    values: dict[str, Any] = {name: t.default for name, t in TUNABLES.items()}
    values["epochs"] = spec.task.epochs
    values["max_seq_length"] = spec.task.max_seq_length
    values.update({name: getattr(spec.task, name) for name in TASK_OPTIONS})
    values.update(spec.task.hyperparameters)
    values.update({k: v for k, v in sampled.items() if k in TUNABLES})
    values["model"] = str(sampled.get("model", spec.task.model))  # searched, or the task's
    for name, tunable in TUNABLES.items():
        if tunable.kind == "int":
            values[name] = int(values[name])
        elif tunable.kind == "float":
            values[name] = float(values[name])
    return values
