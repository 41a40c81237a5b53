"""Read-only trial queries on Optuna's tables: SQL that touches only the rows it returns."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from optuna.distributions import json_to_distribution
from optuna.storages._rdb.models import TrialValueModel
from optuna.trial import TrialState
from sqlalchemy import ARRAY, BigInteger, Engine, and_, any_, bindparam, func, select

from service.population import PAUSED
from service.store.best import BestTrials
from service.store.optuna_tables import (
    studies,
    study_directions,
    trial_intermediate_values,
    trial_params,
    trial_user_attributes,
    trial_values,
    trials,
)
from service.store.pareto import ParetoFronts
from service.store.state_counts import StateCounts
from service.store.trial_filters import (
    TRIAL_STATES,
    Cursor,
    QueryError,
    SortKey,
    TrialFilter,
    after,
    conditions,
    sort_key,
)


@dataclass(frozen=True)
class TrialRecord:
    """One trial as stored by Optuna, with external parameter values."""

    number: int
    state: str
    params: dict[str, Any]
    values: list[float] | None
    intermediate_values: dict[int, float]
    user_attrs: dict[str, Any]
    datetime_start: datetime | None
    datetime_complete: datetime | None

    @property
    def value(self) -> float | None:
        """The first objective's value (None until the trial completes)."""
        return self.values[0] if self.values else None

    @property
    def duration_s(self) -> float | None:
        """Wall time of the trial, once it finished."""
        if self.datetime_start and self.datetime_complete:
            return (self.datetime_complete - self.datetime_start).total_seconds()
        return None


@dataclass(frozen=True)
class TrialPage:
    """A page of trials, the number of trials the filter matched, and the next page's cursor."""

    trials: list[TrialRecord]
    total: int
    next_cursor: Cursor | None


@dataclass(frozen=True)
class TrialSummary:
    """A study's trial counts by state and best first-objective value."""

    counts: dict[str, int]
    best_value: float | None


CACHE_SIZE = 10_000


