"""The best trial's model: saved by each trial, only the best kept, served, exported, and logged
to MLflow.

Real server, real local Ray, real tiny-BERT trials; the exported model is loaded with
``from_pretrained`` and must predict what the best trial recorded.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from mlflow import MlflowClient
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from typer.testing import CliRunner, Result

from search_spaces.spec import Dataset
from service.cli import app
from tests.conftest import Server, toy_spec, wait_final
from tests.mlflow_server import MlflowServer
from workers.data import load_text_data, tokenize
from workers.tiny_bert import build_tiny_bert_tokenizer

pytestmark = [pytest.mark.integration, pytest.mark.slow]
runner = CliRunner()

MAX_SEQ_LENGTH = 32
MAX_TRAIN_SAMPLES = 256
MAX_EVAL_SAMPLES = 64
TASK: dict[str, Any] = {
    "model": "tiny-bert",
    "dataset": {"name": "synthetic-sentiment"},
    "max_seq_length": MAX_SEQ_LENGTH,
    "max_train_samples": MAX_TRAIN_SAMPLES,
    "max_eval_samples": MAX_EVAL_SAMPLES,
    "epochs": 2,
    "hyperparameters": {"batch_size": 16},
}
N_TRIALS = 3
SPEC: dict[str, Any] = {
    "name": "export-tiny-bert",
    "algorithm": "grid",
    "budget": {"n_trials": N_TRIALS},
    "resources_per_trial": {"num_workers": 1, "cpus_per_worker": 1, "gpus_per_worker": 0},
    "task": TASK,
    # 3e-3 learns the synthetic set, 1e-5 stays at chance: the best trial is clear.
    "search_space": {"learning_rate": {"type": "categorical", "choices": [3e-3, 1e-3, 1e-5]}},
}


def hpo(server: Server, *args: str) -> Result:
    return runner.invoke(app, [*args, "--url", server.url])


@pytest.fixture(scope="module")
def study(api: httpx.Client, mlflow_server: MlflowServer) -> dict[str, Any]:
    """The tiny-BERT study (tracked in MLflow, experiment: its name), checked while it is not
    finished, then followed to its end."""
    tracking = {"mlflow": {"tracking_uri": mlflow_server.ready()}}
    response = api.post("/studies", json={**SPEC, "tracking": tracking})
    assert response.status_code == 201, response.text
    study_id = response.json()["id"]
    early = api.get(f"/studies/{study_id}/best/artifact")
    # (a race-free check: until the study ends, it has no model to download)
    assert early.status_code == 404, early.text
    detail = early.json()["detail"]
    assert detail.startswith(f"study {study_id!r} kept no model: "), detail
    assert "queued" in detail or "still running" in detail, detail
    finished = wait_final(api, study_id)
    assert finished["status"] == "SUCCEEDED", finished["status_reason"]
    return finished


@pytest.fixture(scope="module")
def best(api: httpx.Client, study: dict[str, Any]) -> dict[str, Any]:
    response = api.get(f"/studies/{study['id']}/best")
    assert response.status_code == 200, response.text
    return dict(response.json())


def artifacts_dir(server: Server, study_id: str) -> Path:
    return server.state_dir / "ray_results" / "artifacts" / study_id


def test_every_trial_saved_and_only_the_best_is_kept(
    api: httpx.Client, server: Server, study: dict[str, Any], best: dict[str, Any]
) -> None:
    trials = api.get(f"/studies/{study['id']}/trials", params={"state": "COMPLETE"}).json()
    assert trials["count"] == N_TRIALS
    for trial in trials["data"]:  # each trial saved its model (so there was something to delete)
        assert trial["metrics"]["checkpoint_bytes"] > 100_000, trial["metrics"]
        head = trial["metrics"]["eval_predictions_head"].split(",")
        assert len(head) == 8 and set(head) <= {"0", "1"}, head
    assert best["metrics"]["eval_accuracy"] > 0.6, best["metrics"]

    root = artifacts_dir(server, study["id"])
    assert sorted(p.name for p in root.iterdir()) == ["best"]  # trials/ and its dirs are gone
    kept = root / "best"
    info = json.loads((kept / "hpo_trial.json").read_text())
    assert info == {
        "study_id": study["id"],
        "trial_number": best["number"],
        "value": best["value"],
        "params": best["params"],
        "task": "classification",
        "model": "tiny-bert",
        "auto_class": "AutoModelForSequenceClassification",
    }
    saved = sum(p.stat().st_size for p in kept.iterdir() if p.name != "hpo_trial.json")
    assert saved == best["metrics"]["checkpoint_bytes"]


def test_artifact_endpoint_streams_a_relative_tar_gz(
    api: httpx.Client, server: Server, study: dict[str, Any]
) -> None:
    response = api.get(f"/studies/{study['id']}/best/artifact")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/gzip"
    assert response.headers["content-disposition"] == (
        f"attachment; filename={study['id']}-best.tar.gz"
    )
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as tar:
        members = tar.getmembers()
    names = sorted(m.name for m in members)
    on_disk = sorted(p.name for p in (artifacts_dir(server, study["id"]) / "best").iterdir())
    assert names == on_disk
    assert {"config.json", "model.safetensors", "hpo_trial.json"} <= set(names)
    assert all(m.isfile() and not m.name.startswith("/") for m in members)
    assert all(".." not in Path(m.name).parts for m in members)


def test_export_loads_offline_and_predicts_like_the_best_trial(
    server: Server, study: dict[str, Any], best: dict[str, Any], tmp_path: Path
) -> None:
    target = tmp_path / "model"
    result = hpo(server, "export", study["id"], str(target))
    assert result.exit_code == 0, result.output
    assert json.loads((target / "hpo_trial.json").read_text())["trial_number"] == best["number"]

    model = AutoModelForSequenceClassification.from_pretrained(target, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(target, local_files_only=True)
    # The study's eval set, rebuilt as the driver built it (seed 0, the same subsets).
    data = load_text_data(
        Dataset(name="synthetic-sentiment"), MAX_TRAIN_SAMPLES, MAX_EVAL_SAMPLES, seed=0
    )
    texts = data.eval_texts[:8]
    batch = tokenizer(
        texts, truncation=True, max_length=MAX_SEQ_LENGTH, padding=True, return_tensors="pt"
    )
    # The exported tokenizer gives the ids the trial trained and evaluated on.
    trial_ids = tokenize(data, build_tiny_bert_tokenizer(), MAX_SEQ_LENGTH).eval_ids[:8]
    lengths = batch["attention_mask"].sum(dim=1).tolist()
    unpadded = [ids[:n] for ids, n in zip(batch["input_ids"].tolist(), lengths, strict=True)]
    assert unpadded == trial_ids
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    predicted = ",".join(str(label) for label in logits.argmax(dim=-1).tolist())
    assert predicted == best["metrics"]["eval_predictions_head"]


def test_the_best_model_is_in_mlflow_and_predicts_like_the_best_trial(
    mlflow_server: MlflowServer, study: dict[str, Any], best: dict[str, Any]
) -> None:
    """Logged with the study's MLflow run in the transformers flavour: the pipeline MLflow loads
    predicts the eval examples as the best trial did."""
    import mlflow

    uri = mlflow_server.ready()
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(SPEC["name"])  # the default: the study's name
    assert experiment is not None
    (parent,) = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`hpo.study_id` = '{study['id']}' and tags.`hpo.kind` = 'study'",
    )
    assert parent.data.tags["hpo.best_trial_number"] == str(best["number"])
    assert "hpo_trial.json" in [a.path for a in client.list_artifacts(parent.info.run_id)]
    models = client.search_logged_models(
        experiment_ids=[experiment.experiment_id],
        filter_string=f"source_run_id = '{parent.info.run_id}'",
    )
    assert [m.name for m in models] == ["best_model"]
    mlflow.set_tracking_uri(uri)
    model_uri = f"models:/{models[0].model_id}"
    assert mlflow.models.get_model_info(model_uri).flavors["transformers"]["task"] == (
        "text-classification"
    )
    pipeline = mlflow.transformers.load_model(model_uri)
    data = load_text_data(
        Dataset(name="synthetic-sentiment"), MAX_TRAIN_SAMPLES, MAX_EVAL_SAMPLES, seed=0
    )
    labels = pipeline.model.config.label2id
    answers = pipeline(data.eval_texts[:8], truncation=True)
    predicted = ",".join(str(labels[answer["label"]]) for answer in answers)
    assert predicted == best["metrics"]["eval_predictions_head"]


def test_export_into_a_non_empty_directory_fails_with_one_line(
    server: Server, study: dict[str, Any], tmp_path: Path
) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    result = hpo(server, "export", study["id"], str(tmp_path))
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"error: {tmp_path} exists and is not an empty directory"], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_toy_and_unknown_studies_have_no_model(
    api: httpx.Client, server: Server, tmp_path: Path
) -> None:
    response = api.post("/studies", json=toy_spec("export-toy", n_trials=2))
    assert response.status_code == 201, response.text
    toy_id = response.json()["id"]
    assert wait_final(api, toy_id)["status"] == "SUCCEEDED"
    missing = api.get(f"/studies/{toy_id}/best/artifact")
    assert missing.status_code == 404
    assert missing.json()["detail"] == f"study {toy_id!r} kept no model: toy objective"
    assert not artifacts_dir(server, toy_id).exists()

    result = hpo(server, "export", toy_id, str(tmp_path / "toy"))
    assert result.exit_code == 1
    assert "kept no model: toy objective" in result.output
    assert not (tmp_path / "toy").exists()

    unknown = api.get("/studies/0123456789abcdef0123456789abcdef/best/artifact")
    assert unknown.status_code == 404
    assert "not found" in unknown.json()["detail"]


def test_a_ray_train_ddp_trial_saves_from_rank_zero_and_exports(
    api: httpx.Client, server: Server, tmp_path: Path
) -> None:
    """A 2-worker DDP trial on Ray Train (``ddp: ray_train``; the kept group is the default, run
    by the end-to-end tests): rank 0 saves, the metrics pass through Ray Train. One trial: a
    Ray Train trial starts its own worker group (about 30 s here), and keeping only the best of
    several trials is the driver's, the same on every path (the test above)."""
    spec = {
        **SPEC,
        "name": "export-ddp",
        "budget": {"n_trials": 1},
        "resources_per_trial": {
            "num_workers": 2,
            "cpus_per_worker": 1,
            "gpus_per_worker": 0,
            "ddp": "ray_train",
        },
        "search_space": {"learning_rate": {"type": "categorical", "choices": [3e-3, 1e-5]}},
    }
    response = api.post("/studies", json=spec)
    assert response.status_code == 201, response.text
    study_id = response.json()["id"]
    finished = wait_final(api, study_id)
    assert finished["status"] == "SUCCEEDED", finished["status_reason"]
    trials = api.get(f"/studies/{study_id}/trials", params={"state": "COMPLETE"}).json()
    assert trials["count"] == 1
    assert all(t["metrics"]["checkpoint_bytes"] > 100_000 for t in trials["data"]), trials
    assert not any("ddp_group_trials" in t["metrics"] for t in trials["data"])  # Ray Train's
    best = api.get(f"/studies/{study_id}/best").json()
    root = artifacts_dir(server, study_id)
    assert sorted(p.name for p in root.iterdir()) == ["best"]
    assert (
        json.loads((root / "best" / "hpo_trial.json").read_text())["trial_number"]
        == (best["number"])
    )

    target = tmp_path / "ddp-model"
    assert hpo(server, "export", study_id, str(target)).exit_code == 0
    model = AutoModelForSequenceClassification.from_pretrained(target, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(target, local_files_only=True)
    data = load_text_data(
        Dataset(name="synthetic-sentiment"), MAX_TRAIN_SAMPLES, MAX_EVAL_SAMPLES, seed=0
    )
    batch = tokenizer(data.eval_texts[:8], truncation=True, padding=True, return_tensors="pt")
    model.eval()
    with torch.no_grad():
        labels = model(**batch).logits.argmax(dim=-1).tolist()
    assert ",".join(map(str, labels)) == best["metrics"]["eval_predictions_head"]
