"""Efficiency-aware tuning through the real service: LoRA and compression as searched options,
cost and deployment metrics as objectives and constraints, and the compressed best model."""

from __future__ import annotations

import io
import itertools
import tarfile
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

from search_spaces.spec import validate_spec
from search_spaces.tunables import DEPLOY_KEYS, RUN_KEYS
from tests.conftest import submit, trials_of, wait_final
from workers.compression import load_compressed
from workers.run_study import tokenise_once
from workers.tasks.classification import ClassificationTask
from workers.tasks.evaluation import evaluate

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TASK: dict[str, Any] = {
    "model": "tiny-bert",
    "dataset": {"name": "synthetic-sentiment"},
    "max_seq_length": 32,
    "max_train_samples": 128,
    "max_eval_samples": 64,
    "epochs": 1,
    "hyperparameters": {"batch_size": 16, "learning_rate": 3e-3},
}
RESOURCES = {"num_workers": 1, "cpus_per_worker": 1, "gpus_per_worker": 0}
COMBINATIONS = [
    {"finetune_method": method, "compression": compression}
    for method, compression in itertools.product(["full", "lora"], ["none", "dynamic_int8"])
]
FRONT: dict[str, Any] = {
    "name": "efficiency-front",
    "algorithm": "nsga2",
    "algorithm_settings": {"seed": 3},
    "objectives": [
        {"metric": "compressed_eval_accuracy"},
        {"metric": "compressed_model_bytes"},
        {"metric": "compressed_latency_b32_ms"},
    ],
    "constraints": [{"metric": "peak_rss_bytes", "max": 64 * 2**30}],
    "budget": {"n_trials": 4},
    "resources_per_trial": RESOURCES,
    "task": TASK,
    "search_space": {
        "finetune_method": {"type": "categorical", "choices": ["full", "lora"]},
        "compression": {"type": "categorical", "choices": ["none", "dynamic_int8"]},
    },
    "points_to_evaluate": COMBINATIONS,
}
SMALLEST: dict[str, Any] = {
    "name": "efficiency-smallest",
    "algorithm": "grid",
    "objective": {"metric": "compressed_model_bytes"},  # measured once, after the last epoch
    "budget": {"n_trials": 2},
    "resources_per_trial": RESOURCES,
    "task": {**TASK, "epochs": 2},
    "search_space": {"compression": {"type": "categorical", "choices": ["none", "prune_l1_50"]}},
}


@pytest.fixture(scope="module")
def studies(api: httpx.Client) -> dict[str, str]:
    ids = {"front": submit(api, FRONT), "smallest": submit(api, SMALLEST)}
    for key, study_id in ids.items():
        finished = wait_final(api, study_id)
        assert finished["status"] == "SUCCEEDED", (key, finished["status_reason"])
    return ids


def test_every_trial_reports_what_its_model_costs_to_serve(
    api: httpx.Client, studies: dict[str, str]
) -> None:
    found = {(t["params"]["finetune_method"], t["params"]["compression"]): t for t in
             trials_of(api, studies["front"])}  # fmt: skip
    assert len(found) == 4 and all(t["state"] == "COMPLETE" for t in found.values())
    for trial in found.values():
        metrics = trial["metrics"]
        assert set(DEPLOY_KEYS) | set(RUN_KEYS) <= set(metrics), metrics
        assert metrics["precision_used"] == "fp32"  # auto on a CPU
        assert metrics["latency_b32_ms"] > metrics["latency_b1_ms"] > 0
        assert trial["values"] == [
            metrics["compressed_eval_accuracy"],
            metrics["compressed_model_bytes"],
            metrics["compressed_latency_b32_ms"],
        ]
    for method in ("full", "lora"):
        plain, int8 = found[(method, "none")]["metrics"], found[(method, "dynamic_int8")]["metrics"]
        assert plain["compressed_model_bytes"] == plain["model_bytes"]
        assert int8["compressed_model_bytes"] < 0.8 * int8["model_bytes"]
    full, lora = found[("full", "none")]["metrics"], found[("lora", "none")]["metrics"]
    assert lora["trainable_parameter_count"] < 0.2 * full["trainable_parameter_count"]
    assert lora["checkpoint_bytes"] < 0.2 * full["checkpoint_bytes"]


def test_the_pareto_front_of_accuracy_size_and_latency(
    api: httpx.Client, studies: dict[str, str]
) -> None:
    found = trials_of(api, studies["front"])
    front = api.get(f"/studies/{studies['front']}/pareto").json()["data"]
    assert front
    numbers = {t["number"] for t in front}

    def dominates(a: list[float], b: list[float]) -> bool:
        better = (a[0] >= b[0], a[1] <= b[1], a[2] <= b[2])
        return all(better) and a != b

    for trial in found:  # the front is exactly the non-dominated trials
        dominated = any(dominates(o["values"], trial["values"]) for o in found)
        assert (trial["number"] in numbers) == (not dominated), trial["number"]
    # The int8 models are the smallest: one of them is on the front.
    assert any(t["params"]["compression"] == "dynamic_int8" for t in front)


def test_a_final_metric_objective_keeps_the_compressed_best_model(
    api: httpx.Client, studies: dict[str, str], tmp_path: Path
) -> None:
    study_id = studies["smallest"]
    best = api.get(f"/studies/{study_id}/best").json()
    assert best["params"] == {"compression": "prune_l1_50"}
    metrics = best["metrics"]
    assert best["value"] == metrics["compressed_model_bytes"] < metrics["model_bytes"]
    # Measured once: an intermediate value at the last (second) epoch only.
    assert best["intermediate_values"] == {"2": best["value"]}
    response = api.get(f"/studies/{study_id}/best/artifact")
    assert response.status_code == 200, response.text
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as tar:
        tar.extractall(tmp_path, filter="data")
    assert (tmp_path / "config.json").is_file() and (tmp_path / "compressed" / "model.pt").is_file()
    model = load_compressed(tmp_path / "compressed")
    (data,) = tokenise_once(validate_spec(SMALLEST))  # the eval rows the trials saw
    scores, _ = evaluate(model, ClassificationTask(), data, 64, torch.device("cpu"))
    assert scores["eval_accuracy"] == best["metrics"]["compressed_eval_accuracy"]
