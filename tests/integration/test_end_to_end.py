"""Acceptance: real server, real local Ray, 2-worker DDP tiny-BERT trials, SQLite and Optuna."""

from __future__ import annotations

from typing import Any

import httpx
import optuna
import pytest

from tests.conftest import Server, attached_server, wait_final

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TASK = {
    "model": "tiny-bert",
    "dataset": {"name": "synthetic-sentiment"},
    "max_seq_length": 32,
    "max_train_samples": 512,
    "max_eval_samples": 128,
    "epochs": 2,
}
DDP = {"num_workers": 2, "cpus_per_worker": 1, "gpus_per_worker": 0}

STUDIES: dict[str, dict[str, Any]] = {
    "grid": {
        "algorithm": "grid",
        "budget": {"n_trials": 2},
        "task": {**TASK, "hyperparameters": {"batch_size": 16, "warmup_ratio": 0.1}},
        "search_space": {
            "learning_rate": {"type": "categorical", "choices": [3e-3, 1e-5]},
        },
    },
    "random": {
        "algorithm": "random",
        "algorithm_settings": {"seed": 1},
        "budget": {"n_trials": 2},
        "search_space": {
            "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
            "batch_size": {"type": "categorical", "choices": [16, 32]},
        },
    },
    "tpe": {
        "algorithm": "tpe",
        "algorithm_settings": {"seed": 0, "n_startup_trials": 1},
        "budget": {"n_trials": 2},
        "search_space": {
            "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
            "optimizer": {"type": "categorical", "choices": ["adamw", "sgd"]},
            "warmup_ratio": {"type": "float", "low": 0.0, "high": 0.2},
        },
    },
}


@pytest.fixture(scope="module")
def finished(api: httpx.Client) -> dict[str, dict[str, Any]]:
    """Submit the three studies at once (the queue runs them in turn) and wait for all."""
    ids = {}
    for algorithm, study in STUDIES.items():
        spec = {"name": f"e2e-{algorithm}", "resources_per_trial": DDP, "task": TASK, **study}
        # (a study's own "task" overrides the shared one)
        response = api.post("/studies", json=spec)
        assert response.status_code == 201, response.text
        ids[algorithm] = response.json()["id"]
    return {algorithm: wait_final(api, study_id) for algorithm, study_id in ids.items()}


@pytest.mark.parametrize("algorithm", list(STUDIES))
def test_study_runs_to_success_with_every_trial_stored(
    algorithm: str, finished: dict[str, dict[str, Any]], api: httpx.Client, server: Server
) -> None:
    study = finished[algorithm]
    n_trials = STUDIES[algorithm]["budget"]["n_trials"]
    assert study["status"] == "SUCCEEDED", study["status_reason"]
    assert study["status_reason"] == f"study finished: {n_trials} trials completed, 0 failed"
    assert study["trial_counts"]["COMPLETE"] == n_trials
    assert study["ray_job_id"] and study["dashboard_url"].endswith(study["ray_job_id"])

    trials = api.get(f"/studies/{study['id']}/trials").json()
    assert trials["count"] == n_trials
    space = set(STUDIES[algorithm]["search_space"])
    for trial in trials["data"]:
        assert trial["state"] == "COMPLETE"
        assert set(trial["params"]) == space
        assert 0.0 <= trial["metrics"]["eval_accuracy"] <= 1.0
        assert trial["value"] == trial["metrics"]["eval_accuracy"]
        assert set(trial["intermediate_values"]) == {"1", "2"}  # one report per epoch
        assert trial["metrics"]["epoch"] == 2
        assert trial["metrics"]["train_samples_per_second"] > 0

    best = api.get(f"/studies/{study['id']}/best").json()
    assert best["value"] == max(t["value"] for t in trials["data"])
    assert study["best_value"] == best["value"]

    # One DDP worker group served the study: started for its first trial, kept for the next.
    served = sorted(
        (t["metrics"]["ddp_group_trials"], t["metrics"]["ddp_group_start_s"])
        for t in trials["data"]
    )
    assert [n for n, _ in served] == [1.0, 2.0]
    assert served[0][1] == served[1][1] > 0

    # Plain Optuna on the same file sees the same study.
    loaded = optuna.load_study(study_name=study["optuna_study_name"], storage=server.database_url)
    assert loaded.best_value == pytest.approx(best["value"])
    assert len(loaded.trials) == n_trials


def test_grid_runs_every_point_once(finished: dict[str, dict[str, Any]], api: httpx.Client) -> None:
    trials = api.get(f"/studies/{finished['grid']['id']}/trials").json()["data"]
    assert sorted(t["params"]["learning_rate"] for t in trials) == [1e-5, 3e-3]