class TrialQueries:
    """Queries over one database's Optuna tables."""

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name == "postgresql":
            # Reads only, so no transaction: under READ COMMITTED each statement has its own
            # snapshot either way, and BEGIN and ROLLBACK were two of a /best's three round trips.
            engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._engine = engine
        # Study name → id and id → directions never change while a study exists.
        self._ids: dict[str, int] = {}
        self._directions: dict[int, tuple[str, ...]] = {}
        self._fronts = ParetoFronts(engine)
        self._best = BestTrials()
        self._counts = StateCounts()
        self._of_trials = _rows_of_trials(engine.dialect.name)

    def study_id(self, study_name: str) -> int | None:
        """Optuna's integer id of a study name, or None if Optuna has not created it yet."""
        if study_name in self._ids:
            return self._ids[study_name]
        with self._engine.connect() as conn:
            found = conn.execute(
                select(studies.c.study_id).where(studies.c.study_name == study_name)
            ).scalar_one_or_none()
        if found is None:
            return None
        if len(self._ids) >= CACHE_SIZE:
            self._ids.clear()
        self._ids[study_name] = int(found)
        return int(found)

    def forget(self, study_name: str) -> None:
        """Drop a deleted study from the id cache."""
        study_id = self._ids.pop(study_name, None)
        if study_id is not None:
            self._directions.pop(study_id, None)
            self._fronts.forget(study_id)
            self._best.forget(study_id)
            self._counts.forget(study_id)

    def directions(self, study_id: int) -> list[str]:
        """Objective directions ("MAXIMIZE"/"MINIMIZE"), in objective order."""
        if study_id in self._directions:
            return list(self._directions[study_id])
        query = (
            select(study_directions.c.direction)
            .where(study_directions.c.study_id == study_id)
            .order_by(study_directions.c.objective)
        )
        with self._engine.connect() as conn:
            found = [_name(d) for d in conn.execute(query).scalars()]
        if found:  # a study's directions never change once it exists
            if len(self._directions) >= CACHE_SIZE:
                self._directions.clear()
            self._directions[study_id] = tuple(found)
        return found

    def counts(self, study_id: int) -> dict[str, int]:
        """Number of trials in each state (kept up to date incrementally:
        ``service.store.state_counts``)."""
        with self._engine.connect() as conn:
            found = self._counts.counts(conn, study_id)
            counts = {state: found.get(state, 0) for state in TRIAL_STATES}
            paused = _paused(conn, [study_id]).get(study_id, 0) if counts["RUNNING"] else 0
        return _with_paused(counts, paused)

    def every(self, study_id: int, page_size: int = 500) -> list[TrialRecord]:
        """Every trial of the study, page by page."""
        found: list[TrialRecord] = []
        cursor: Cursor | None = None
        while True:
            page = self.page(study_id, limit=page_size, cursor=cursor, with_total=False)
            found += page.trials
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor

    def running(self, study_id: int) -> list[tuple[int, TrialRecord]]:
        """RUNNING trials as (Optuna's internal trial id, trial)."""
        query = select(trials).where(
            trials.c.study_id == study_id, trials.c.state == TrialState.RUNNING
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(trials.c.number)).mappings().all()
            records = self._hydrate(conn, rows)
        return [(int(r["trial_id"]), record) for r, record in zip(rows, records, strict=True)]

    def pareto(self, study_id: int) -> list[TrialRecord]:
        """The completed trials no other completed trial dominates, by trial number.

        The front is kept up to date incrementally (``service.store.pareto``): after the first
        call, only the trials that completed since are read, then the front's own rows.
        """
        signs = [-1.0 if d == "MAXIMIZE" else 1.0 for d in self.directions(study_id)]
        front = self._fronts.front(study_id, signs)
        with self._engine.connect() as conn:
            rows = (
                conn.execute(
                    select(trials).where(trials.c.trial_id.in_(front)).order_by(trials.c.number)
                )
                .mappings()
                .all()
            )
            return self._hydrate(conn, rows)

    def best(self, study_id: int) -> TrialRecord | None:
        """The completed trial with the best first-objective value (lowest number on ties).

        The first call walks the (objective, value) index from the best end, so its cost does
        not grow with the study; later calls read only the trials completed since
        (``service.store.best``).
        """
        sign = -1.0 if self.directions(study_id)[:1] == ["MAXIMIZE"] else 1.0
        with self._engine.connect() as conn:
            return self._best.best(
                conn, study_id, sign, lambda c: self._walk_best(c, study_id, sign < 0), self._load
            )

    def _walk_best(
        self, conn: Any, study_id: int, maximize: bool
    ) -> tuple[int, TrialRecord] | None:
        """The best trial by the value index (infinite values, stored as NULL, first)."""
        kind = TrialValueModel.TrialValueType
        value = trial_values.c.value
        infinite = select(trial_values.c.trial_id).where(
            trial_values.c.objective == 0,
            value.is_(None),
            trial_values.c.value_type == (kind.INF_POS if maximize else kind.INF_NEG),
        )
        finite = (
            select(trials)
            .select_from(trial_values.join(trials, trials.c.trial_id == trial_values.c.trial_id))
            .where(complete_trial(study_id), trial_values.c.objective == 0, value.is_not(None))
            .order_by(value.desc() if maximize else value.asc(), trials.c.number)
        )
        queries = [finite]
        ids = list(conn.execute(infinite).scalars())
        if ids:
            among = select(trials).where(complete_trial(study_id), trials.c.trial_id.in_(ids))
            queries.insert(0, among.order_by(trials.c.number))
        for query in queries:
            rows = conn.execute(query.limit(1)).mappings().all()
            if rows:
                return int(rows[0]["trial_id"]), self._hydrate(conn, rows)[0]
        return None

    def _load(self, conn: Any, trial_id: int) -> TrialRecord:
        rows = conn.execute(select(trials).where(trials.c.trial_id == trial_id)).mappings().all()
        return self._hydrate(conn, rows)[0]

    def page(
        self,
        study_id: int,
        *,
        where: TrialFilter = TrialFilter(),
        sort: SortKey = "number",
        descending: bool = False,
        limit: int = 100,
        offset: int = 0,
        cursor: Cursor | None = None,
        with_total: bool = True,
    ) -> TrialPage:
        """One page of filtered trials ordered by ``sort`` (then number), and the filtered total.

        ``cursor`` (from the previous page) continues by keyset, so deep pages cost no more
        than the first; ``offset`` is the simple alternative. ``with_total=False`` skips the
        count query and reports the page's own length as ``total``.
        """
        if cursor is not None and (cursor.sort, cursor.descending) != (sort, descending):
            raise QueryError("cursor", "it was issued for another sort or order")
        with self._engine.connect() as conn:
            clauses = conditions(conn, study_id, where)
            key = sort_key(sort, self._engine.dialect.name)
            joined = trials
            if sort == "value" or where.value_min is not None or where.value_max is not None:
                joined = trials.outerjoin(
                    trial_values,
                    and_(
                        trial_values.c.trial_id == trials.c.trial_id,
                        trial_values.c.objective == 0,
                    ),
                )
            query = select(trials, key.label("sort_key")).select_from(joined).where(*clauses)
            if cursor is not None:
                query = query.where(after(key, cursor))
            if sort == "number":
                query = query.order_by(trials.c.number.desc() if descending else trials.c.number)
            else:
                ordered = key.desc() if descending else key.asc()
                query = query.order_by(ordered.nulls_last(), trials.c.number)
            rows = conn.execute(query.limit(limit).offset(offset)).mappings().all()
            total = len(rows)
            by_state_only = where.value_min is None and where.value_max is None and not where.params
            if with_total and by_state_only:  # from the kept counts, not a count of the study
                found = self._counts.counts(conn, study_id)
                total = found[where.state] if where.state else sum(found.values())
            elif with_total:
                count = select(func.count()).select_from(joined).where(*clauses)
                total = int(conn.execute(count).scalar_one())
            records = self._hydrate(conn, rows)
        next_cursor = None
        if len(rows) == limit:
            last = rows[-1]
            last_key = None if last["sort_key"] is None else float(last["sort_key"])
            next_cursor = Cursor(sort, descending, last_key, int(last["number"]))
        return TrialPage(records, total, next_cursor)

    def summaries(self, names: list[str]) -> dict[str, TrialSummary]:
        """Trial counts (one query for all) and best first-objective value of many studies."""
        if not names:
            return {}
        with self._engine.connect() as conn:
            ids: dict[str, int] = dict(
                conn.execute(
                    select(studies.c.study_name, studies.c.study_id).where(
                        studies.c.study_name.in_(names)
                    )
                ).all()
            )
            if not ids:
                return {}
            counts: dict[int, dict[str, int]] = {
                i: dict.fromkeys(TRIAL_STATES, 0) for i in ids.values()
            }
            query = (
                select(trials.c.study_id, trials.c.state, func.count())
                .where(trials.c.study_id.in_(ids.values()))
                .group_by(trials.c.study_id, trials.c.state)
            )
            for study_id, state, n in conn.execute(query):
                counts[study_id][_name(state)] = int(n)
            running = [study_id for study_id, c in counts.items() if c["RUNNING"]]
            paused = _paused(conn, running) if running else {}
            counts = {i: _with_paused(c, paused.get(i, 0)) for i, c in counts.items()}
        best = {study_id: self.best(study_id) for study_id in ids.values()}
        return {
            name: TrialSummary(counts[study_id], _value(best[study_id]))
            for name, study_id in ids.items()
        }

    def _hydrate(self, conn: Any, rows: Any) -> list[TrialRecord]:
        ids = [r["trial_id"] for r in rows]
        if not ids:
            return []
        found = {"ids": ids}
        params: dict[int, dict[str, Any]] = {i: {} for i in ids}
        for r in conn.execute(self._of_trials[trial_params.name], found):
            params[r.trial_id][r.param_name] = _external(r.distribution_json, r.param_value)
        values: dict[int, dict[int, float]] = {i: {} for i in ids}
        for r in conn.execute(self._of_trials[trial_values.name], found):
            values[r.trial_id][r.objective] = _float(r.value, r.value_type)
        steps: dict[int, dict[int, float]] = {i: {} for i in ids}
        for r in conn.execute(self._of_trials[trial_intermediate_values.name], found):
            steps[r.trial_id][r.step] = _float(r.intermediate_value, r.intermediate_value_type)
        attrs: dict[int, dict[str, Any]] = {i: {} for i in ids}
        for r in conn.execute(self._of_trials[trial_user_attributes.name], found):
            attrs[r.trial_id][r.key] = json.loads(r.value_json)
        return [
            TrialRecord(
                number=r["number"],
                state=_name(r["state"]),
                params=params[r["trial_id"]],
                values=[v for _, v in sorted(values[r["trial_id"]].items())] or None,
                intermediate_values=dict(sorted(steps[r["trial_id"]].items())),
                user_attrs=attrs[r["trial_id"]],
                datetime_start=_utc(r["datetime_start"]),
                datetime_complete=_utc(r["datetime_complete"]),
            )
            for r in rows
        ]


