"""Saving a trial's final model, and keeping only the best one (real Optuna, SQLite)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.trial import TrialState
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from search_spaces.tasks import BUILTIN_TASKS
from search_spaces.tunables import (
    COST_KEYS,
    COST_STRING_KEYS,
    DEPLOY_KEYS,
    REPORT_KEYS,
    RUN_KEYS,
    RUN_STRING_KEYS,
    TUNABLES,
)
from workers.artifacts import (
    ARTIFACT_KEYS,
    BestModelKeeper,
    keep_best,
    prune_trial_dirs,
    save_model,
    trial_model_dir,
)
from workers.data import synthetic_sentiment, tokenize
from workers.models import build_model
from workers.tiny_bert import build_tiny_bert_tokenizer
from workers.train_loop import run_training


def _hp(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {name: tunable.default for name, tunable in TUNABLES.items()}
    values.update(epochs=2, batch_size=16, max_seq_length=24, learning_rate=3e-3)
    values.update(overrides)
    return values


def test_run_training_saves_a_loadable_model_before_its_last_report(tmp_path: Path) -> None:
    data = tokenize(synthetic_sentiment(n_train=128, n_eval=32), build_tiny_bert_tokenizer(), 64)
    target = tmp_path / "trials" / "4"
    reports: list[dict[str, Any]] = []

    def report(metrics: dict[str, Any]) -> None:
        reports.append({**metrics, "saved": target.is_dir()})

    run_training(_hp(), data, "tiny-bert", report, torch.device("cpu"), save_dir=str(target))
    first, last = reports
    task = BUILTIN_TASKS["classification"]
    every = {
        *task.metrics,
        *REPORT_KEYS,
        *COST_KEYS,
        *COST_STRING_KEYS,
        *RUN_KEYS,
        *RUN_STRING_KEYS,
        "epochs_trained",
    }
    assert set(first) == {*every, "saved"} and not first["saved"]  # only after last
    assert set(last) == {*every, *DEPLOY_KEYS, task.compressed_metric, *ARTIFACT_KEYS, "saved"}
    assert last["saved"] and last["checkpoint_bytes"] > 100_000
    assert last["checkpoint_bytes"] == sum(p.stat().st_size for p in target.iterdir())
    assert sorted(p.name for p in target.parent.iterdir()) == ["4"]  # no temporary dir left

    model = AutoModelForSequenceClassification.from_pretrained(target, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(target, local_files_only=True)
    assert tokenizer.model_max_length == 24  # the trial's max_seq_length
    batch = tokenizer(
        synthetic_sentiment(n_train=128, n_eval=32).eval_texts[:8],
        truncation=True,
        padding=True,
        return_tensors="pt",
    )
    model.eval()
    with torch.no_grad():
        labels = model(**batch).logits.argmax(dim=-1).tolist()
    assert ",".join(map(str, labels)) == last["eval_predictions_head"]


def test_save_model_replaces_an_earlier_copy(tmp_path: Path) -> None:
    target = tmp_path / "trials" / "0"
    target.mkdir(parents=True)
    (target / "stale.bin").write_bytes(b"x")
    model = build_model("tiny-bert", 2, 0.1, seed=0)
    size = save_model(model, build_tiny_bert_tokenizer(), target)
    assert "stale.bin" not in {p.name for p in target.iterdir()}
    assert size == sum(p.stat().st_size for p in target.iterdir())


def _finished(study: optuna.Study, value: float, state: TrialState = TrialState.COMPLETE) -> int:
    trial = study.ask()
    if state == TrialState.COMPLETE:
        study.tell(trial, value)
    else:
        study.tell(trial, state=state)
    return trial.number


def _save_dummy(artifacts: Path, number: int) -> None:
    directory = trial_model_dir(artifacts, number)
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps({"trial": number}))


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_prune_and_keep_best(tmp_path: Path, direction: str) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="s", storage=storage, direction=direction)
    artifacts = tmp_path / "artifacts" / "abc"
    a = _finished(study, 0.5)
    b = _finished(study, 0.9)
    c = _finished(study, 0.0, TrialState.FAIL)
    running = study.ask().number
    for number in (a, b, c, running):
        _save_dummy(artifacts, number)
    best = b if direction == "maximize" else a
    keeper = BestModelKeeper(storage, "s", artifacts)
    keeper.on_trial_complete(0, [], None)  # type: ignore[arg-type]
    left = sorted(int(p.name) for p in (artifacts / "trials").iterdir())
    assert left == sorted([best, running])  # the running trial's dir is left alone
    assert prune_trial_dirs(storage, "s", artifacts) == best

    study.tell(running, 0.7)
    (artifacts / "trials" / f".tmp-{running}-x").mkdir()  # a half-written save
    kept = keep_best(storage, "s", "abc", artifacts)
    assert kept == artifacts / "best"
    assert sorted(p.name for p in artifacts.iterdir()) == ["best"]
    assert json.loads((kept / "config.json").read_text()) == {"trial": best}
    info = json.loads((kept / "hpo_trial.json").read_text())
    assert info == {
        "study_id": "abc",
        "trial_number": best,
        "value": 0.9 if direction == "maximize" else 0.5,
        "params": {},
    }
    # A later attempt (resume) finding the same best keeps best/ as it is.
    assert keep_best(storage, "s", "abc", artifacts) == kept
    assert json.loads((kept / "hpo_trial.json").read_text())["trial_number"] == best


def test_keep_best_multi_objective_takes_the_first_of_the_front(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(
        study_name="m", storage=storage, directions=["maximize", "minimize"]
    )
    artifacts = tmp_path / "artifacts" / "m"
    numbers = []
    for values in ([0.5, 0.5], [0.9, 0.9], [0.4, 0.6]):  # the last is dominated by the first
        trial = study.ask()
        study.tell(trial, values)
        numbers.append(trial.number)
        _save_dummy(artifacts, trial.number)
    kept = keep_best(storage, "m", "m", artifacts)
    assert kept is not None
    assert json.loads((kept / "hpo_trial.json").read_text())["trial_number"] == numbers[0]
    assert json.loads((kept / "hpo_trial.json").read_text())["value"] == [0.5, 0.5]
    assert sorted(p.name for p in artifacts.iterdir()) == ["best"]


def test_keep_best_without_a_completed_trial_keeps_nothing(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="f", storage=storage)
    artifacts = tmp_path / "artifacts" / "f"
    _save_dummy(artifacts, _finished(study, 0.0, TrialState.FAIL))
    assert keep_best(storage, "f", "f", artifacts) is None
    assert not (artifacts / "best").exists()
    assert not (artifacts / "trials").exists()  # the failed trial's model is deleted


def _ddp_worker(rank: int, port: int, target: str, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        data = tokenize(synthetic_sentiment(n_train=64, n_eval=16), build_tiny_bert_tokenizer(), 32)
        reports: list[dict[str, Any]] = []
        run_training(_hp(epochs=1), data, "tiny-bert", reports.append, save_dir=target)
        Path(out, f"rank{rank}.json").write_text(json.dumps(reports))
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(180)
def test_ddp_rank_zero_saves_and_every_rank_reports_the_same(tmp_path: Path) -> None:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    target = tmp_path / "trials" / "0"
    mp.spawn(_ddp_worker, args=(port, str(target), str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0] == ranks[1]
    last = ranks[0][-1]
    assert last["checkpoint_bytes"] == sum(p.stat().st_size for p in target.iterdir())
    assert len(last["eval_predictions_head"].split(",")) == 8
    assert sorted(p.name for p in target.parent.iterdir()) == ["0"]
    AutoModelForSequenceClassification.from_pretrained(target, local_files_only=True)
