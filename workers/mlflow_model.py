"""The best model of a finished study, logged to MLflow with the study's parent run.

A model the transformers flavour can describe (a sequence or token classification head, saved
with ``save_pretrained``) is logged as an MLflow transformers model (``mlflow.transformers``:
loadable with ``mlflow.transformers.load_model``, servable with ``mlflow models serve``); any
other saved model (a plugin task's), or when the flavour fails, goes up as the saved directory,
artifacts under ``best_model/``. ``hpo_trial.json`` (trial number, value, parameters) goes with it.
"""

from __future__ import annotations

import json
import logging
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ARTIFACT_DIR = "best_model"
MODEL_NAME = "best_model"
# The pipeline task of each head, by the architecture save_pretrained records in config.json.
PIPELINE_TASKS = {
    "ForSequenceClassification": "text-classification",
    "ForTokenClassification": "token-classification",
}


def pipeline_task(directory: Path) -> str | None:
    """The transformers pipeline task of the saved model, or None (not a known head)."""
    try:
        config = json.loads((directory / "config.json").read_text())
    except (OSError, ValueError):
        return None
    for architecture in config.get("architectures") or []:
        for suffix, task in PIPELINE_TASKS.items():
            if str(architecture).endswith(suffix):
                return task
    return None


def log_best_model(tracking_uri: str, run_id: str, directory: Path) -> str:
    """Log the saved model in ``directory`` with run ``run_id``; returns how ("transformers" or
    "artifacts")."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    info = directory / "hpo_trial.json"
    if info.is_file():
        client.log_artifact(run_id, str(info))
    task = pipeline_task(directory)
    if task is not None:
        try:
            _log_transformers(tracking_uri, run_id, directory, task)
            return "transformers"
        except Exception:
            log.warning("the transformers flavour failed; logging the directory", exc_info=True)
    client.log_artifacts(run_id, str(directory), artifact_path=ARTIFACT_DIR)
    return "artifacts"


def _log_transformers(tracking_uri: str, run_id: str, directory: Path, task: str) -> None:
    import mlflow
    import transformers

    mlflow.set_tracking_uri(tracking_uri)
    # The logged model belongs to the active experiment, not the run's: make them the same.
    mlflow.set_experiment(experiment_id=mlflow.MlflowClient().get_run(run_id).info.experiment_id)
    build: Any = transformers.pipeline  # typed per literal task; ours is a str
    pipeline = build(task, model=str(directory), tokenizer=str(directory))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the hub's model card and licence: not for local models
        mlflow.transformers.log_model(
            pipeline,
            name=MODEL_NAME,
            task=task,
            run_id=run_id,
            pip_requirements=_requirements(),  # not inferred: that loads the model once more
        )


def _requirements() -> list[str]:
    found: list[Any] = []
    for package in ("transformers", "torch", "tokenizers", "safetensors"):
        try:
            found.append(f"{package}=={version(package).split('+')[0]}")
        except PackageNotFoundError:
            continue
    return found
