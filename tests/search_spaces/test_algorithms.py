"""The algorithm table, new spec rules (objectives, constraints, schedulers, conditions, points)
and the define-by-run conditional space."""

from __future__ import annotations

import copy
from typing import Any

import optuna
import pytest

from search_spaces.algorithms import ALGORITHMS, make_sampler
from search_spaces.constraints import MetricConstraints
from search_spaces.converters import ConditionalSpace, search_space_for_optuna, to_grid
from search_spaces.spec import SpecError, validate_spec

SPACE: dict[str, Any] = {
    "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
    "weight_decay": {"type": "float", "low": 0.0, "high": 0.1},
    "epochs": {"type": "int", "low": 1, "high": 4},
}
CONDITIONAL: dict[str, Any] = {
    "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
    "optimizer": {"type": "categorical", "choices": ["adamw", "sgd"]},
    "momentum": {"type": "float", "low": 0.5, "high": 0.99, "when": {"optimizer": "sgd"}},
    "adam_beta2": {"type": "float", "low": 0.9, "high": 0.999, "when": {"optimizer": "adamw"}},
}


def spec(**fields: Any) -> Any:
    data = {"name": "alg", "search_space": copy.deepcopy(SPACE), **fields}
    return validate_spec(data)


def problem(**fields: Any) -> tuple[str, str]:
    with pytest.raises(SpecError) as caught:
        spec(**fields)
    first = caught.value.problems[0]
    return first.field, first.reason


def sequence(algorithm: str, settings: dict[str, Any], n: int = 8) -> list[dict[str, Any]]:
    """Configurations a sampler proposes under ask/tell (as Ray Tune drives it)."""
    chosen = spec(algorithm=algorithm, algorithm_settings=settings)
    sampler = make_sampler(algorithm, chosen.algorithm_settings, lambda: to_grid(chosen))
    directions = ["maximize", "minimize"] if algorithm == "nsga2" else ["maximize"]
    study = optuna.create_study(sampler=sampler, directions=directions)
    space = search_space_for_optuna(chosen)
    proposals = []
    for i in range(n):
        trial = study.ask(space)  # type: ignore[arg-type]
        proposals.append(dict(trial.params))
        value = -((trial.params["learning_rate"] * 1000 - 1) ** 2) + i * 1e-3
        study.tell(trial, [value, trial.params["weight_decay"]][: len(directions)])
    return proposals


@pytest.mark.parametrize("algorithm", ["random", "qmc", "tpe", "gp", "cmaes", "nsga2"])
def test_every_algorithm_proposes_valid_points_and_repeats_with_its_seed(algorithm: str) -> None:
    settings: dict[str, Any] = {"seed": 11}
    if algorithm in ("tpe", "gp"):
        settings["n_startup_trials"] = 3
    first = sequence(algorithm, settings)
    assert first == sequence(algorithm, settings)
    assert first != sequence(algorithm, {**settings, "seed": 12})
    chosen = spec()
    for point in first:
        assert chosen.point_problem(point) is None


def test_resumed_attempts_get_a_different_seed() -> None:
    chosen = spec(algorithm="random", algorithm_settings={"seed": 3})
    first = make_sampler("random", chosen.algorithm_settings, dict, attempt=1)
    second = make_sampler("random", chosen.algorithm_settings, dict, attempt=2)
    space = search_space_for_optuna(chosen)
    a = optuna.create_study(sampler=first).ask(space).params  # type: ignore[arg-type]
    b = optuna.create_study(sampler=second).ask(space).params  # type: ignore[arg-type]
    assert a != b


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        (
            {
                "algorithm": "cmaes",
                "objectives": [{"metric": "eval_accuracy"}, {"metric": "eval_loss"}],
            },
            "algorithm",
            "cannot optimise several objectives",
        ),
        (
            {"objective": {"metric": "eval_f1"}, "objectives": [{"metric": "eval_loss"}]},
            "objectives",
            "not both",
        ),
        ({"objectives": [{"metric": "eval_loss"}, {"metric": "eval_loss"}]}, "objectives", "once"),
        (
            {"algorithm": "random", "constraints": [{"metric": "eval_loss", "max": 1}]},
            "constraints",
            "does not support constraints",
        ),
        ({"constraints": [{"metric": "eval_loss"}]}, "constraints.0", "give max, min or both"),
        (
            {
                "scheduler": {"type": "asha"},
                "task": {"epochs": 1},
                "search_space": {"learning_rate": SPACE["learning_rate"]},
            },
            "scheduler.type",
            "needs per-epoch reports",
        ),
        ({"scheduler": {"type": "asha", "grace_period": 4}}, "scheduler.grace_period", "below"),
        (
            {
                "scheduler": {"type": "hyperband"},
                "objectives": [{"metric": "eval_accuracy"}, {"metric": "eval_loss"}],
            },
            "scheduler.type",
            "single objective",
        ),
        ({"scheduler": {"type": "random_stop"}}, "scheduler.type", "Input should be"),
        (
            {"algorithm_settings": {"constant_liar": "maybe"}},
            "algorithm_settings.constant_liar",
            "valid boolean",
        ),
        (
            {"algorithm": "qmc", "algorithm_settings": {"qmc_type": "lattice"}},
            "algorithm_settings.qmc_type",
            "pattern",
        ),
        (
            {"algorithm": "cmaes", "algorithm_settings": {"restart_strategy": "forever"}},
            "algorithm_settings.restart_strategy",
            "pattern",
        ),
        (
            {"algorithm": "nsga2", "algorithm_settings": {"population_size": 1}},
            "algorithm_settings.population_size",
            "greater than or equal to 2",
        ),
        (
            {"points_to_evaluate": [{"learning_rate": 1.0, "weight_decay": 0.0, "epochs": 1}]},
            "points_to_evaluate.0",
            "learning_rate=1.0 is outside its range",
        ),
        ({"points_to_evaluate": [{"learning_rate": 1e-3}]}, "points_to_evaluate.0", "missing"),
        ({"points_to_evaluate": [{"colour": 1}]}, "points_to_evaluate.0", "not in the search"),
        ({"warm_start": {"from_study": "x", "top_k": 0}}, "warm_start.top_k", "greater than"),
    ],
)
def test_invalid_settings_name_their_field(fields: dict[str, Any], field: str, reason: str) -> None:
    found_field, found_reason = problem(**fields)
    assert found_field == field
    assert reason in found_reason


