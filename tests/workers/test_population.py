"""Population scheduling pieces without a cluster: PBT's mutations and clipping drawn from the
search space, its tie rule, the epochs a paused trial trained, and the winner's schedule."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

from search_spaces.spec import validate_spec
from service.population import is_paused, schedule
from service.store.trials import TrialRecord
from workers.population import LineagePBT, bounds, make_pbt, mutations, within_space
from workers.search import _RunCount

SPEC = validate_spec(
    {
        "name": "unit",
        "algorithm": "random",
        "scheduler": {"type": "pbt"},
        "budget": {"n_trials": 4, "max_concurrent_trials": 4},
        "task": {"model": "tiny-bert", "epochs": 4},
        "search_space": {
            "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True},
            "warmup_ratio": {"type": "float", "low": 0.0, "high": 0.2, "step": 0.05},
            "gradient_accumulation_steps": {"type": "int", "low": 1, "high": 4},
            "batch_size": {"type": "categorical", "choices": [16, 32]},
            "seed": {"type": "categorical", "choices": [1, 2]},
        },
    }
)


def test_mutations_cover_the_explored_space_and_never_the_weights_seed() -> None:
    found = mutations(SPEC)
    assert set(found) == {
        "learning_rate",
        "warmup_ratio",
        "gradient_accumulation_steps",
        "batch_size",
    }
    assert found["batch_size"] == [16, 32]
    random.seed(0)
    rates = [found["learning_rate"].sample() for _ in range(200)]
    assert all(1e-5 <= r <= 1e-3 for r in rates)
    steps = {found["gradient_accumulation_steps"].sample() for _ in range(200)}
    assert steps == {1, 2, 3, 4}  # Tune's upper bound is exclusive: high is included here


def test_explored_values_are_clipped_into_the_range_and_onto_the_step() -> None:
    clip = within_space(SPEC)
    out = clip(
        {
            "learning_rate": 5e-3,  # x1.2 past the high bound
            "warmup_ratio": 0.13,
            "gradient_accumulation_steps": 0.8,
            "batch_size": 16,
            "seed": 2,
        }
    )
    assert out["learning_rate"] == 1e-3
    assert abs(out["warmup_ratio"] - 0.15) < 1e-12
    assert out["gradient_accumulation_steps"] == 1 and isinstance(
        out["gradient_accumulation_steps"], int
    )
    assert out["batch_size"] == 16 and out["seed"] == 2


def test_pb2_bounds_are_the_numeric_ranges() -> None:
    numeric = validate_spec(
        {
            **SPEC.model_dump(mode="json", exclude_none=True),
            "scheduler": {"type": "pb2"},
            "search_space": {
                "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-3},
                "weight_decay": {"type": "float", "low": 0.0, "high": 0.3},
            },
        }
    )
    assert bounds(numeric) == {"learning_rate": [1e-5, 1e-3], "weight_decay": [0.0, 0.3]}
    assert type(make_pbt(numeric, "eval_loss", "min", None)).__name__ == "LineagePB2"


class _Member:
    """What PBT's quantiles read of a Tune trial."""

    def is_finished(self) -> bool:
        return False


def test_a_trial_tied_with_the_upper_quantile_is_not_replaced() -> None:
    pbt = make_pbt(SPEC, "eval_loss", "min", None)
    assert isinstance(pbt, LineagePBT)
    trials = [_Member() for _ in range(4)]
    scores = [-0.5, -0.5, -0.7, -0.5]  # three share the best weights' loss
    for trial, score in zip(trials, scores, strict=True):
        pbt._trial_state[trial] = SimpleNamespace(last_score=score)  # type: ignore[index]
    lower, upper = pbt._quantiles()
    assert lower == [trials[2]] and len(upper) == 1
    for trial in trials:
        pbt._trial_state[trial].last_score = -0.5  # type: ignore[index]
    lower, upper = pbt._quantiles()
    assert lower == [] and len(upper) == 1  # all tied: nobody copies an identical score


def test_epochs_trained_add_up_across_the_runs_a_pause_splits_a_trial_into() -> None:
    runs = _RunCount()
    assert [runs.count(n, {"timestamp": n, "training_iteration": n}) for n in (1, 2)] == [1, 2]
    assert runs.count(2, {"timestamp": 2, "training_iteration": 2}) == 2  # the same report again
    runs.paused = True
    # Resumed from its epoch-2 checkpoint: the new run counts from 1 again.
    assert runs.count(1, {"timestamp": 10, "training_iteration": 3}) == 3
    assert runs.count(2, {"timestamp": 11, "training_iteration": 4}) == 4
    retried = _RunCount()  # a retry (no pause) restarts counting: only this run's epochs
    retried.count(2, {"timestamp": 1, "training_iteration": 2})
    assert retried.count(1, {"timestamp": 5, "training_iteration": 3}) == 1


def _record(number: int, params: dict[str, Any], lineage: list[dict[str, Any]]) -> TrialRecord:
    return TrialRecord(number, "COMPLETE", params, [0.5], {}, {"lineage": lineage}, None, None)


def test_the_winners_schedule_follows_each_exploit_back_to_its_source() -> None:
    root = _record(0, {"learning_rate": 1e-4}, [])
    middle = _record(
        1,
        {"learning_rate": 3e-4},
        [{"epoch": 1, "from_trial": 0, "params": {"learning_rate": 2e-4}}],
    )
    winner = _record(
        2,
        {"learning_rate": 5e-4},
        [
            {"epoch": 1, "from_trial": 0, "params": {"learning_rate": 1e-4}},
            {"epoch": 3, "from_trial": 1, "params": {"learning_rate": 6e-4}},
        ],
    )
    by_number = {r.number: r for r in (root, middle, winner)}
    assert schedule(winner, by_number) == [
        {"from_epoch": 0, "trial": 0, "params": {"learning_rate": 1e-4}},
        {"from_epoch": 1, "trial": 1, "params": {"learning_rate": 2e-4}},
        {"from_epoch": 3, "trial": 2, "params": {"learning_rate": 6e-4}},
    ]
    assert schedule(root, by_number) == [
        {"from_epoch": 0, "trial": 0, "params": {"learning_rate": 1e-4}}
    ]


def test_only_a_running_trial_marked_paused_is_paused() -> None:
    assert is_paused("RUNNING", {"paused": True})
    assert not is_paused("RUNNING", {"paused": False})
    assert not is_paused("COMPLETE", {"paused": True})
