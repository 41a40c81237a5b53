"""Trial pages, filters, keyset cursors, summaries and indexes against brute force over Optuna's
own view of the stored trials, on SQLite and on PostgreSQL."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import Engine, inspect

from service.store import TrialQueries
from service.store.indexes import INDEXES, ensure_indexes
from service.store.trial_filters import Cursor, ParamFilter, QueryError, TrialFilter

pytestmark = pytest.mark.postgres


def _study(url: str, name: str, direction: str = "maximize") -> optuna.Study:
    """40 trials: ties, infinities, every state, a conditional parameter."""
    study = optuna.create_study(storage=url, study_name=name, direction=direction)
    study.sampler = optuna.samplers.RandomSampler(seed=3)
    for i in range(40):
        trial = study.ask()
        trial.suggest_float("learning_rate", 1e-5, 1e-1, log=True)
        trial.suggest_int("batch_size", 8, 64, step=8)
        if trial.suggest_categorical("optimizer", ["adamw", "sgd"]) == "sgd":
            trial.suggest_float("momentum", 0.0, 0.99)
        if i % 10 == 7:
            study.tell(trial, state=TrialState.PRUNED)
        elif i % 10 == 8:
            study.tell(trial, state=TrialState.FAIL)
        elif i == 13:
            study.tell(trial, math.inf)
        elif i == 14:
            study.tell(trial, -math.inf)
        else:
            study.tell(trial, round(math.sin(i), 1))  # rounding makes ties
    study.ask()
    study.ask()
    return study


def _key(trial: FrozenTrial, sort: str) -> float | None:
    if sort == "number":
        return trial.number
    if sort == "value":
        return trial.value if trial.state == TrialState.COMPLETE else None
    if trial.datetime_start and trial.datetime_complete:
        return (trial.datetime_complete - trial.datetime_start).total_seconds()
    return None


def _expected(trials: list[FrozenTrial], sort: str, descending: bool) -> list[int]:
    """Brute-force order: key asc|desc with missing keys last, then trial number."""
    present = [t for t in trials if _key(t, sort) is not None]
    missing = [t for t in trials if _key(t, sort) is None]
    present.sort(key=lambda t: t.number)
    present.sort(key=lambda t: _key(t, sort) or 0.0, reverse=descending)
    if sort == "number" and descending:
        return [t.number for t in present]
    return [t.number for t in present] + sorted(t.number for t in missing)


def _walk(queries: TrialQueries, study_id: int, **kwargs: Any) -> list[int]:
    """Every page by keyset cursor, 7 at a time."""
    numbers: list[int] = []
    cursor = None
    for _ in range(100):
        page = queries.page(study_id, limit=7, cursor=cursor, **kwargs)
        numbers.extend(t.number for t in page.trials)
        if page.next_cursor is None:
            return numbers
        cursor = Cursor.decode(page.next_cursor.encode())  # round-trips as the API's token
    raise AssertionError("pagination did not end")


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_keyset_pages_match_brute_force_order(
    database_url: str, engine: Engine, direction: str
) -> None:
    study = _study(database_url, f"pages-{direction}", direction)
    queries = TrialQueries(engine)
    study_id = queries.study_id(study.study_name)
    assert study_id is not None
    frozen = study.get_trials(deepcopy=False)
    best = queries.best(study_id)
    assert best is not None and best.number == study.best_trial.number
    assert best.value == (math.inf if direction == "maximize" else -math.inf)
    for sort in ("number", "value", "duration"):
        for descending in (False, True):
            walked = _walk(queries, study_id, sort=sort, descending=descending)
            assert len(walked) == len(set(walked)) == len(frozen), (sort, descending)
            if sort == "duration":
                # Equal durations may tie-break in either order: compare the key sequence.
                keys = [_key(frozen[n], sort) for n in walked]
                finite = [k for k in keys if k is not None]
                assert finite == sorted(finite, reverse=descending)
                assert all(k is None for k in keys[len(finite) :])
            else:
                assert walked == _expected(frozen, sort, descending), (sort, descending)


def test_filters_match_brute_force(database_url: str, engine: Engine) -> None:
    study = _study(database_url, "filters")
    queries = TrialQueries(engine)
    study_id = queries.study_id("filters")
    assert study_id is not None
    frozen = study.get_trials(deepcopy=False)

    def numbers(where: TrialFilter) -> list[int]:
        return _walk(queries, study_id, where=where, sort="number", descending=False)

    def brute(predicate: Any) -> list[int]:
        return [t.number for t in frozen if predicate(t)]

    assert numbers(TrialFilter(state="PRUNED")) == brute(lambda t: t.state == TrialState.PRUNED)
    assert numbers(TrialFilter(value_min=0.0, value_max=0.5)) == brute(
        lambda t: t.value is not None and 0.0 <= t.value <= 0.5
    )
    assert numbers(TrialFilter(value_min=1e9)) == brute(lambda t: t.value == math.inf)
    lr = ParamFilter.parse("learning_rate:1e-4:1e-2")
    assert numbers(TrialFilter(params=(lr,))) == brute(
        lambda t: 1e-4 <= t.params.get("learning_rate", -1) <= 1e-2
    )
    sgd = ParamFilter.parse("optimizer:sgd")
    big = ParamFilter.parse("batch_size:32:")
    assert numbers(TrialFilter(state="COMPLETE", params=(sgd, big))) == brute(
        lambda t: (
            t.state == TrialState.COMPLETE
            and t.params.get("optimizer") == "sgd"
            and t.params.get("batch_size", 0) >= 32
        )
    )
    exact = ParamFilter.parse("batch_size:16")
    sixteen = brute(lambda t: t.params.get("batch_size") == 16)
    assert numbers(TrialFilter(params=(exact,))) == sixteen
    # A conditional parameter only matches the trials that have it.
    momentum = ParamFilter.parse("momentum::0.5")
    assert numbers(TrialFilter(params=(momentum,))) == brute(
        lambda t: "momentum" in t.params and t.params["momentum"] <= 0.5
    )
    page = queries.page(study_id, where=TrialFilter(params=(sgd,)), limit=3)
    assert page.total == len(brute(lambda t: t.params.get("optimizer") == "sgd"))


def test_bad_filters_and_cursors_name_the_field(database_url: str, engine: Engine) -> None:
    _study(database_url, "bad-filters")
    queries = TrialQueries(engine)
    study_id = queries.study_id("bad-filters")
    assert study_id is not None
    for text in ("nope:1", "optimizer:rmsprop", "optimizer:0:1", "learning_rate:fast"):
        with pytest.raises(QueryError) as raised:
            queries.page(study_id, where=TrialFilter(params=(ParamFilter.parse(text),)))
        assert raised.value.field == "param", text
    first = queries.page(study_id, sort="value", descending=True, limit=5)
    assert first.next_cursor is not None
    with pytest.raises(QueryError, match="cursor"):
        queries.page(study_id, sort="number", cursor=first.next_cursor)


def test_unparseable_filters_and_cursors() -> None:
    for text in ("", "lr", "lr:1:2:3", "lr:a:b", "lr::"):
        with pytest.raises(QueryError, match="param"):
            ParamFilter.parse(text)
    for token in ("garbage!", "e30", Cursor("value", True, 0.5, 3).encode()[:-3]):
        with pytest.raises(QueryError, match="cursor"):
            Cursor.decode(token)


def test_summaries_match_each_study(database_url: str, engine: Engine) -> None:
    up, down = _study(database_url, "sum-max"), _study(database_url, "sum-min", "minimize")
    optuna.create_study(storage=database_url, study_name="sum-empty")
    queries = TrialQueries(engine)
    found = queries.summaries(["sum-max", "sum-min", "sum-empty", "missing"])
    assert set(found) == {"sum-max", "sum-min", "sum-empty"}
    for study in (up, down):
        summary = found[study.study_name]
        frozen = study.get_trials(deepcopy=False)
        for state in ("COMPLETE", "PRUNED", "FAIL", "RUNNING"):
            assert summary.counts[state] == sum(t.state.name == state for t in frozen)
        assert summary.counts["PAUSED"] == 0
        assert summary.best_value == study.best_value
    assert found["sum-max"].best_value == math.inf
    assert found["sum-min"].best_value == -math.inf
    assert found["sum-empty"].best_value is None
    assert sum(found["sum-empty"].counts.values()) == 0


def test_indexes_exist_and_creation_is_idempotent(database_url: str, engine: Engine) -> None:
    optuna.create_study(storage=database_url, study_name="indexed")
    postgres = engine.dialect.name == "postgresql"
    reltuples = "SELECT reltuples FROM pg_class WHERE relname = 'trials'"  # -1: never analyzed
    if postgres:
        with engine.connect() as conn:
            assert conn.exec_driver_sql(reltuples).scalar() == -1
    ensure_indexes(engine)
    if postgres:  # the statistics the planner needs are there
        with engine.connect() as conn:
            assert conn.exec_driver_sql(reltuples).scalar() == 0
    ensure_indexes(engine)
    inspector = inspect(engine)
    present = {
        index["name"]
        for table in ("trials", "trial_values")
        for index in inspector.get_indexes(table)
    }
    assert {str(index.name) for index in INDEXES} <= present


def _front_numbers(study: optuna.Study) -> set[int]:
    """Brute force: numbers of the completed trials no other completed trial dominates."""
    signs = [-1.0 if d.name == "MAXIMIZE" else 1.0 for d in study.directions]
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    vectors = {t.number: [s * v for s, v in zip(signs, t.values, strict=True)] for t in done}

    def dominated(a: list[float]) -> bool:
        return any(all(x <= y for x, y in zip(b, a, strict=True)) and b != a
                   for b in vectors.values())  # fmt: skip

    return {number for number, vector in vectors.items() if not dominated(vector)}


def _pareto_numbers(queries: TrialQueries, name: str) -> set[int]:
    study_id = queries.study_id(name)
    assert study_id is not None
    return {t.number for t in queries.pareto(study_id)}


def test_pareto_front_stays_exact_as_trials_complete(database_url: str, engine: Engine) -> None:
    study = optuna.create_study(storage=database_url, study_name="front",
                                directions=["maximize", "minimize"])  # fmt: skip
    rng = np.random.default_rng(0)

    def values() -> list[float]:
        return [round(float(rng.uniform(0, 1)), 1), round(float(rng.uniform(0, 1)), 1)]

    running = []
    for i in range(40):
        trial = study.ask()
        if i % 9 == 4:
            running.append(trial)  # left RUNNING, completed later (a lower id than the rest)
        elif i % 9 == 5:
            study.tell(trial, state=TrialState.FAIL)
        elif i == 11:
            study.tell(trial, [math.inf, 0.5])
        else:
            study.tell(trial, values())
    queries = TrialQueries(engine)  # one instance: every call after the first is incremental
    assert _pareto_numbers(queries, "front") == _front_numbers(study)
    assert _pareto_numbers(queries, "front") == _front_numbers(study)  # nothing new
    study.tell(running.pop(0), [2.0, -1.0])  # an old trial completes, dominating all but #11
    assert _pareto_numbers(queries, "front") == _front_numbers(study) == {4, 11}
    study.enqueue_trial({})
    waiting = study.ask()  # the enqueued (WAITING) trial
    for trial in running:
        study.tell(trial, [3.0, 5.0])  # a new extreme on the first objective
    for _ in range(5):
        study.tell(study.ask(), values())
    study.tell(waiting, [2.0, -2.0])
    assert _pareto_numbers(queries, "front") == _front_numbers(study)
    assert len(_front_numbers(study)) >= 2

    # A deleted study's front is not served for a new study that reuses its id.
    study_id = queries.study_id("front")
    optuna.delete_study(study_name="front", storage=database_url)
    queries.forget("front")
    again = optuna.create_study(storage=database_url, study_name="front",
                                directions=["maximize", "minimize"])  # fmt: skip
    for _ in range(3):
        again.tell(again.ask(), values())
    assert _pareto_numbers(queries, "front") == _front_numbers(again)
    other = TrialQueries(engine)
    other._fronts.front(study_id, [-1.0, 1.0])  # a cache built before the deletion...
    assert _pareto_numbers(other, "front") == _front_numbers(again)


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_best_stays_exact_as_trials_complete(
    database_url: str, engine: Engine, direction: str
) -> None:
    study = optuna.create_study(storage=database_url, study_name="best", direction=direction)
    good = 1.0 if direction == "maximize" else -1.0  # the sign of a better value
    queries = TrialQueries(engine)  # one instance: every call after the first is incremental

    def best_number() -> int | None:
        study_id = queries.study_id("best")
        assert study_id is not None
        found = queries.best(study_id)
        return found.number if found is not None else None

    early = study.ask()  # number 0: stays RUNNING for a while
    assert best_number() is None
    for value in (0.1, 0.5, 0.3):
        study.tell(study.ask(), good * value)
    assert best_number() == study.best_trial.number == 2
    assert best_number() == 2  # nothing new
    study.tell(study.ask(), good * 0.5)  # a tie with a higher number does not win
    study.tell(study.ask(), state=TrialState.FAIL)
    assert best_number() == 2
    study.tell(early, good * 0.5)  # an old trial ties with a lower number: it wins
    assert best_number() == study.best_trial.number == 0
    study.tell(study.ask(), good * math.inf)
    assert best_number() == study.best_trial.number == 6
    study.tell(study.ask(), good * 9.0)
    assert best_number() == 6

    optuna.delete_study(study_name="best", storage=database_url)  # another process's view:
    again = optuna.create_study(storage=database_url, study_name="best", direction=direction)
    for value in (0.2, 0.4):
        again.tell(again.ask(), good * value)
    fresh = TrialQueries(engine).study_id("best")
    assert fresh is not None
    found = queries.best(fresh)  # the kept best of the deleted study is not served
    assert found is not None and found.number == again.best_trial.number == 1


def test_counts_and_page_totals_stay_exact_as_trials_change(
    database_url: str, engine: Engine
) -> None:
    """The kept counts by state (and the page totals they answer) equal a brute-force count
    after every change: new trials, unfinished ones finishing, a study deleted and remade."""
    study = optuna.create_study(storage=database_url, study_name="counts")
    queries = TrialQueries(engine)  # one instance: every call after the first is incremental
    states = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")

    def check() -> None:
        study_id = TrialQueries(engine).study_id("counts")  # the id now, as another process sees
        assert study_id is not None
        stored = optuna.load_study(study_name="counts", storage=database_url).trials
        expected = {s: sum(t.state.name == s for t in stored) for s in states}
        # A RUNNING trial its scheduler paused counts as PAUSED (and is a RUNNING row).
        paused = sum(
            t.state.name == "RUNNING" and t.user_attrs.get("paused") is True for t in stored
        )
        shown = {**expected, "RUNNING": expected["RUNNING"] - paused, "PAUSED": paused}
        assert queries.counts(study_id) == shown
        assert queries.page(study_id, limit=2).total == len(stored)
        for state in states:
            page = queries.page(study_id, where=TrialFilter(state=state), limit=2)
            assert page.total == expected[state]

    check()  # no trial yet
    running = [study.ask() for _ in range(3)]
    study.enqueue_trial({})  # WAITING
    check()
    study.tell(running[1], 0.5)
    study.tell(study.ask(), state=TrialState.PRUNED)  # the WAITING one, run and pruned
    check()
    study.tell(running[0], state=TrialState.FAIL)
    for value in (0.1, 0.2):
        study.tell(study.ask(), value)
    check()
    check()  # nothing new
    running[2].set_user_attr("paused", True)
    check()
    running[2].set_user_attr("paused", False)  # resumed
    check()
    study.tell(running[2], 0.3)
    study.ask()
    check()

    optuna.delete_study(study_name="counts", storage=database_url)
    study = optuna.create_study(storage=database_url, study_name="counts")
    study.tell(study.ask(), 1.0)
    check()  # the deleted study's kept counts are not used
