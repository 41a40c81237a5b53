"""The rules of the schedulers that pause trials: each bad spec names its field and reason."""

from __future__ import annotations

from typing import Any

import pytest

from search_spaces.pausing import checkpoints_kept, explored_names, largest_bracket
from search_spaces.spec import validate_spec
from tests.search_spaces.test_spec_validation import changed, first_problem

POPULATION: dict[str, Any] = {
    "name": "unit",
    "algorithm": "random",
    "scheduler": {"type": "pbt"},
    "budget": {"n_trials": 4, "max_concurrent_trials": 4},
    "task": {"model": "tiny-bert", "epochs": 4},
    "search_space": {
        "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True},
        "seed": {"type": "categorical", "choices": [1, 2]},
    },
}


def _with(**changes: Any) -> dict[str, Any]:
    return changed(POPULATION, **changes)


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        (_with(task__model="toy"), "scheduler.type", "which the toy objective does not write"),
        (_with(checkpoint={"every_epochs": 0}), "checkpoint.every_epochs", "at least 1"),
        (
            _with(budget={"n_trials": 4, "max_concurrent_trials": 1}),
            "budget.max_concurrent_trials",
            "give at least 2",
        ),
        (
            _with(budget={"n_trials": 8, "max_concurrent_trials": 4}),
            "budget.n_trials",
            "must equal it",
        ),
        (
            _with(scheduler={"type": "pbt", "perturbation_interval": 4}),
            "scheduler.perturbation_interval",
            "give fewer than the trials' 4 epochs",
        ),
        (
            _with(search_space={"seed": {"type": "categorical", "choices": [1, 2]}}),
            "search_space",
            "every searched one is fixed by the weights",
        ),
        (
            _with(
                scheduler={"type": "pb2"},
                search_space={"batch_size": {"type": "categorical", "choices": [16, 32]}},
            ),
            "search_space.batch_size",
            "pb2 explores numeric ranges",
        ),
        (
            _with(
                scheduler={"type": "hyperband_sync", "reduction_factor": 2},
                budget={"n_trials": 8, "max_concurrent_trials": 2},
            ),
            "budget.max_concurrent_trials",
            "give at least 4",
        ),
        (
            _with(scheduler={"type": "pbt", "quantile_fraction": 0.75}),
            "scheduler.quantile_fraction",
            "",
        ),
    ],
)
def test_each_broken_pausing_spec_names_its_field(
    data: dict[str, Any], field: str, reason: str
) -> None:
    got_field, got_reason = first_problem(data)
    assert got_field == field
    assert reason in got_reason


def test_valid_population_and_bracket_specs_pass() -> None:
    spec = validate_spec(POPULATION)
    assert explored_names(spec) == ["learning_rate"]  # the seed comes with the weights
    # Every checkpoint is kept: an exploit may copy one written epochs ago.
    assert checkpoints_kept(spec) == 4
    hyperband = validate_spec(
        _with(
            scheduler={"type": "hyperband_sync", "reduction_factor": 2},
            budget={"n_trials": 8, "max_concurrent_trials": 4},
        )
    )
    assert checkpoints_kept(hyperband) == hyperband.checkpoint.keep


@pytest.mark.parametrize(
    ("epochs", "factor", "size"), [(4, 2, 4), (10, 3, 9), (1, 2, 1), (3, 3, 3), (2, 2, 2)]
)
def test_largest_bracket_matches_ray_tunes_sizing(epochs: int, factor: float, size: int) -> None:
    from ray.tune.schedulers import HyperBandScheduler

    scheduler = HyperBandScheduler(max_t=epochs, reduction_factor=factor)
    brackets = scheduler._s_max_1
    ray_sizes = [scheduler._get_n0(s) for s in range(brackets) if scheduler._get_r0(s) >= 1]
    assert largest_bracket(epochs, factor) == max(ray_sizes) == size
