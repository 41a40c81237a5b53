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


def to_grid(spec: StudySpec) -> dict[str, list[Any]]:
    """The grid for ``GridSampler``: every discrete parameter's values (empty if not discrete)."""
    if not all(p.is_discrete for p in spec.search_space.values()):
        return {}
    return {name: grid_values(param) for name, param in spec.search_space.items()}


def grid_points(spec: StudySpec) -> list[dict[str, Any]]:
    """Every point of the grid, the last parameter varying fastest."""
    grid = to_grid(spec)
    names = list(grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*grid.values())]


def trial_hyperparameters(spec: StudySpec, sampled: dict[str, Any]) -> dict[str, Any]:
    """A trial's full hyperparameters: defaults, then the task's fixed values, then the sample."""
    values: dict[str, Any] = {name: t.default for name, t in TUNABLES.items()}
    values["epochs"] = spec.task.epochs
    values["max_seq_length"] = spec.task.max_seq_length
    values.update(spec.task.hyperparameters)
    values.update({k: v for k, v in sampled.items() if k in TUNABLES})
    for name, tunable in TUNABLES.items():
        if tunable.kind == "int":
            values[name] = int(values[name])
        elif tunable.kind == "float":
            values[name] = float(values[name])
    return values
