"""Recorded learning curves for the ``replay`` objective (tabular search benchmarks).

A replay table (``search_spaces/replay/<name>.json.gz``, written by ``bench/record_curves.py``)
holds a grid of real fine-tunes: each grid point's eval metrics and measured seconds, epoch by
epoch. A study with ``task: {model: replay, dataset: {name: <table>}}`` plays them back through
real Ray jobs, Tune trials and Optuna rows, so search methods can be compared with many seeds
at the cost of a few seconds per study. Its search space must be the table's grid: every
parameter categorical over grid values (or fixed to one), nothing the table did not vary.
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search_spaces.params import CategoricalParam
from search_spaces.tunables import TUNABLES

if TYPE_CHECKING:
    from search_spaces.spec import StudySpec

REPLAY_MODEL = "replay"
TABLES_DIR = Path(__file__).parent / "replay"
Broken = tuple[tuple[str | int, ...], str]


@dataclass(frozen=True)
class ReplayTable:
    """One recorded grid: its parameters' values, epochs, metrics and every point's curve."""

    name: str
    grid: dict[str, list[Any]]
    epochs: int
    metrics: tuple[str, ...]
    curves: dict[tuple[Any, ...], list[dict[str, float]]]
    how: dict[str, Any]

    def curve(self, params: dict[str, Any]) -> list[dict[str, float]]:
        """The recorded epochs of the grid point ``params`` names (KeyError: not a grid point)."""
        return self.curves[tuple(self.grid_value(n, params[n]) for n in self.grid)]

    def grid_value(self, name: str, value: Any) -> Any:
        """The grid's own value equal to ``value`` (floats compared to 1e-9), else KeyError."""
        for candidate in self.grid[name]:
            if _same(candidate, value):
                return candidate
        raise KeyError(f"{name}={value!r} is not a value of the grid")


def table_names() -> list[str]:
    """The replay tables shipped with the package."""
    return sorted(p.name.removesuffix(".json.gz") for p in TABLES_DIR.glob("*.json.gz"))


@cache
def load_table(name: str) -> ReplayTable:
    """The replay table ``name`` (read once per process)."""
    with gzip.open(TABLES_DIR / f"{name}.json.gz", "rt") as handle:
        raw = json.load(handle)
    grid = {k: list(v) for k, v in raw["grid"].items()}
    curves = {tuple(p["params"][n] for n in grid): p["epochs"] for p in raw["points"]}
    return ReplayTable(
        name=raw["name"],
        grid=grid,
        epochs=int(raw["epochs"]),
        metrics=tuple(raw["objective_metrics"]),
        curves=curves,
        how=raw.get("how", {}),
    )


def replay_problem(spec: StudySpec) -> Broken | None:
    """Where a replay study asks for something its table did not record: a parameter outside
    the grid, a value off it, more epochs, or a metric it lacks."""
    if spec.task.model != REPLAY_MODEL:
        return None
    table = load_table(str(spec.task.dataset.name))
    shown = f"table {table.name}"
    for name in spec.search_space:
        if name not in table.grid:
            return ("search_space", name), f"{shown} does not vary {name}; its grid: {_grid(table)}"
    for name in spec.task.hyperparameters:
        if name not in table.grid:
            return ("task", "hyperparameters", name), (
                f"{shown} was recorded with one {name}; its grid: {_grid(table)}"
            )
    for name, values in table.grid.items():
        param = spec.search_space.get(name)
        if param is not None and not isinstance(param, CategoricalParam):
            return ("search_space", name), (
                f"a replay searches the grid: make {name} categorical over {_values(values)}"
            )
        options: list[tuple[tuple[str | int, ...], Any]]
        if param is not None:
            options = [(("search_space", name), v) for v in param.choices]
        elif name in spec.task.hyperparameters:
            options = [(("task", "hyperparameters", name), spec.task.hyperparameters[name])]
        else:
            default = TUNABLES[name].default
            if not any(_same(default, v) for v in values):
                return ("search_space",), (
                    f"{name} is neither searched nor fixed, and its default {default!r} is not "
                    f"in {shown}'s grid: {_values(values)}"
                )
            options = []
        for loc, value in options:
            if not any(_same(value, v) for v in values):
                return loc, f"{name}={value!r} is not in {shown}'s grid: {_values(values)}"
    if spec.task.epochs > table.epochs:
        return ("task", "epochs"), f"{shown} recorded {table.epochs} epochs, not {spec.task.epochs}"
    named: list[tuple[tuple[str | int, ...], str]]
    named = [(("objectives", i, "metric"), g.metric) for i, g in enumerate(spec.goals)]
    named += [(("constraints", i, "metric"), c.metric) for i, c in enumerate(spec.constraints)]
    if spec.scheduler.metric is not None:
        named.append((("scheduler", "metric"), spec.scheduler.metric))
    for loc, metric in named:
        if metric not in table.metrics and metric not in _COST_METRICS:
            return loc, f"{shown} recorded {', '.join(table.metrics)}, not {metric}"
    return None


# Cost metrics a replay reports (device_seconds from the recorded seconds).
_COST_METRICS = ("device_seconds", "wall_time_s", "time_to_first_result_s")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or isinstance(b, str):
        return bool(a == b)
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0) or a == b
    except (TypeError, ValueError):
        return bool(a == b)


def _values(values: list[Any]) -> str:
    return "[" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values) + "]"


def _grid(table: ReplayTable) -> str:
    return "; ".join(f"{name} {_values(values)}" for name, values in table.grid.items())