@pytest.mark.parametrize(
    ("when", "field", "reason"),
    [
        ({"learning_rate": 0.1}, "search_space.momentum.when.learning_rate", "categorical"),
        ({"nothing": "x"}, "search_space.momentum.when.nothing", "categorical"),
        ({"optimizer": "lion"}, "search_space.momentum.when.optimizer", "not one of"),
    ],
)
def test_conditions_must_name_a_categorical_and_one_of_its_choices(
    when: dict[str, Any], field: str, reason: str
) -> None:
    space = copy.deepcopy(CONDITIONAL)
    space["momentum"]["when"] = when
    with pytest.raises(SpecError) as caught:
        validate_spec({"name": "c", "search_space": space})
    assert caught.value.problems[0].field == field
    assert reason in caught.value.problems[0].reason


def test_grid_rejects_conditions() -> None:
    space = {
        "optimizer": {"type": "categorical", "choices": ["adamw", "sgd"]},
        "momentum": {
            "type": "float",
            "low": 0.5,
            "high": 0.9,
            "step": 0.2,
            "when": {"optimizer": "sgd"},
        },
    }
    with pytest.raises(SpecError, match="does not support conditional"):
        validate_spec(
            {"name": "g", "algorithm": "grid", "search_space": space, "budget": {"n_trials": 2}}
        )


def test_conditional_space_samples_only_active_parameters() -> None:
    chosen = validate_spec({"name": "c", "search_space": CONDITIONAL})
    space = search_space_for_optuna(chosen)
    assert isinstance(space, ConditionalSpace)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(40):
        trial = study.ask()
        space(trial)
        params = trial.params
        seen.add(params["optimizer"])
        assert ("momentum" in params) == (params["optimizer"] == "sgd")
        assert ("adam_beta2" in params) == (params["optimizer"] == "adamw")
        assert chosen.point_problem(params) is None
        study.tell(trial, 0.0)
    assert seen == {"adamw", "sgd"}


def test_metric_constraints_follow_optunas_sign_rule() -> None:
    rule = MetricConstraints([("eval_loss", 0.5, None), ("eval_accuracy", None, 0.8)])

    class Trial:
        def __init__(self, metrics: dict[str, float]) -> None:
            self.user_attrs = {"metrics": metrics}

    assert rule(Trial({"eval_loss": 0.4, "eval_accuracy": 0.9})) == pytest.approx([-0.1, -0.1])
    assert all(v > 0 for v in rule(Trial({"eval_loss": 0.7, "eval_accuracy": 0.7})))
    assert all(v > 0 for v in rule(Trial({})))


def test_every_algorithm_has_settings_and_a_summary() -> None:
    for name, algorithm in ALGORITHMS.items():
        assert algorithm.summary, name
        assert "seed" in algorithm.settings.model_fields


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_every_sampler_survives_the_pickle_tune_makes(name: str) -> None:
    """Tune pickles its search algorithm, sampler included, when the Tuner starts (Optuna 5.1's
    NSGA-II holds a lock that broke it); the copy keeps sampling."""
    from ray import cloudpickle

    grid = {"learning_rate": [1e-4, 1e-3], "weight_decay": [0.0, 0.1]}
    sampler = make_sampler(name, {"seed": 1}, lambda: grid)
    restored = cloudpickle.loads(cloudpickle.dumps(sampler))
    assert type(restored) is type(sampler)
    directions = ["maximize", "maximize"] if name == "nsga2" else ["maximize"]
    study = optuna.create_study(directions=directions, sampler=restored)
    for _ in range(3):
        trial = study.ask()
        lr = trial.suggest_float("learning_rate", 1e-4, 1e-3, log=True)
        wd = trial.suggest_float("weight_decay", 0.0, 0.1)
        study.tell(trial, [lr, wd] if len(directions) == 2 else lr + wd)
    assert len(study.trials) == 3