def test_learning_rate_matters(finished: dict[str, dict[str, Any]], api: httpx.Client) -> None:
    """The grid's good learning rate beats its tiny one: the trials really train."""
    trials = api.get(f"/studies/{finished['grid']['id']}/trials").json()["data"]
    accuracy = {t["params"]["learning_rate"]: t["value"] for t in trials}
    assert accuracy[3e-3] > accuracy[1e-5] + 0.1


def test_ddp_trials_stopped_by_asha_are_pruned_and_the_group_serves_on(
    api: httpx.Client,
) -> None:
    """ASHA stops 2-worker trials after their first epoch: both ranks stop there (the trial is
    PRUNED with one epoch), and the next trial runs on the same worker group."""
    spec = {
        "name": "e2e-ddp-asha",
        "algorithm": "random",
        "algorithm_settings": {"seed": 0},
        "budget": {"n_trials": 3},
        "resources_per_trial": DDP,
        "task": {**TASK, "max_train_samples": 1024, "epochs": 3},
        "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2},
        "search_space": {
            "learning_rate": {"type": "float", "low": 1e-9, "high": 1e-2, "log": True}
        },
        # A good learning rate first, then two that leave the model untrained: ASHA keeps the
        # first and stops the others at its first rung.
        "points_to_evaluate": [{"learning_rate": lr} for lr in (3e-3, 1e-9, 1e-9)],
    }
    response = api.post("/studies", json=spec)
    assert response.status_code == 201, response.text
    study = wait_final(api, response.json()["id"])
    assert study["status"] == "SUCCEEDED", study["status_reason"]
    trials = sorted(
        api.get(f"/studies/{study['id']}/trials").json()["data"], key=lambda t: t["number"]
    )
    assert [t["state"] for t in trials] == ["COMPLETE", "PRUNED", "PRUNED"]
    assert [len(t["intermediate_values"]) for t in trials] == [3, 1, 1]
    assert [t["metrics"]["epoch"] for t in trials] == [3.0, 1.0, 1.0]
    assert [t["metrics"]["ddp_group_trials"] for t in trials] == [1.0, 2.0, 3.0]
    assert len({t["metrics"]["ddp_group_start_s"] for t in trials}) == 1


def test_cli_submit_wait_and_best(server: Server, tmp_path: Any) -> None:
    """``hpo submit --wait`` follows a study to its end; ``hpo best`` prints its best trial."""
    import json
    import subprocess
    import sys

    import yaml

    spec = {  # the CLI is what this checks: the cheap built-in objective suffices
        "name": "cli-toy",
        "algorithm": "random",
        "algorithm_settings": {"seed": 3},
        "budget": {"n_trials": 2},
        "resources_per_trial": {"num_workers": 1, "cpus_per_worker": 0.5},
        "task": {"model": "toy", "epochs": 2},
        "search_space": {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2}},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(spec))
    hpo = [sys.executable, "-m", "service.cli"]
    submitted = subprocess.run(
        [*hpo, "submit", str(path), "--wait", "--url", server.url],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert submitted.returncode == 0, submitted.stderr + submitted.stdout
    study_id = submitted.stdout.splitlines()[0].strip()
    assert "SUCCEEDED" in submitted.stdout
    best = subprocess.run(
        [*hpo, "best", study_id, "--json", "--url", server.url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert best.returncode == 0, best.stderr
    trial = json.loads(best.stdout)
    assert trial["state"] == "COMPLETE" and "learning_rate" in trial["params"]


@pytest.mark.postgres
def test_postgres_server_on_the_same_ray_cluster(
    server: Server, postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A second server on PostgreSQL, attached to the first one's Ray by address and token."""
    spec = {
        "name": "pg-tpe",
        "algorithm": "tpe",
        "algorithm_settings": {"seed": 2, "n_startup_trials": 1},
        "budget": {"n_trials": 2},
        "resources_per_trial": {"num_workers": 1, "cpus_per_worker": 1},
        "task": TASK,
        "search_space": {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2}},
    }
    root = tmp_path_factory.mktemp("pg-server")
    with (
        attached_server(root, postgres_url, server) as second,
        httpx.Client(base_url=second.url, timeout=30) as client,
    ):
        created = client.post("/studies", json=spec)
        assert created.status_code == 201, created.text
        study = wait_final(client, created.json()["id"])
        assert study["status"] == "SUCCEEDED", study["status_reason"]
        best = client.get(f"/studies/{study['id']}/best").json()
    loaded = optuna.load_study(study_name=study["optuna_study_name"], storage=postgres_url)
    assert loaded.best_value == pytest.approx(best["value"])
    assert len(loaded.trials) == 2


def test_health_reports_database_and_ray(api: httpx.Client) -> None:
    assert api.get("/healthz").json() == {"status": "ok", "database": True, "ray": True}
