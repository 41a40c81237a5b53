"""MLflow tracking against a real ``mlflow server`` (SQLite, local artifacts), read back through
the MLflow client: every trial a run with its parameters, per-epoch metrics and state, nested
under the study's run; and a tracking server stopped mid-study fails no trial. (The best model
logged as an MLflow model: tests/integration/test_export.py, on its tiny-BERT study.)"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from mlflow import MlflowClient

from service.client import Client
from service.local_server import Server
from tests.conftest import TRACKED_EXPERIMENT, submit, toy_spec, trials_of, wait_final
from tests.mlflow_server import MlflowServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STATUS_OF = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}


def runs_of(client: MlflowClient, experiment: str, study_id: str) -> dict[str, Any]:
    """The study's parent run and its trial runs by trial number."""
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no MLflow experiment {experiment!r}"
    runs = client.search_runs(
        [found.experiment_id], filter_string=f"tags.`hpo.study_id` = '{study_id}'"
    )
    (parent,) = [r for r in runs if r.data.tags["hpo.kind"] == "study"]
    trials = {int(r.data.tags["hpo.trial_number"]): r for r in runs if r is not parent}
    return {"parent": parent, "trials": trials}


def study_events(server: Server, study_id: str) -> list[Any]:
    with Client(server.url) as client:
        return list(client.events(study_id))


def test_trials_appear_in_mlflow_with_their_steps_and_states(
    mlflow_server: MlflowServer, server: Server, api: httpx.Client, tracked_study: dict[str, Any]
) -> None:
    study_id = str(tracked_study["id"])
    trials = {t["number"]: t for t in trials_of(api, study_id)}
    assert {t["state"] for t in trials.values()} == {"COMPLETE", "PRUNED"}

    client = MlflowClient(mlflow_server.ready())
    found = runs_of(client, TRACKED_EXPERIMENT, study_id)
    parent, runs = found["parent"], found["trials"]
    assert parent.info.run_name == "sst2-toy" and parent.info.status == "FINISHED"
    assert parent.data.tags["hpo.study_url"] == f"{server.url}/studies/{study_id}"
    assert parent.data.params["optuna_study_name"] == f"sst2-toy-{study_id}"
    assert parent.data.params["scheduler"].startswith("asha on eval_f1")
    assert parent.data.metrics["trials_complete"] + parent.data.metrics["trials_pruned"] == 4
    best = max((t for t in trials.values() if t["state"] == "COMPLETE"), key=lambda t: t["value"])
    assert parent.data.metrics["best_eval_f1"] == pytest.approx(best["value"])
    assert parent.data.tags["hpo.best_trial_number"] == str(best["number"])

    assert sorted(runs) == sorted(trials)
    for number, trial in trials.items():
        run = runs[number]
        assert run.info.run_name == f"trial-{number}"
        assert run.info.status == STATUS_OF[trial["state"]], number
        assert run.data.tags["hpo.state"] == trial["state"]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["hpo.ray_job_id"] == f"hpo-{study_id}-1"
        assert float(run.data.params["learning_rate"]) == pytest.approx(
            trial["params"]["learning_rate"]
        )
        history = client.get_metric_history(run.info.run_id, "eval_f1")
        steps = {m.step: m.value for m in history}
        expected = {int(k): v for k, v in trial["intermediate_values"].items()}
        assert steps == pytest.approx(expected), number
        assert len(client.get_metric_history(run.info.run_id, "wall_time_s")) == len(expected)
    assert runs[best["number"]].data.tags.get("hpo.best") == "true"


def test_a_tracking_server_stopped_mid_study_fails_no_trial(
    mlflow_server: MlflowServer, server: Server, api: httpx.Client
) -> None:
    uri = mlflow_server.ready()
    spec = toy_spec(
        "tracking-outage",
        n_trials=2,
        epochs=2,
        tracking={"mlflow": {"tracking_uri": uri, "experiment": "hpo-outage"}},
    )
    study_id = submit(api, spec)
    client = MlflowClient(uri)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the driver made the study's run: the study is on
        experiment = client.get_experiment_by_name("hpo-outage")
        if experiment and client.search_runs([experiment.experiment_id], max_results=1):
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the study's MLflow run never appeared")
    mlflow_server.stop()  # started again by the next test that asks for it (ready())
    study = wait_final(api, study_id, timeout_s=300)
    assert study["status"] == "SUCCEEDED", study["status_reason"]
    assert [t["state"] for t in trials_of(api, study_id)] == ["COMPLETE", "COMPLETE"]
    failures = [e for e in study_events(server, study_id) if e.kind == "tracking_failed"]
    assert failures, "the outage was not recorded"
    first = failures[0].data
    assert first["tracker"] == "mlflow" and first["attempts"] == 3
    assert "onnection" in first["error"], first  # refused: nothing listens any more
