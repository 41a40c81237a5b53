"""Every built-in task through the real server and Ray: GLUE RTE (a sentence pair, with the
model as a search dimension), STS-B (regression) and WNUT-17 (named entities, CoNLL), each on
2-worker DDP trials over small seeded subsets of ../shared/data. Each best model is exported,
reloaded with its AutoModelFor... class and scored again here, by scikit-learn, SciPy and
seqeval: what the trial reported must be what the libraries compute on the same predictions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from scipy.stats import pearsonr, spearmanr
from seqeval.metrics import accuracy_score as seqeval_accuracy
from seqeval.metrics import f1_score as entity_f1
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef
from transformers import (
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
)

from search_spaces.spec import validate_spec
from tests.conftest import SHARED_DATA, Server, submit, trials_of, wait_final
from workers.data import collate
from workers.tasks import task_for
from workers.tasks.base import IGNORED

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DDP = {"num_workers": 2, "cpus_per_worker": 1}
COMMON = {"max_seq_length": 32, "max_train_samples": 64, "max_eval_samples": 32, "epochs": 1}
MODELS = ["tiny-bert", "minilm-l6"]
LR = {"learning_rate": {"type": "categorical", "choices": [3e-3]}}
SPECS: dict[str, dict[str, Any]] = {
    "rte": {
        "task": {
            **COMMON,
            "dataset": {
                "train": str(SHARED_DATA / "rte" / "train.tsv"),
                "eval": str(SHARED_DATA / "rte" / "dev.tsv"),
                "text_column": "sentence1", "text_pair_column": "sentence2",
            },
        },
        "search_space": {**LR, "model": {"type": "categorical", "choices": MODELS}},
        "budget": {"n_trials": 2},
    },
    "stsb": {
        "task": {
            **COMMON, "type": "regression",
            "dataset": {
                "train": str(SHARED_DATA / "stsb" / "train.tsv"),
                "eval": str(SHARED_DATA / "stsb" / "dev.tsv"),
                "text_column": "sentence1", "text_pair_column": "sentence2",
                "label_column": "score",
            },
        },
        "search_space": LR,
        "budget": {"n_trials": 1},
    },
    "wnut17": {
        "task": {
            **COMMON, "type": "token_classification", "compression": "dynamic_int8",
            "dataset": {
                "train": str(SHARED_DATA / "wnut17" / "wnut17train.conll"),
                "eval": str(SHARED_DATA / "wnut17" / "emerging.dev.conll"), "format": "conll",
            },
        },
        "search_space": LR,
        "budget": {"n_trials": 1},
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def finished(api: httpx.Client) -> dict[str, dict[str, Any]]:
    """The three studies, submitted together (they queue) and followed to their ends."""
    ids = {
        name: submit(
            api, {"name": f"task-{name}", "algorithm": "grid", "resources_per_trial": DDP, **spec}
        )
        for name, spec in SPECS.items()
    }
    studies = {name: wait_final(api, study_id) for name, study_id in ids.items()}
    for name, study in studies.items():
        assert study["status"] == "SUCCEEDED", (name, study["status_reason"])
    return studies


def _trials(api: httpx.Client, study: dict[str, Any]) -> list[dict[str, Any]]:
    trials = trials_of(api, study["id"])
    assert trials and all(t["state"] == "COMPLETE" for t in trials), trials
    return trials


def test_pair_classification_runs_each_model_on_ddp(
    api: httpx.Client, finished: dict[str, dict[str, Any]]
) -> None:
    study = finished["rte"]
    assert study["spec"]["objectives"] == [{"metric": "eval_accuracy", "direction": "maximize"}]
    trials = _trials(api, study)
    assert sorted(t["params"]["model"] for t in trials) == ["minilm-l6", "tiny-bert"]
    sizes = {t["params"]["model"]: t["metrics"]["parameter_count"] for t in trials}
    assert sizes["minilm-l6"] > 10 * sizes["tiny-bert"]  # each trial built its sampled model
    for trial in trials:
        metrics = trial["metrics"]
        assert metrics["ddp_group_trials"] >= 1  # trained on the kept 2-worker group
        for key in ("eval_accuracy", "eval_f1", "compressed_eval_accuracy"):
            assert 0.0 <= metrics[key] <= 1.0, (key, metrics)
        assert -1.0 <= metrics["eval_mcc"] <= 1.0 and metrics["eval_loss"] > 0


def test_regression_and_token_classification_report_their_metrics(
    api: httpx.Client, finished: dict[str, dict[str, Any]]
) -> None:
    assert finished["stsb"]["spec"]["objectives"][0]["metric"] == "eval_pearson"
    assert finished["wnut17"]["spec"]["objectives"][0]["metric"] == "eval_f1"
    (stsb,) = _trials(api, finished["stsb"])
    metrics = stsb["metrics"]
    assert -1.0 <= metrics["eval_pearson"] <= 1.0 and -1.0 <= metrics["eval_spearman"] <= 1.0
    assert metrics["eval_mse"] == pytest.approx(metrics["eval_loss"]) and metrics["eval_mse"] > 0
    assert metrics["compressed_eval_pearson"] == metrics["eval_pearson"]  # compression none
    (wnut,) = _trials(api, finished["wnut17"])
    metrics = wnut["metrics"]
    for key in ("eval_f1", "eval_precision", "eval_recall", "compressed_eval_f1"):
        assert 0.0 <= metrics[key] <= 1.0, (key, metrics)
    assert 0.5 < metrics["eval_accuracy"] <= 1.0  # most words are O
    assert metrics["compressed_model_bytes"] < metrics["model_bytes"]  # int8 was measured


def _best_dir(server: Server, study: dict[str, Any]) -> Path:
    return server.state_dir / "ray_results" / "artifacts" / study["id"] / "best"


def _rescored(server: Server, study: dict[str, Any], name: str) -> tuple[Any, list[Any], Any]:
    """The exported best model reloaded, the task's eval data, and the model's predictions."""
    best = _best_dir(server, study)
    info = json.loads((best / "hpo_trial.json").read_text())
    spec = validate_spec({"name": "x", "search_space": LR, **SPECS[name]})
    assert info["task"] == spec.task.type
    kind = (
        AutoModelForTokenClassification
        if spec.task.type == "token_classification"
        else AutoModelForSequenceClassification
    )
    model = kind.from_pretrained(best).eval()
    task = task_for(spec.task.type)
    data = task.tokenize(
        task.load(spec.task.dataset, COMMON["max_train_samples"], COMMON["max_eval_samples"], 0),
        AutoTokenizer.from_pretrained(best),
        COMMON["max_seq_length"],
    )
    with torch.no_grad():
        batch = collate(data.eval_ids, data.eval_labels, data.pad_id, data.eval_types)
        labels = batch.pop("labels")
        logits = model(**batch).logits
    return data, labels, logits


def test_exported_models_reload_and_their_metrics_match_the_libraries(
    api: httpx.Client, server: Server, finished: dict[str, dict[str, Any]]
) -> None:
    reported = {
        name: api.get(f"/studies/{study['id']}/best").json()["metrics"]
        for name, study in finished.items()
    }
    data, labels, logits = _rescored(server, finished["rte"], "rte")
    predicted = logits.argmax(-1).tolist()
    rte = reported["rte"]
    assert rte["eval_accuracy"] == pytest.approx(accuracy_score(labels, predicted))
    assert rte["eval_f1"] == pytest.approx(f1_score(labels, predicted, zero_division=0))
    assert rte["eval_mcc"] == pytest.approx(matthews_corrcoef(labels, predicted), abs=1e-9)

    data, labels, logits = _rescored(server, finished["stsb"], "stsb")
    scores = logits.squeeze(-1).tolist()
    stsb = reported["stsb"]
    assert stsb["eval_pearson"] == pytest.approx(pearsonr(scores, labels).statistic, abs=1e-4)
    assert stsb["eval_spearman"] == pytest.approx(spearmanr(scores, labels).statistic, abs=1e-4)
    mse = sum((s - y) ** 2 for s, y in zip(scores, labels.tolist(), strict=True)) / len(scores)
    assert stsb["eval_mse"] == pytest.approx(mse, rel=1e-4)

    data, labels, logits = _rescored(server, finished["wnut17"], "wnut17")
    names = data.label_names
    gold, tagged = [], []
    for row_labels, row_predicted in zip(labels.tolist(), logits.argmax(-1).tolist(), strict=True):
        words = [i for i, label in enumerate(row_labels) if label != IGNORED]
        gold.append([names[row_labels[i]] for i in words])
        tagged.append([names[row_predicted[i]] for i in words])
    assert reported["wnut17"]["eval_f1"] == pytest.approx(entity_f1(gold, tagged), abs=1e-9)
    # Word-tag accuracy: most words are O, so this checks the gathered predictions word by word.
    accuracy = reported["wnut17"]["eval_accuracy"]
    assert accuracy == pytest.approx(seqeval_accuracy(gold, tagged), abs=1e-9)
