"""Algorithms, early stopping, multi-objective, conditions, warm start, importance — real
studies of the cheap built-in ``toy`` objective through Ray jobs, Tune and Optuna's tables."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from search_spaces.spec import validate_spec
from tests.conftest import (
    TOY_SPACE,
    Server,
    attached_server,
    ranked_points,
    toy_spec,
    wait_final,
)
from workers.schedulers import make_scheduler

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SPACE = TOY_SPACE
GRID_SPACE: dict[str, Any] = {
    "learning_rate": {"type": "categorical", "choices": [1e-4, 1e-3]},
    "weight_decay": {"type": "float", "low": 0.0, "high": 0.1, "step": 0.1},
}
CONDITIONAL: dict[str, Any] = {
    "learning_rate": SPACE["learning_rate"],
    "optimizer": {"type": "categorical", "choices": ["adamw", "sgd"]},
    "momentum": {"type": "float", "low": 0.5, "high": 0.99, "when": {"optimizer": "sgd"}},
}
TWO_GOALS = [
    {"metric": "eval_accuracy", "direction": "maximize"},
    {"metric": "train_samples_per_second", "direction": "maximize"},
]


def toy(name: str, n_trials: int = 4, epochs: int = 2, **extra: Any) -> dict[str, Any]:
    return toy_spec(name, n_trials, epochs, **extra)


STUDIES: dict[str, dict[str, Any]] = {
    "grid": toy("grid", algorithm="grid", algorithm_settings={"seed": 1}, search_space=GRID_SPACE),
    "random": toy("random"),
    "qmc": toy("qmc", algorithm="qmc", algorithm_settings={"seed": 1}),
    "tpe": toy(
        "tpe",
        algorithm="tpe",
        algorithm_settings={"seed": 1, "n_startup_trials": 2},
        constraints=[{"metric": "eval_loss", "max": 0.6}],
    ),
    "gp": toy("gp", algorithm="gp", algorithm_settings={"seed": 1, "n_startup_trials": 2}),
    "cmaes": toy("cmaes", algorithm="cmaes", algorithm_settings={"seed": 1}),
    "nsga2": toy(
        "nsga2",
        n_trials=6,
        algorithm="nsga2",
        algorithm_settings={"seed": 1, "population_size": 4},
        objectives=TWO_GOALS,
        search_space={**SPACE, "batch_size": {"type": "categorical", "choices": [8, 32, 128]}},
    ),
    # Three trials in flight, then each new one behind every trial that reported before it.
    "asha": toy(
        "asha",
        n_trials=6,
        epochs=4,
        algorithm_settings={"seed": 9},
        points_to_evaluate=ranked_points(6),
        scheduler={"type": "asha", "grace_period": 1, "reduction_factor": 2},
        budget={"n_trials": 6, "max_concurrent_trials": 3},
    ),
    # One trial at a time, each worse than the one before: with the seed fixing each trial's
    # bracket (seed 9: brackets 1, 0, 0, 1, 1, 2), a later trial meeting an earlier one at a
    # rung below the last is stopped there, on every run.
    "hyperband": toy(
        "hyperband",
        n_trials=6,
        epochs=4,
        algorithm_settings={"seed": 9},
        points_to_evaluate=ranked_points(6),
        scheduler={"type": "hyperband", "reduction_factor": 2},
        budget={"n_trials": 6, "max_concurrent_trials": 1},
    ),
    # The same two trials in the same order, ASHA comparing them on accuracy (the objective)
    # or on throughput: batch 8 is the more accurate and the slower of the two.
    **{
        key: toy(
            key,
            n_trials=2,
            epochs=4,
            search_space={**SPACE, "batch_size": {"type": "categorical", "choices": [8, 64]}},
            points_to_evaluate=[
                {"learning_rate": 1e-3, "weight_decay": 0.01, "batch_size": 64},
                {"learning_rate": 1e-3, "weight_decay": 0.01, "batch_size": 8},
            ],
            scheduler={"type": "asha", "grace_period": 1, "reduction_factor": 2, **metric},
        )
        for key, metric in (
            ("asha_on_objective", {}),
            ("asha_on_throughput", {"metric": "train_samples_per_second"}),
        )
    },
    "conditional": toy("conditional", n_trials=6, epochs=1, search_space=CONDITIONAL),
    "median": toy(
        "median",
        n_trials=8,
        epochs=4,
        algorithm_settings={"seed": 9},
        points_to_evaluate=ranked_points(8),
        scheduler={"type": "median", "grace_period": 1, "min_samples_required": 2},
    ),
}


@pytest.fixture(scope="module")
def toy_api(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    root: Path = tmp_path_factory.mktemp("algorithms")
    env = {"HPO_MAX_RUNNING_STUDIES": "4", "HPO_TOY_EPOCH_SECONDS": "0.3"}
    with (
        attached_server(root, f"sqlite:///{root / 'hpo.db'}", server, env) as running,
        httpx.Client(base_url=running.url, timeout=60) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def finished(toy_api: httpx.Client) -> dict[str, dict[str, Any]]:
    ids = {}
    for key, spec in STUDIES.items():
        response = toy_api.post("/studies", json=spec)
        assert response.status_code == 201, f"{key}: {response.text}"
        ids[key] = response.json()["id"]
    return {key: wait_final(toy_api, study_id) for key, study_id in ids.items()}


def trials(client: httpx.Client, study_id: str) -> list[dict[str, Any]]:
    found = client.get(f"/studies/{study_id}/trials", params={"limit": 1000})
    return list(found.json()["data"])


@pytest.mark.parametrize("key", ["grid", "random", "qmc", "tpe", "gp", "cmaes", "nsga2"])
def test_each_algorithm_runs_a_real_study(
    key: str, finished: dict[str, dict[str, Any]], toy_api: httpx.Client
) -> None:
    study = finished[key]
    n_trials = STUDIES[key]["budget"]["n_trials"]
    assert study["status"] == "SUCCEEDED", study["status_reason"]
    found = trials(toy_api, study["id"])
    assert len(found) == n_trials
    assert {t["state"] for t in found} == {"COMPLETE"}
    space = STUDIES[key]["search_space"]
    for trial in found:
        unconditional = {name for name, param in space.items() if "when" not in param}
        assert unconditional <= set(trial["params"]) <= set(space)
        assert len(trial["values"]) == len(STUDIES[key].get("objectives", [None]))


def test_grid_visits_distinct_points(
    finished: dict[str, dict[str, Any]], toy_api: httpx.Client
) -> None:
    found = trials(toy_api, finished["grid"]["id"])
    points = {(t["params"]["learning_rate"], t["params"]["weight_decay"]) for t in found}
    assert len(points) == 4


def _epochs_run(found: list[dict[str, Any]]) -> int:
    return sum(len(t["intermediate_values"]) for t in found)


@pytest.mark.parametrize("key", ["asha", "hyperband", "median"])
def test_schedulers_stop_trials_early_and_record_them_pruned(
    key: str, finished: dict[str, dict[str, Any]], toy_api: httpx.Client
) -> None:
    study = finished[key]
    assert study["status"] == "SUCCEEDED", study["status_reason"]
    found = trials(toy_api, study["id"])
    pruned = [t for t in found if t["state"] == "PRUNED"]
    assert pruned, f"{key} stopped no trial"
    for trial in pruned:
        assert 0 < len(trial["intermediate_values"]) < 4
        assert trial["value"] == list(trial["intermediate_values"].values())[-1]
    for trial in found:  # a complete trial's curve has every epoch (ASHA withholds the last)
        if trial["state"] == "COMPLETE":
            assert sorted(map(int, trial["intermediate_values"])) == [1, 2, 3, 4], trial
            assert trial["value"] == trial["intermediate_values"]["4"]
    baseline = trials(toy_api, finished["random"]["id"])
    assert _epochs_run(baseline) == 4 * 2  # without a scheduler every trial runs every epoch
    assert _epochs_run(found) < STUDIES[key]["budget"]["n_trials"] * 4
    assert study["trial_counts"]["PRUNED"] == len(pruned)


def test_hyperband_stops_the_trials_its_seeded_brackets_say(
    finished: dict[str, dict[str, Any]], toy_api: httpx.Client
) -> None:
    scheduler = make_scheduler(validate_spec(STUDIES["hyperband"]))
    first_in_bracket: dict[int, int] = {}
    expected = []  # trials meeting an earlier (better) one at a rung before the last epoch
    for number in range(6):
        scheduler.on_trial_add(None, SimpleNamespace(trial_id=str(number)))  # type: ignore[arg-type]
        bracket = scheduler._trial_info[str(number)]  # type: ignore[attr-defined]
        if id(bracket) in first_in_bracket and min(m for m, _ in bracket._rungs) < 4:
            expected.append(number)
        first_in_bracket.setdefault(id(bracket), number)
    assert expected  # the seed puts two trials in a bracket that stops early
    found = trials(toy_api, finished["hyperband"]["id"])
    assert [t["number"] for t in found if t["state"] == "PRUNED"] == expected


def test_scheduler_metric_decides_which_trials_stop(
    finished: dict[str, dict[str, Any]], toy_api: httpx.Client
) -> None:
    def small_batch(key: str) -> dict[str, Any]:
        assert finished[key]["status"] == "SUCCEEDED", finished[key]["status_reason"]
        return next(
            t for t in trials(toy_api, finished[key]["id"]) if t["params"]["batch_size"] == 8
        )

    kept, stopped = small_batch("asha_on_objective"), small_batch("asha_on_throughput")
    assert kept["state"] == "COMPLETE"  # more accurate than the first trial after epoch 1
    assert stopped["state"] == "PRUNED"  # slower than the first trial
    assert list(stopped["intermediate_values"]) == ["1"]
    # The objective is still accuracy: the stopped trial's value is its epoch-1 accuracy.
    assert (
        stopped["value"] == kept["intermediate_values"]["1"] == stopped["metrics"]["eval_accuracy"]
    )


def _dominates(a: list[float], b: list[float]) -> bool:
    return all(x >= y for x, y in zip(a, b, strict=True)) and a != b


def test_pareto_front_matches_brute_force(
    finished: dict[str, dict[str, Any]], toy_api: httpx.Client
) -> None:
    study_id = finished["nsga2"]["id"]
    found = trials(toy_api, study_id)
    expected = sorted(
        t["number"]
        for t in found
        if not any(_dominates(o["values"], t["values"]) for o in found if o is not t)
    )
    front = toy_api.get(f"/studies/{study_id}/pareto").json()
    assert sorted(t["number"] for t in front["data"]) == expected
    best = toy_api.get(f"/studies/{study_id}/best").json()
    assert sorted(t["number"] for t in best["data"]) == expected  # the front, not one trial
    single = toy_api.get(f"/studies/{finished['random']['id']}/pareto").json()
    top = toy_api.get(f"/studies/{finished['random']['id']}/best").json()
    assert [t["number"] for t in single["data"]] == [top["number"]]


def test_conditional_parameters_only_when_active(
    finished: dict[str, dict[str, Any]], toy_api: httpx.Client
) -> None:
    found = trials(toy_api, finished["conditional"]["id"])
    assert {t["params"]["optimizer"] for t in found} == {"adamw", "sgd"}
    for trial in found:
        assert ("momentum" in trial["params"]) == (trial["params"]["optimizer"] == "sgd")


def test_constraints_are_stored_and_studies_finish(
    finished: dict[str, dict[str, Any]], toy_api: httpx.Client
) -> None:
    study = finished["tpe"]
    assert study["status"] == "SUCCEEDED", study["status_reason"]
    assert all("eval_loss" in t["metrics"] for t in trials(toy_api, study["id"]))


def test_warm_start_runs_the_earlier_best_first(
    finished: dict[str, dict[str, Any]], toy_api: httpx.Client
) -> None:
    source = finished["random"]["id"]
    ranked = toy_api.get(f"/studies/{source}/trials", params={"sort": "value", "limit": 2}).json()
    spec = toy(
        "warm",
        n_trials=3,
        algorithm="tpe",
        algorithm_settings={"seed": 3},
        warm_start={"from_study": source, "top_k": 2},
    )
    created = toy_api.post("/studies", json=spec)
    assert created.status_code == 201, created.text
    study = wait_final(toy_api, created.json()["id"])
    assert study["status"] == "SUCCEEDED"
    found = trials(toy_api, study["id"])
    assert [t["params"] for t in found[:2]] == [t["params"] for t in ranked["data"]]

    incompatible = toy(
        "cold",
        search_space={"learning_rate": {"type": "float", "low": 0.5, "high": 0.9}},
        warm_start={"from_study": source},
    )
    response = toy_api.post("/studies", json=incompatible)
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "warm_start.from_study"
    assert "incompatible" in response.json()["detail"][0]["reason"]
    missing = toy_api.post("/studies", json=toy("x", warm_start={"from_study": "nope"}))
    assert missing.status_code == 422 and "not found" in missing.json()["detail"][0]["reason"]


def test_importance(finished: dict[str, dict[str, Any]], toy_api: httpx.Client) -> None:
    study_id = finished["random"]["id"]  # 4 complete trials
    for evaluator in ("fanova", "ped_anova"):
        response = toy_api.get(f"/studies/{study_id}/importance", params={"evaluator": evaluator})
        assert response.status_code == 200, response.text
        importances = response.json()["importances"]
        assert set(importances) == set(SPACE)
        assert sum(importances.values()) == pytest.approx(1.0, abs=1e-6)
    queued = toy_api.post("/studies", json=toy("young")).json()["id"]
    early = toy_api.get(f"/studies/{queued}/importance")
    assert early.status_code == 409
    assert "at least 4 completed trials" in early.json()["detail"]
