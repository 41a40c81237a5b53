"""Checkpointed trials on the real service: a trial Tune retries resumes from its checkpoint and
ends exactly where an uninterrupted one does; a checkpoint over the study's limit fails it."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Server, attached_server, submit, trials_of, wait_final
from tests.integration.test_lifecycle import _driver_pids, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# One fixed configuration of a tiny fine-tune: 4 epochs, seed 0, one worker.
SPEC: dict[str, Any] = {
    "name": "checkpointed",
    "algorithm": "grid",
    "budget": {"n_trials": 1},
    "resources_per_trial": {"num_workers": 1, "cpus_per_worker": 1},
    "task": {
        "model": "tiny-bert",
        "dataset": {"name": "synthetic-sentiment"},
        "max_seq_length": 32,
        "max_train_samples": 64,
        "max_eval_samples": 32,
        "epochs": 4,
        "hyperparameters": {"batch_size": 16, "warmup_ratio": 0.2, "seed": 0},
    },
    "search_space": {"learning_rate": {"type": "categorical", "choices": [3e-3]}},
}
FINAL = ("eval_accuracy", "eval_f1", "eval_loss", "train_loss")


@pytest.fixture(scope="module")
def failing_server(
    server: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    """A server whose trial 0 fails once, right after its epoch-2 checkpoint."""
    root = tmp_path_factory.mktemp("failing")
    env = {"HPO_FAULT_INJECTION": "trial=0,after_epoch=2,failures=1"}
    with (
        attached_server(root, f"sqlite:///{root / 'hpo.db'}", server, env) as running,
        httpx.Client(base_url=running.url, timeout=30) as client,
    ):
        yield client


def _only_trial(client: httpx.Client, study_id: str) -> dict[str, Any]:
    study = wait_final(client, study_id, timeout_s=600)
    assert study["status"] == "SUCCEEDED", study["status_reason"]
    (trial,) = trials_of(client, study_id)
    assert trial["state"] == "COMPLETE", trial
    return trial


def test_a_retried_trial_resumes_from_its_checkpoint_with_identical_results(
    api: httpx.Client, server: Server, failing_server: httpx.Client
) -> None:
    interrupted_id = submit(failing_server, {**SPEC, "max_failures": 1})
    uninterrupted_id = submit(api, SPEC)
    whole = _only_trial(api, uninterrupted_id)
    resumed = _only_trial(failing_server, interrupted_id)

    assert "resumed_from_epoch" not in whole["metrics"]
    assert whole["metrics"]["epochs_trained"] == 4
    assert resumed["metrics"]["resumed_from_epoch"] == 2
    assert resumed["metrics"]["epochs_trained"] == 2
    assert (
        0
        < resumed["metrics"]["checkpoint_bytes_total"]
        == pytest.approx(whole["metrics"]["checkpoint_bytes_total"], rel=0.01)
    )
    # Exactly the same, epoch by epoch (torch on the CPU is deterministic here).
    assert {k: resumed["metrics"][k] for k in FINAL} == {k: whole["metrics"][k] for k in FINAL}
    assert resumed["intermediate_values"] == whole["intermediate_values"]
    # The study has ended: its trial directories stay, their checkpoints are gone.
    (experiment,) = (server.state_dir / "ray_results").glob(f"study-{uninterrupted_id}-attempt-*")
    assert [p for p in experiment.iterdir() if p.is_dir()]
    assert not list(experiment.glob("*/checkpoint_*"))
    assert sorted(whole["intermediate_values"], key=int) == ["1", "2", "3", "4"]


def test_a_checkpoint_over_the_study_limit_fails_the_trial(api: httpx.Client) -> None:
    spec = {**SPEC, "name": "over-limit", "checkpoint": {"max_bytes": 100_000}}
    spec["task"] = {**SPEC["task"], "epochs": 2}
    study = wait_final(api, submit(api, spec), timeout_s=600)
    assert study["status"] == "FAILED"
    (trial,) = trials_of(api, str(study["id"]))
    assert trial["state"] == "FAIL"
    assert "CheckpointTooLarge: the checkpoint of epoch 1" in trial["error"]
    assert "over checkpoint.max_bytes (100000 bytes)" in trial["error"]


def test_a_killed_driver_resumes_its_interrupted_trial_from_its_checkpoint(
    api: httpx.Client,
) -> None:
    epochs = 6
    spec = {**SPEC, "name": "killed-driver"}
    spec["task"] = {**SPEC["task"], "epochs": epochs, "max_train_samples": 256}
    study_id = submit(api, spec)

    def past_epoch_three() -> bool:
        running = api.get(f"/studies/{study_id}/trials", params={"state": "RUNNING"}).json()
        return any(len(t["intermediate_values"]) >= 3 for t in running["data"])

    wait_for(past_epoch_three, timeout_s=300, what="epoch 3 of the trial")
    pids = _driver_pids(study_id)
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    study = wait_final(api, study_id, timeout_s=600)
    assert study["status"] == "SUCCEEDED", study["status_reason"]
    assert study["attempts"] == 2
    trials = trials_of(api, study_id)
    (interrupted,) = [t for t in trials if t["state"] == "FAIL"]
    (resumed,) = [t for t in trials if t["state"] == "COMPLETE"]  # not counted twice
    assert interrupted["error"] == "interrupted"
    start = resumed["metrics"]["resumed_from_epoch"]
    assert start >= 2
    assert resumed["metrics"]["epochs_trained"] == epochs - start
    # One curve over every epoch: the interrupted trial's values up to its checkpoint.
    assert sorted(resumed["intermediate_values"], key=int) == [str(e) for e in range(1, 7)]
    for step, value in interrupted["intermediate_values"].items():
        if int(step) <= start:
            assert resumed["intermediate_values"][step] == value
    # At most the epoch in progress was lost.
    lost = interrupted["metrics"]["epochs_trained"] + resumed["metrics"]["epochs_trained"] - epochs
    assert 0 <= lost <= 1