def _rows_of_trials(dialect: str) -> dict[str, Any]:
    """Per table of trial details, the statement reading its rows of the trials ``ids``, built
    once. On PostgreSQL the ids travel as one array (``= ANY(:ids)``): an expanded ``IN`` of 50
    parameters is rendered anew for every page and makes a new statement for every length."""
    tables = (trial_params, trial_values, trial_intermediate_values, trial_user_attributes)
    if dialect == "postgresql":
        ids: Any = bindparam("ids", type_=ARRAY(BigInteger))
        return {t.name: select(t).where(t.c.trial_id == any_(ids)) for t in tables}
    expanding: Any = bindparam("ids", expanding=True)
    return {t.name: select(t).where(t.c.trial_id.in_(expanding)) for t in tables}


def complete_trial(study_id: int) -> Any:
    """The WHERE clause of a study's COMPLETE trials."""
    return and_(trials.c.study_id == study_id, trials.c.state == TrialState.COMPLETE)


def _value(trial: TrialRecord | None) -> float | None:
    return trial.value if trial is not None else None


def _paused(conn: Any, study_ids: list[int]) -> dict[int, int]:
    """Per study, its RUNNING trials that their scheduler paused."""
    query = (
        select(trials.c.study_id, func.count())
        .join(trial_user_attributes, trial_user_attributes.c.trial_id == trials.c.trial_id)
        .where(
            trials.c.study_id.in_(study_ids),
            trials.c.state == TrialState.RUNNING,
            trial_user_attributes.c.key == "paused",
            trial_user_attributes.c.value_json == "true",
        )
        .group_by(trials.c.study_id)
    )
    return {int(study_id): int(n) for study_id, n in conn.execute(query)}


def _with_paused(counts: dict[str, int], paused: int) -> dict[str, int]:
    """Counts with the paused trials out of RUNNING and under ``PAUSED``."""
    return {**counts, "RUNNING": counts["RUNNING"] - paused, PAUSED: paused}


def _name(member: Any) -> str:
    """Enum member (or its stored string) → its name, e.g. ``TrialState.COMPLETE`` → COMPLETE."""
    return str(getattr(member, "name", member))


@lru_cache(maxsize=4096)
def _distribution(distribution_json: str) -> Any:
    return json_to_distribution(distribution_json)


def _external(distribution_json: str, internal: float) -> Any:
    return _distribution(distribution_json).to_external_repr(internal)


def _float(value: float | None, value_type: Any) -> float:
    kind = _name(value_type)
    if kind in ("INF_POS", "INF_NEG"):
        return float("inf") if kind == "INF_POS" else float("-inf")
    if value is None:
        return float("nan")
    return float(value)


def _utc(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment
