"""Schedulers that pause trials and resume them from checkpoints, on the real service: PBT and
PB2 copy the best trials' weights into the worst (exploit) and change their hyperparameters
(explore); synchronous Hyperband pauses trials at a rung and promotes some."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from service.cli import app
from tests.conftest import Server, submit, trials_of, wait_final
from tests.integration.test_lifecycle import read_events

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEEDS = [1, 2, 3, 4]
# Four trials, each of its own seed (so its own initial weights) and a learning rate too small
# to change them: a trial's eval loss is its weights' fingerprint. Copying another trial's
# checkpoint shows as that trial's eval loss.
POPULATION: dict[str, Any] = {
    "name": "population",
    "algorithm": "random",
    "algorithm_settings": {"seed": 0},
    "objective": {"metric": "eval_loss"},
    "scheduler": {"type": "pbt", "perturbation_interval": 1},
    "budget": {"n_trials": 4, "max_concurrent_trials": 4},
    "resources_per_trial": {"num_workers": 1, "cpus_per_worker": 0.5},
    "task": {
        "model": "tiny-bert",
        "dataset": {"name": "synthetic-sentiment"},
        "max_seq_length": 32,
        "max_train_samples": 64,
        "max_eval_samples": 64,
        "epochs": 4,
        "hyperparameters": {"batch_size": 32},
    },
    "search_space": {
        "seed": {"type": "categorical", "choices": SEEDS},
        "learning_rate": {"type": "float", "low": 1e-9, "high": 2e-9},
    },
}


def _final(client: httpx.Client, spec: dict[str, Any]) -> tuple[str, dict[str, Any], list[dict]]:
    study_id = submit(client, spec)
    study = wait_final(client, study_id, timeout_s=900)
    assert study["status"] == "SUCCEEDED", study["status_reason"]
    return study_id, study, trials_of(client, study_id)


def test_pbt_copies_the_best_trials_weights_into_the_worst_and_records_the_lineage(
    api: httpx.Client, server: Server, tmp_path: Path
) -> None:
    study_id, study, trials = _final(api, POPULATION)
    assert len(trials) == 4
    assert study["trial_counts"]["COMPLETE"] == 4
    assert study["trial_counts"]["PAUSED"] == 0
    by_number = {t["number"]: t for t in trials}
    # Each seed's weights have their own eval loss (its fingerprint): every trial's first epoch
    # comes before any exploit.
    fingerprint = {t["params"]["seed"]: t["intermediate_values"]["1"] for t in trials}
    exploited = [t for t in trials if t["lineage"]]
    assert exploited, "with a quarter of four trials below the rest, someone must exploit"
    for trial in exploited:
        for step in trial["lineage"]:
            assert step["from_trial"] in by_number  # a real trial of the study
            assert step["from_trial"] != trial["number"]
            assert 1 <= step["epoch"] < 4
            # The weights come with their seed (fixed under explore); the rate is explored
            # within the search space.
            assert step["params"]["seed"] in fingerprint
            assert 1e-9 <= step["params"]["learning_rate"] <= 2e-9
        # Its final eval loss is that of the weights it copied last (a rate of 2e-9 changes
        # the loss by far less than the tolerance), not its own seed's.
        copied_seed = trial["lineage"][-1]["params"]["seed"]
        assert trial["metrics"]["eval_loss"] == pytest.approx(fingerprint[copied_seed], rel=1e-4)
        if copied_seed != trial["params"]["seed"]:
            own = fingerprint[trial["params"]["seed"]]
            assert trial["metrics"]["eval_loss"] != pytest.approx(own, rel=1e-4)
        assert trial["metrics"]["resumed_from_epoch"] >= 1

    best = api.get(f"/studies/{study_id}/best").json()
    if best["lineage"]:
        schedule = best["schedule"]
        assert schedule[0]["from_epoch"] == 0
        assert [s["from_epoch"] for s in schedule] == sorted(s["from_epoch"] for s in schedule)
        assert schedule[-1]["trial"] == best["number"]
        assert schedule[-1]["params"] == best["lineage"][-1]["params"]
    else:
        assert best["schedule"] is None

    # hpo plots draws the population tree beside Optuna's plots.
    plots = CliRunner().invoke(
        app, ["plots", study_id, str(tmp_path), "--json", "--url", server.url]
    )
    assert plots.exit_code == 0, plots.output
    tree = tmp_path / "population_tree.png"
    assert str(tree) in json.loads(plots.stdout)["files"]
    assert tree.read_bytes().startswith(b"\x89PNG") and tree.stat().st_size > 5000


def test_pb2_explores_numeric_ranges_with_its_gp_bandit(api: httpx.Client) -> None:
    spec = {
        **POPULATION,
        "name": "pb2",
        "objective": {"metric": "eval_accuracy"},
        "scheduler": {"type": "pb2", "metric": "eval_loss"},
        "search_space": {
            "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
            "weight_decay": {"type": "float", "low": 0.0, "high": 0.3},
        },
    }
    _, study, trials = _final(api, spec)
    assert study["trial_counts"]["COMPLETE"] == 4
    steps = [step for t in trials for step in t["lineage"]]
    assert steps, "PB2 exploits the bottom quarter after every epoch"
    numbers = {t["number"] for t in trials}
    for step in steps:
        assert step["from_trial"] in numbers
        assert 1e-4 <= step["params"]["learning_rate"] <= 1e-2
        assert 0.0 <= step["params"]["weight_decay"] <= 0.3


def test_synchronous_hyperband_pauses_trials_and_promotes_the_best(
    api: httpx.Client, server: Server
) -> None:
    spec = {
        **POPULATION,
        "name": "hyperband-sync",
        "algorithm": "grid",
        "scheduler": {"type": "hyperband_sync", "reduction_factor": 2},
        "budget": {"n_trials": 6, "max_concurrent_trials": 6},
        "search_space": {
            "seed": {"type": "categorical", "choices": [0, 1, 2]},
            "learning_rate": {"type": "categorical", "choices": [1e-4, 3e-3]},
        },
    }
    study_id, study, trials = _final(api, spec)
    # Ray Tune's brackets for 4 epochs at a factor of 2: the first three trials run 4 epochs
    # unhalved; the next three pause at epoch 2, and the better two of them are promoted.
    assert study["trial_counts"]["PAUSED"] == 0
    kinds = [event["event"] for event in read_events(server.url, study_id)]
    assert "trial_resumed" in kinds, "a promoted trial resumes after its pause"
    promoted = [t for t in trials if t["metrics"].get("resumed_from_epoch") == 2]
    pruned = [t for t in trials if t["state"] == "PRUNED"]
    assert promoted and pruned, [(t["state"], t["metrics"]) for t in trials]
    for trial in promoted:  # resumed from its own checkpoint: every epoch once, one curve
        assert trial["state"] == "COMPLETE"
        assert sorted(int(k) for k in trial["intermediate_values"]) == [1, 2, 3, 4]
        assert trial["metrics"]["epochs_trained"] >= 4  # its runs before and after the pause
    for trial in pruned:  # stopped while paused at the rung
        assert sorted(int(k) for k in trial["intermediate_values"]) == [1, 2]
    worst_promoted = max(p["intermediate_values"]["2"] for p in promoted)
    assert all(t["intermediate_values"]["2"] >= worst_promoted for t in pruned)


def test_bohb_pauses_trials_that_its_tpe_sampler_chose(api: httpx.Client) -> None:
    spec = {
        **POPULATION,
        "name": "bohb",
        "algorithm": "tpe",
        "algorithm_settings": {"seed": 3, "n_startup_trials": 3},
        "scheduler": {"type": "bohb", "reduction_factor": 2},
        "budget": {"n_trials": 6, "max_concurrent_trials": 6},
        "search_space": {"learning_rate": {"type": "float", "low": 1e-4, "high": 3e-3}},
    }
    _, study, trials = _final(api, spec)
    assert len(trials) == 6 and study["trial_counts"]["PAUSED"] == 0
    assert any(t["metrics"].get("resumed_from_epoch") == 2 for t in trials), "none promoted"
    assert study["trial_counts"]["PRUNED"] >= 1
