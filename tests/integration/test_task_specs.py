"""Tasks at submit time, through the real server: GET /tasks, a 422 naming the field for each
spec a task cannot run, POST /studies/validate (stores nothing), ``hpo validate`` asking the
server, a bad row found while loading, and a task plugin installed and run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from service.cli import app
from tests.conftest import SHARED_DATA, Server, submit, trials_of, wait_final

pytestmark = [pytest.mark.integration]

RTE = {
    "train": str(SHARED_DATA / "rte" / "train.tsv"),
    "text_column": "sentence1",
    "text_pair_column": "sentence2",
}
STSB = {
    "train": str(SHARED_DATA / "stsb" / "train.tsv"),
    "text_column": "sentence1",
    "text_pair_column": "sentence2",
    "label_column": "score",
}
WNUT = {"train": str(SHARED_DATA / "wnut17" / "emerging.dev.conll"), "format": "conll"}
PLUGIN = Path(__file__).resolve().parents[1] / "plugins" / "hpo_demo_task"


def spec(task: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": "task-spec",
        "search_space": {"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2}},
        "resources_per_trial": {"num_workers": 1, "cpus_per_worker": 0.5},
        "task": {"model": "tiny-bert", "max_train_samples": 32, "max_eval_samples": 16, **task},
        **extra,
    }


@pytest.fixture(scope="module")
def files(server: Server) -> dict[str, str]:
    """Small files in the server's data root that break one rule each."""
    root = server.state_dir.parent / "task-files"
    root.mkdir(exist_ok=True)
    good = "".join(f"row {i}\t{i % 5}.5\n" for i in range(30))
    contents = {
        "headerless.tsv": good,
        "late_bad_label.tsv": "text\tscore\n" + good + "a late row\tabc\n",
        "untagged.conll": "just\nwords\nhere\n",
        "sentences.jsonl": '{"words": ["a", "b"], "labels": ["O", "O"]}\n',
    }
    for name, text in contents.items():
        (root / name).write_text(text)
    return {name: str(root / name) for name in contents}


def test_tasks_lists_the_built_in_tasks(api: httpx.Client) -> None:
    tasks = {t["name"]: t for t in api.get("/tasks").json()["data"]}
    assert {"classification", "regression", "token_classification"} <= set(tasks)
    assert tasks["regression"]["metrics"]["eval_mse"] == "minimize"
    assert tasks["regression"]["primary_metric"] == "eval_pearson"
    token = tasks["token_classification"]
    assert token["formats"] == ["conll", "jsonl"] and "tags_column" in token["dataset_fields"]
    assert token["compressed_metric"] == "compressed_eval_f1"


