"""The measured cost of every trial and ``/studies/{id}/cost`` — real studies through Ray jobs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from search_spaces.tunables import COST_KEYS
from tests.conftest import (
    Server,
    attached_server,
    ranked_points,
    submit,
    toy_spec,
    trials_of,
    wait_final,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOY_COST_KEYS = (
    "wall_time_s",
    "time_to_first_result_s",
    "device_seconds",
    "peak_rss_bytes",
    "energy_joules",
    "energy_estimated",
)
assert set(TOY_COST_KEYS) <= set(COST_KEYS)
CORES = os.cpu_count() or 1

ASHA = toy_spec(
    "cost-asha",
    n_trials=6,
    epochs=4,
    algorithm_settings={"seed": 9},
    points_to_evaluate=ranked_points(6),  # later trials behind earlier ones: some are stopped
    scheduler={"type": "asha", "grace_period": 1, "reduction_factor": 2},
    budget={"n_trials": 6, "max_concurrent_trials": 3},
)
TINY_BERT: dict[str, Any] = {
    "name": "cost-tiny-bert",
    "algorithm": "random",
    "budget": {"n_trials": 1},
    "resources_per_trial": {"num_workers": 1, "cpus_per_worker": 1, "gpus_per_worker": 0},
    "task": {
        "model": "tiny-bert",
        "dataset": {"name": "synthetic-sentiment"},
        "max_seq_length": 32,
        "max_train_samples": 64,
        "max_eval_samples": 32,
        "epochs": 1,
        "hyperparameters": {"batch_size": 16},
    },
    "search_space": {"learning_rate": {"type": "categorical", "choices": [1e-3]}},
}


@pytest.fixture(scope="module")
def slow_api(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A server on the shared Ray cluster whose toy epochs take 0.3 s (as in
    test_algorithms), so the scheduler sees trials in flight and has something to stop."""
    root: Path = tmp_path_factory.mktemp("cost")
    env = {"HPO_TOY_EPOCH_SECONDS": "0.3"}
    with (
        attached_server(root, f"sqlite:///{root / 'hpo.db'}", server, env) as running,
        httpx.Client(base_url=running.url, timeout=60) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def studies(api: httpx.Client, slow_api: httpx.Client) -> dict[str, str]:
    """The toy, ASHA and tiny-BERT studies, submitted together and followed to their end."""
    ids = {
        "toy": (api, submit(api, toy_spec("cost-toy", n_trials=3, epochs=2))),
        "asha": (slow_api, submit(slow_api, ASHA)),
        "tiny-bert": (api, submit(api, TINY_BERT)),
    }
    for key, (client, study_id) in ids.items():
        finished = wait_final(client, study_id)
        assert finished["status"] == "SUCCEEDED", (key, finished["status_reason"])
    return {key: study_id for key, (_, study_id) in ids.items()}


def test_every_complete_toy_trial_reports_a_plausible_cost(
    api: httpx.Client, studies: dict[str, str]
) -> None:
    found = [t for t in trials_of(api, studies["toy"]) if t["state"] == "COMPLETE"]
    assert len(found) == 3
    for trial in found:
        metrics = trial["metrics"]
        assert set(TOY_COST_KEYS) <= set(metrics), metrics
        assert metrics["device_kind"] == "cpu"
        assert metrics["wall_time_s"] >= metrics["time_to_first_result_s"] > 0
        assert 0 < metrics["device_seconds"] <= metrics["wall_time_s"] * 1 * CORES + 1.0
        assert metrics["peak_rss_bytes"] > 10 * 2**20
        assert metrics["energy_joules"] > 0
        assert metrics["energy_estimated"] in (0.0, 1.0)


def test_cost_totals_are_the_sums_over_thetrials_of(
    api: httpx.Client, studies: dict[str, str]
) -> None:
    study_id = studies["toy"]
    found = trials_of(api, study_id)
    response = api.get(f"/studies/{study_id}/cost")
    assert response.status_code == 200, response.text
    cost = response.json()
    totals = cost["totals"]
    assert totals["trials"] == len(found) == 3
    for key in ("wall_time_s", "device_seconds", "energy_joules"):
        assert totals[key] == pytest.approx(sum(t["metrics"].get(key, 0.0) for t in found))
    assert totals["energy_estimated"] == any(t["metrics"]["energy_estimated"] for t in found)
    assert cost["by_state"]["COMPLETE"]["trials"] == 3
    assert cost["by_state"]["PRUNED"]["trials"] == cost["by_state"]["FAIL"]["trials"] == 0
    best = api.get(f"/studies/{study_id}/best").json()
    assert cost["best_trial"]["number"] == best["number"]
    assert cost["best_trial"]["wall_time_s"] == pytest.approx(best["metrics"]["wall_time_s"])
    assert cost["saved_by_early_stopping"]["seconds"] == 0.0
    assert api.get(f"/studies/{'0' * 32}/cost").status_code == 404


def test_early_stopping_saves_time(slow_api: httpx.Client, studies: dict[str, str]) -> None:
    study_id = studies["asha"]
    found = trials_of(slow_api, study_id)
    pruned = [t for t in found if t["state"] == "PRUNED"]
    assert pruned, "asha stopped no trial"
    cost = slow_api.get(f"/studies/{study_id}/cost").json()
    burnt = cost["by_state"]["PRUNED"]
    assert burnt["trials"] == len(pruned)
    assert burnt["wall_time_s"] == pytest.approx(sum(t["metrics"]["wall_time_s"] for t in pruned))
    saved = cost["saved_by_early_stopping"]
    assert saved["pruned_trials"] == len(pruned)
    assert saved["epochs_saved"] == sum(4 - len(t["intermediate_values"]) for t in pruned)
    # At least 0.3 s per epoch not run (the toy's sleep), far less than the whole study's time.
    assert 0.3 * saved["epochs_saved"] <= saved["seconds"] < 10 * cost["totals"]["wall_time_s"]
    assert saved["device_seconds"] > 0


def test_a_fine_tuning_trial_reports_its_model_and_throughput(
    api: httpx.Client, studies: dict[str, str]
) -> None:
    (trial,) = trials_of(api, studies["tiny-bert"])
    assert trial["state"] == "COMPLETE", trial
    metrics = trial["metrics"]
    assert set(COST_KEYS) <= set(metrics), metrics
    assert metrics["parameter_count"] >= metrics["trainable_parameter_count"] > 0
    assert metrics["train_tokens_per_second"] > 0
    assert metrics["peak_rss_bytes"] > metrics["checkpoint_bytes"] > 0
    assert metrics["peak_accelerator_bytes"] == 0.0  # the server's Ray has no GPU
    assert metrics["wall_time_s"] >= metrics["time_to_first_result_s"] > 0
