"""The store contract, on SQLite and on PostgreSQL: study rows and trial queries vs Optuna."""

from __future__ import annotations

import math

import optuna
import pytest
from sqlalchemy import Engine

from service.store import EventStore, StudyStore, TrialQueries
from service.store.trial_filters import TrialFilter

pytestmark = pytest.mark.postgres


def _optuna_study(url: str, name: str, direction: str = "maximize") -> optuna.Study:
    """An Optuna study with COMPLETE, PRUNED, FAIL and RUNNING trials of every parameter type."""
    study = optuna.create_study(storage=url, study_name=name, direction=direction)
    study.sampler = optuna.samplers.RandomSampler(seed=1)
    for i in range(12):
        trial = study.ask()
        lr = trial.suggest_float("learning_rate", 1e-5, 1e-2, log=True)
        trial.suggest_int("epochs", 1, 4)
        trial.suggest_categorical("optimizer", ["adamw", "sgd"])
        trial.report(lr * 10, 1)
        trial.set_user_attr("metrics", {"eval_f1": 0.5})
        if i % 6 == 4:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif i % 6 == 5:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, math.sin(i) + lr)
    study.ask()  # one left RUNNING
    return study


def test_study_rows_lifecycle(engine: Engine) -> None:
    store = StudyStore(engine)
    first = store.create("a", {"name": "a"})
    second = store.create("b", {"name": "b"})
    assert store.get(first.id) == first
    assert store.get("missing") is None
    assert [s.id for s in store.with_status("QUEUED")] == [first.id, second.id]
    assert store.start_attempt(first.id, ("QUEUED",), "job-1")
    assert not store.start_attempt(first.id, ("QUEUED",), "job-2")  # not QUEUED any more
    running = store.get(first.id)
    assert running is not None and running.status == "RUNNING" and running.attempts == 1
    assert running.ray_job_id == "job-1" and running.started_at is not None
    assert store.transition(first.id, ("RUNNING",), "RESUMING", "driver died")
    assert store.start_attempt(first.id, ("RESUMING",), "job-2")
    resumed = store.get(first.id)
    assert resumed is not None and resumed.attempts == 2 and resumed.ray_job_id == "job-2"
    assert resumed.started_at == running.started_at  # the first start is kept
    assert store.transition(first.id, ("RUNNING",), "SUCCEEDED", "done")
    assert not store.transition(first.id, ("RUNNING",), "FAILED", "late")  # never applied twice
    done = store.get(first.id)
    assert done is not None and done.status == "SUCCEEDED" and done.status_reason == "done"
    assert done.finished_at is not None
    history = EventStore(engine).after(first.id, kind="status")
    assert [e.data["status"] for e in history] == [
        "QUEUED",
        "RUNNING",
        "RESUMING",
        "RUNNING",
        "SUCCEEDED",
    ]
    assert history[2].data["reason"] == "driver died"
    assert [e.id for e in history] == sorted(e.id for e in history)
    page, total = store.page(limit=1)
    assert total == 2 and [s.id for s in page] == [second.id]  # newest first
    page, total = store.page(status="SUCCEEDED")
    assert total == 1 and page[0].id == first.id
    page, total = store.page(limit=1, offset=1)
    assert [s.id for s in page] == [first.id]


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_trial_queries_agree_with_optuna(database_url: str, engine: Engine, direction: str) -> None:
    study = _optuna_study(database_url, f"contract-{direction}", direction)
    queries = TrialQueries(engine)
    study_id = queries.study_id(study.study_name)
    assert study_id is not None
    assert queries.study_id("no-such-study") is None
    assert queries.directions(study_id) == [direction.upper()]

    frozen = study.get_trials(deepcopy=False)
    counts = queries.counts(study_id)
    for state in ("COMPLETE", "PRUNED", "FAIL", "RUNNING"):
        assert counts[state] == sum(t.state.name == state for t in frozen)

    best = queries.best(study_id)
    assert best is not None
    assert best.number == study.best_trial.number
    assert best.value == pytest.approx(study.best_value)
    assert best.params == study.best_trial.params
    assert best.intermediate_values == study.best_trial.intermediate_values
    assert best.user_attrs == {"metrics": {"eval_f1": 0.5}}
    assert best.duration_s is not None and best.duration_s >= 0

    # Sorting by value, best first, pages without gaps or duplicates.
    complete = [t for t in frozen if t.state.name == "COMPLETE"]
    expected = sorted(complete, key=lambda t: t.value or 0.0, reverse=direction == "maximize")
    seen: list[int] = []
    for offset in range(0, len(complete), 3):
        page = queries.page(
            study_id,
            where=TrialFilter(state="COMPLETE"),
            sort="value",
            descending=direction == "maximize",
            limit=3,
            offset=offset,
        )
        assert page.total == len(complete)
        seen.extend(t.number for t in page.trials)
    assert seen == [t.number for t in expected]

    found = queries.page(study_id, sort="number", descending=True, limit=100)
    everything = found.trials
    assert found.total == len(frozen) and found.next_cursor is None
    assert [t.number for t in everything] == sorted((t.number for t in frozen), reverse=True)
    by_number = {t.number: t for t in frozen}
    for trial in everything:
        assert trial.state == by_number[trial.number].state.name
        assert trial.params == by_number[trial.number].params


def test_study_without_completed_trials_has_no_best(database_url: str, engine: Engine) -> None:
    study = optuna.create_study(storage=database_url, study_name="empty")
    study.ask()
    queries = TrialQueries(engine)
    study_id = queries.study_id("empty")
    assert study_id is not None
    assert queries.best(study_id) is None
    assert queries.counts(study_id)["RUNNING"] == 1
