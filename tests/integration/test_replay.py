"""The ``replay`` objective through the real server: recorded curves played back exactly, the
same proposals as the real task, and a 422 naming the field for anything off the grid."""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest

from search_spaces.replay import load_table
from tests.conftest import submit, trials_of, wait_final

pytestmark = [pytest.mark.integration]

TABLE = "sst2-minilm"
GRID = load_table(TABLE).grid


def replay_spec(name: str, **extra: Any) -> dict[str, Any]:
    """A replay study over the whole recorded grid."""
    spec: dict[str, Any] = {
        "name": name,
        "algorithm": "random",
        "algorithm_settings": {"seed": 11},
        "budget": {"n_trials": 4, "max_concurrent_trials": 2},
        "resources_per_trial": {"num_workers": 1, "cpus_per_worker": 0.5},
        "task": {"model": "replay", "dataset": {"name": TABLE}, "epochs": 4},
        "search_space": {n: {"type": "categorical", "choices": v} for n, v in GRID.items()},
    }
    spec.update(extra)
    return spec


@pytest.fixture(scope="module")
def replay_study(api: httpx.Client) -> str:
    study_id = submit(api, replay_spec("replay-exact"))
    assert wait_final(api, study_id)["status"] == "SUCCEEDED"
    return study_id


@pytest.fixture(scope="module")
def replayed(api: httpx.Client, replay_study: str) -> list[dict[str, Any]]:
    return trials_of(api, replay_study)


def test_cost_queries_read_the_recorded_seconds(
    api: httpx.Client, replay_study: str, replayed: list[dict[str, Any]]
) -> None:
    table = load_table(TABLE)
    recorded = sum(r["seconds"] for t in replayed for r in table.curve(t["params"]))
    totals = api.get(f"/studies/{replay_study}/cost").json()["totals"]
    assert math.isclose(totals["device_seconds"], recorded, rel_tol=1e-9)


def test_replay_reports_the_recorded_values_exactly(replayed: list[dict[str, Any]]) -> None:
    table = load_table(TABLE)
    assert len(replayed) == 4
    for trial in replayed:
        assert trial["state"] == "COMPLETE"
        curve = table.curve(trial["params"])
        recorded = {str(e): r["eval_accuracy"] for e, r in enumerate(curve, start=1)}
        assert trial["intermediate_values"] == recorded
        assert trial["value"] == curve[-1]["eval_accuracy"]
        for key in ("eval_loss", "eval_f1", "train_loss"):
            assert trial["metrics"][key] == curve[-1][key]
        seconds = sum(r["seconds"] for r in curve)
        assert math.isclose(trial["metrics"]["device_seconds"], seconds, rel_tol=1e-12)


def test_a_replay_proposes_what_the_real_task_would(
    api: httpx.Client, replayed: list[dict[str, Any]]
) -> None:
    real_task = {"model": "tiny-bert", "epochs": 1, "max_train_samples": 16, "max_seq_length": 16}
    study_id = submit(api, replay_spec("replay-real-twin", task=real_task, budget={"n_trials": 4}))
    assert wait_final(api, study_id)["status"] == "SUCCEEDED"
    real = {t["number"]: t["params"] for t in trials_of(api, study_id)}
    assert real == {t["number"]: t["params"] for t in replayed}


def _space(**changes: Any) -> dict[str, Any]:
    space = {n: {"type": "categorical", "choices": v} for n, v in GRID.items()}
    space.update(changes)
    return {k: v for k, v in space.items() if v is not None}


CASES = [
    ({"search_space": _space(dropout={"type": "float", "low": 0.0, "high": 0.2})},
     "search_space.dropout", "does not vary dropout"),
    ({"search_space": _space(learning_rate={"type": "float", "low": 1e-5, "high": 1e-3})},
     "search_space.learning_rate", "make learning_rate categorical"),
    ({"search_space": _space(learning_rate={"type": "categorical", "choices": [2e-5]})},
     "search_space.learning_rate", "learning_rate=2e-05 is not in table sst2-minilm's grid"),
    ({"search_space": _space(learning_rate=None)},
     "search_space", "learning_rate is neither searched nor fixed"),
    ({"task": {"model": "replay", "dataset": {"name": TABLE}, "epochs": 4,
               "hyperparameters": {"seed": 3}}},
     "task.hyperparameters.seed", "recorded with one seed"),
    ({"task": {"model": "replay", "dataset": {"name": TABLE}, "epochs": 9}},
     "task.epochs", "recorded 4 epochs, not 9"),
    ({"objective": {"metric": "train_samples_per_second", "direction": "maximize"}},
     "objectives.0.metric", "not train_samples_per_second"),
    ({"task": {"model": "replay", "epochs": 2}}, "task.dataset.name", "plays back a recorded"),
    ({"task": {"model": "tiny-bert", "dataset": {"name": TABLE}}},
     "task.dataset.name", "is a replay table: use it with model replay"),
    ({"task": {"model": "replay", "dataset": {"name": "nope"}}},
     "task.dataset.name", "sst2-minilm (replay)"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "field", "reason"), CASES)
def test_a_replay_off_its_grid_is_422_naming_the_field(
    api: httpx.Client, change: dict[str, Any], field: str, reason: str
) -> None:
    response = api.post("/studies/validate", json=replay_spec("off-grid", **change))
    assert response.status_code == 422, response.text
    problem = response.json()["detail"][0]
    assert problem["field"] == field and reason in problem["reason"], problem