CASES = [
    (spec({"type": "translation"}), "task.type", "registered: classification, regression"),
    (
        spec({"type": "regression", "dataset": STSB}, objective={"metric": "eval_accuracy"}),
        "objectives.0.metric",
        "task regression does not report eval_accuracy",
    ),
    (
        spec({"type": "regression", "dataset": STSB}, constraints=[{"metric": "eval_f1", "min": 0}]),  # noqa: E501
        "constraints.0.metric",
        "does not report eval_f1",
    ),
    (
        spec(
            {"type": "token_classification", "dataset": WNUT, "epochs": 3},
            scheduler={"type": "asha", "metric": "eval_mcc"},
        ),
        "scheduler.metric",
        "does not report eval_mcc",
    ),
    (
        spec({"dataset": {**RTE, "text_pair_column": "hypothesis"}}),
        "task.dataset.text_pair_column",
        "column 'hypothesis' is not in",
    ),
    (
        spec({"type": "regression", "dataset": {**STSB, "label_column": "genre"}}),
        "task.dataset.label_column",
        "is not a number",
    ),
    (
        spec({"type": "token_classification", "dataset": {"train": RTE["train"], "format": "tsv"}}),
        "task.dataset.format",
        "reads conll, jsonl files, not tsv",
    ),
    (
        spec({"type": "token_classification", "dataset": {**WNUT, "text_column": "x"}}),
        "task.dataset.text_column",
        "does not read text_column",
    ),
    (
        spec({"type": "regression"}),
        "task.dataset.name",
        "needs train (and eval) files",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("body", "field", "reason"), CASES)
def test_a_spec_the_task_cannot_run_is_422_naming_the_field(
    api: httpx.Client, body: dict[str, Any], field: str, reason: str
) -> None:
    for path in ("/studies", "/studies/validate"):
        response = api.post(path, json=body)
        assert response.status_code == 422, response.text
        problem = response.json()["detail"][0]
        assert problem["field"] == field and reason in problem["reason"], problem


def test_file_rules_are_checked_at_submit(api: httpx.Client, files: dict[str, str]) -> None:
    cases = [
        ({"train": files["headerless.tsv"], "column_names": ["text", "score"],
          "text_column": "text", "label_column": "score"}, "regression", None),
        ({"train": files["headerless.tsv"], "column_names": ["text", "score"],
          "text_column": "sentence", "label_column": "score"}, "regression",
         "task.dataset.text_column"),
        ({"train": files["untagged.conll"], "format": "conll"}, "token_classification",
         "task.dataset.train"),
        ({"train": files["sentences.jsonl"], "tokens_column": "words"}, "token_classification",
         "task.dataset.tags_column"),
        ({"train": files["sentences.jsonl"], "tokens_column": "words", "tags_column": "labels"},
         "token_classification", None),
    ]  # fmt: skip
    for dataset, task, field in cases:
        response = api.post("/studies/validate", json=spec({"type": task, "dataset": dataset}))
        if field is None:
            assert response.status_code == 200, response.text
            assert response.json()["task"] == task
        else:
            assert response.status_code == 422, response.text
            assert response.json()["detail"][0]["field"] == field, response.text


def test_validate_stores_nothing_and_the_cli_asks_the_server(
    api: httpx.Client, server: Server, tmp_path: Path
) -> None:
    before = api.get("/studies", params={"limit": 1}).json()["count"]
    verdict = api.post("/studies/validate", json=spec({"type": "regression", "dataset": STSB}))
    assert verdict.status_code == 200, verdict.text
    assert verdict.json()["objectives"] == [{"metric": "eval_pearson", "direction": "maximize"}]
    assert api.get("/studies", params={"limit": 1}).json()["count"] == before
    # A file outside the server's data roots: fine offline, refused by the server.
    outside = tmp_path / "outside.yaml"
    data = tmp_path / "data.tsv"
    data.write_text("sentence\tlabel\na\t0\nb\t1\n")
    space = "search_space:\n  learning_rate: {type: float, low: 0.001, high: 0.01}\n"
    outside.write_text(f"name: x\ntask:\n  dataset: {{train: {data}}}\n{space}")
    runner = CliRunner()
    offline = runner.invoke(app, ["validate", "--offline", str(outside)])
    assert offline.exit_code == 0 and "valid offline" in offline.output
    online = runner.invoke(app, ["validate", "--url", server.url, str(outside)])
    assert online.exit_code == 1 and "task.dataset.train" in online.output, online.output
    good = tmp_path / "good.json"
    good.write_text(json.dumps(spec({"dataset": RTE})))
    accepted = runner.invoke(app, ["validate", "--url", server.url, str(good)])
    assert accepted.exit_code == 0 and f"valid on {server.url}" in accepted.output


def test_a_bad_row_found_while_loading_fails_naming_file_and_line(
    api: httpx.Client, files: dict[str, str]
) -> None:
    dataset = {"train": files["late_bad_label.tsv"], "text_column": "text", "label_column": "score"}
    study_id = submit(api, spec({"type": "regression", "dataset": dataset}, budget={"n_trials": 1}))
    study = wait_final(api, study_id, timeout_s=300)
    assert study["status"] == "FAILED"
    reason = str(study["status_reason"])
    assert f"{files['late_bad_label.tsv']}, line 32: label 'abc' is not a finite number" in reason
    assert "Traceback" not in reason


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The test plugin package installed into this environment (not editable, built from a copy
    so the checkout stays clean), then removed."""
    source = shutil.copytree(PLUGIN, tmp_path_factory.mktemp("plugin") / PLUGIN.name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-build-isolation", "--no-index", str(source)],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield
    finally:
        subprocess.run([*pip, "uninstall", "-y", "hpo-demo-task"], check=True, capture_output=True)


@pytest.mark.slow
def test_an_installed_task_plugin_runs_a_study(api: httpx.Client, plugin: None) -> None:
    tasks = {t["name"]: t for t in api.get("/tasks").json()["data"]}
    assert tasks["balanced_classification"]["builtin"] is False
    bad = spec({"type": "balanced_classification", "dataset": RTE}, objective={"metric": "eval_f1"})
    assert api.post("/studies", json=bad).status_code == 422
    body = spec({"type": "balanced_classification", "dataset": RTE}, budget={"n_trials": 1})
    study = wait_final(api, submit(api, body), timeout_s=300)
    assert study["status"] == "SUCCEEDED", study["status_reason"]
    assert study["spec"]["objectives"] == [
        {"metric": "eval_balanced_accuracy", "direction": "maximize"}
    ]
    (trial,) = trials_of(api, str(study["id"]))
    assert 0.0 <= trial["metrics"]["eval_balanced_accuracy"] <= 1.0
    assert trial["value"] == trial["metrics"]["eval_balanced_accuracy"]
