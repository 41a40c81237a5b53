"""The spec's scheduler maps to the Ray Tune scheduler with its settings."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import (
    AsyncHyperBandScheduler,
    FIFOScheduler,
    HyperBandForBOHB,
    HyperBandScheduler,
    MedianStoppingRule,
    PopulationBasedTraining,
)
from ray.tune.schedulers.pb2 import PB2

from search_spaces.spec import validate_spec
from workers.schedulers import make_scheduler


def _spec(scheduler: dict[str, object], **extra: object) -> object:
    return validate_spec(
        {
            "name": "s",
            "task": {"epochs": 8},
            "scheduler": scheduler,
            "search_space": {"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2}},
            **extra,
        }
    )


@pytest.mark.parametrize(
    ("scheduler", "kind", "brackets"),
    [
        ({"type": "none"}, FIFOScheduler, None),
        ({"type": "asha", "reduction_factor": 2}, AsyncHyperBandScheduler, 1),
        ({"type": "hyperband", "reduction_factor": 2}, AsyncHyperBandScheduler, 4),  # 8 = 2^3
        ({"type": "median", "grace_period": 2}, MedianStoppingRule, None),
    ],
)
def test_scheduler_mapping(scheduler: dict[str, object], kind: type, brackets: int | None) -> None:
    made = make_scheduler(_spec(scheduler))  # type: ignore[arg-type]
    assert isinstance(made, kind)
    if brackets is not None:
        assert len(made._brackets) == brackets  # type: ignore[attr-defined]
        assert made._max_t == 8  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("scheduler", "objective", "metric", "mode"),
    [
        ({"type": "asha"}, None, "eval_accuracy", "max"),  # the objective by default
        ({"type": "asha"}, {"metric": "eval_loss"}, "eval_loss", "min"),
        # The objective's own direction, where it overrode the metric's usual one.
        (
            {"type": "median"},
            {"metric": "eval_accuracy", "direction": "minimize"},
            "eval_accuracy",
            "min",
        ),
        ({"type": "asha", "metric": "eval_loss"}, None, "eval_loss", "min"),  # its usual direction
        ({"type": "hyperband", "metric": "train_loss"}, None, "train_loss", "min"),
        ({"type": "median", "metric": "eval_f1"}, {"metric": "eval_loss"}, "eval_f1", "max"),
        (
            {"type": "asha", "metric": "eval_loss", "direction": "maximize"},
            None,
            "eval_loss",
            "max",
        ),
    ],
)
def test_scheduler_compares_the_stopping_metric(
    scheduler: dict[str, object], objective: dict[str, str] | None, metric: str, mode: str
) -> None:
    extra = {"objective": objective} if objective else {}
    made = make_scheduler(_spec(scheduler, **extra))  # type: ignore[arg-type]
    assert made.metric == metric
    assert made._mode == mode  # type: ignore[attr-defined]


def _brackets_drawn(seed: int, global_seed: int, n_trials: int = 40) -> list[int]:
    """The bracket index of each of ``n_trials`` trials added to a seeded study's HyperBand."""
    settings = {"seed": seed}
    made = make_scheduler(_spec({"type": "hyperband"}, algorithm_settings=settings))  # type: ignore[arg-type]
    np.random.seed(global_seed)  # Ray's own draw uses NumPy's global state
    brackets = made._brackets  # type: ignore[attr-defined]
    drawn = []
    for number in range(n_trials):
        made.on_trial_add(None, SimpleNamespace(trial_id=str(number)))  # type: ignore[arg-type]
        drawn.append(brackets.index(made._trial_info[str(number)]))  # type: ignore[attr-defined]
    return drawn


def test_hyperband_brackets_follow_the_study_seed() -> None:
    first = _brackets_drawn(seed=3, global_seed=0)
    assert _brackets_drawn(seed=3, global_seed=1) == first  # NumPy's global state plays no part
    assert _brackets_drawn(seed=4, global_seed=0) != first
    assert first.count(0) > first.count(3)  # the bracket with the most rungs draws the most


@pytest.mark.parametrize(
    ("scheduler", "kind", "trials"),
    [  # all at once: a bracket of Hyperband's (8 epochs, a factor of 2), or the population
        ({"type": "hyperband_sync", "reduction_factor": 2}, HyperBandScheduler, 8),
        ({"type": "bohb", "reduction_factor": 2}, HyperBandForBOHB, 8),
        ({"type": "pbt", "perturbation_interval": 2}, PopulationBasedTraining, 4),
        ({"type": "pb2", "perturbation_interval": 2}, PB2, 4),
    ],
)
def test_pausing_scheduler_mapping(scheduler: dict[str, object], kind: type, trials: int) -> None:
    budget = {"n_trials": trials, "max_concurrent_trials": trials}
    made = make_scheduler(_spec(scheduler, budget=budget), sink=lambda *step: None)  # type: ignore[arg-type]
    assert isinstance(made, kind)
    if kind is HyperBandScheduler:
        assert not isinstance(made, HyperBandForBOHB)
        assert made._max_t_attr == 8  # type: ignore[attr-defined]
    if issubclass(kind, PopulationBasedTraining):
        assert made._perturbation_interval == 2  # type: ignore[attr-defined]
        assert made._sink is not None  # type: ignore[attr-defined]


def test_synchronous_hyperband_never_leaves_the_study_with_only_paused_trials() -> None:
    """Ray's bracket bookkeeping can leave a trial paused with nothing else to run; the
    scheduler then resumes it rather than let the study hang."""
    made = make_scheduler(
        _spec(
            {"type": "hyperband_sync", "reduction_factor": 2},
            budget={"n_trials": 8, "max_concurrent_trials": 8},
        )
    )  # type: ignore[arg-type]
    paused = SimpleNamespace(status=Trial.PAUSED)
    done = SimpleNamespace(status=Trial.TERMINATED)
    running = SimpleNamespace(status=Trial.RUNNING)
    stalled = SimpleNamespace(get_trials=lambda: [done, paused])
    assert made.choose_trial_to_run(stalled) is paused
    busy = SimpleNamespace(get_trials=lambda: [running, paused])
    assert made.choose_trial_to_run(busy) is None  # Ray's own choice (none) while one runs
