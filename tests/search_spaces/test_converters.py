"""Converters: parameter types → Optuna distributions, grids, and trial hyperparameters."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from search_spaces.algorithms import make_sampler
from search_spaces.converters import grid_points, to_distributions, to_grid, trial_hyperparameters
from search_spaces.spec import validate_spec


def _spec(space: dict[str, Any], **extra: Any) -> Any:
    return validate_spec({"name": "c", "search_space": space, **extra})


def test_each_type_maps_to_its_distribution() -> None:
    spec = _spec(
        {
            "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True},
            "weight_decay": {"type": "float", "low": 0.0, "high": 0.1, "step": 0.05},
            "epochs": {"type": "int", "low": 1, "high": 5, "step": 2},
            "seed": {"type": "int", "low": 1, "high": 64, "log": True},
            "optimizer": {"type": "categorical", "choices": ["adamw", "sgd"]},
        }
    )
    d = to_distributions(spec)
    assert d["learning_rate"] == FloatDistribution(1e-5, 1e-3, log=True)
    assert d["weight_decay"] == FloatDistribution(0.0, 0.1, step=0.05)
    assert d["epochs"] == IntDistribution(1, 5, step=2)
    assert d["seed"] == IntDistribution(1, 64, log=True)
    assert d["optimizer"] == CategoricalDistribution(["adamw", "sgd"])
    assert list(d) == list(spec.search_space)


def test_grid_values_size_and_order() -> None:
    spec = _spec(
        {
            "weight_decay": {"type": "float", "low": 0.0, "high": 0.3, "step": 0.1},
            "epochs": {"type": "int", "low": 1, "high": 5, "step": 2},
            "optimizer": {"type": "categorical", "choices": ["sgd", "adamw"]},
        },
        algorithm="grid",
        budget={"n_trials": 24},
    )
    grid = to_grid(spec)
    assert grid == {
        "weight_decay": [0.0, 0.1, 0.2, 0.3],
        "epochs": [1, 3, 5],
        "optimizer": ["sgd", "adamw"],
    }
    points = grid_points(spec)
    assert len(points) == spec.grid_size() == 24
    assert points[0] == {"weight_decay": 0.0, "epochs": 1, "optimizer": "sgd"}
    assert points[1] == {"weight_decay": 0.0, "epochs": 1, "optimizer": "adamw"}
    assert points[-1] == {"weight_decay": 0.3, "epochs": 5, "optimizer": "adamw"}
    assert len({tuple(p.values()) for p in points}) == 24


def test_grid_sampler_visits_every_point_once() -> None:
    spec = _spec(
        {
            "batch_size": {"type": "categorical", "choices": [8, 16, 32]},
            "epochs": {"type": "int", "low": 1, "high": 2},
        },
        algorithm="grid",
        algorithm_settings={"seed": 3},
        budget={"n_trials": 6},
    )
    sampler = make_sampler(spec.algorithm, spec.algorithm_settings, lambda: to_grid(spec))
    study = optuna.create_study(sampler=sampler)
    seen = []
    for _ in range(6):  # ask/tell as Ray Tune does it, no study.optimize
        trial = study.ask(to_distributions(spec))
        seen.append((trial.params["batch_size"], trial.params["epochs"]))
        study.tell(trial, 0.5)
    assert sorted(seen) == sorted((p["batch_size"], p["epochs"]) for p in grid_points(spec))


@pytest.mark.parametrize("algorithm", ["random", "tpe"])
def test_seeded_samplers_repeat_their_sequence(algorithm: str) -> None:
    spec = _spec(
        {"learning_rate": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True}},
        algorithm=algorithm,
        algorithm_settings={"seed": 7},
    )

    def sequence() -> list[float]:
        sampler = make_sampler(spec.algorithm, spec.algorithm_settings, lambda: to_grid(spec))
        study = optuna.create_study(sampler=sampler)
        values = []
        for i in range(12):
            trial = study.ask(to_distributions(spec))
            values.append(trial.params["learning_rate"])
            study.tell(trial, float(i % 3))
        return values

    assert sequence() == sequence()


def test_trial_hyperparameters_layer_defaults_task_and_sample() -> None:
    spec = _spec(
        {"learning_rate": {"type": "float", "low": 1e-5, "high": 1e-3}},
        task={"epochs": 3, "max_seq_length": 48, "hyperparameters": {"weight_decay": 0.01}},
    )
    hp = trial_hyperparameters(spec, {"learning_rate": 2e-4})
    assert hp["learning_rate"] == 2e-4
    assert hp["epochs"] == 3 and isinstance(hp["epochs"], int)
    assert hp["max_seq_length"] == 48
    assert hp["weight_decay"] == 0.01
    assert hp["optimizer"] == "adamw"
