"""Pareto fronts kept up to date incrementally, so ``/pareto`` reads only what changed.

A COMPLETE trial never changes or disappears while its study exists, and the front of a set of
points united with new points is the front of (old front + new points). So per study we keep
the front's vectors, the highest trial id looked at, and the ids at or below it that had not
finished then (RUNNING or WAITING): the next call reads only trials above that id or among
those, and the values of the ones that completed. The first call reads every completed trial's
values once.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

from optuna.trial import TrialState
from sqlalchemy import Connection, Engine, func, or_, select

from service.store.optuna_tables import trial_values, trials

UNFINISHED = (TrialState.RUNNING, TrialState.WAITING)
MAX_STUDIES = 4096  # fronts kept; beyond it the cache starts again


@dataclass
class _Front:
    max_id: int = 0
    pending: set[int] = field(default_factory=set)
    vectors: dict[int, list[float]] = field(default_factory=dict)


class ParetoFronts:
    """The current Pareto front of each study's completed trials, by Optuna trial id."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._fronts: dict[int, _Front] = {}
        self._lock = threading.Lock()

    def front(self, study_id: int, signs: list[float]) -> list[int]:
        """Trial ids of the non-dominated completed trials; ``signs`` turn each objective into
        one to minimise (-1 for a maximised objective)."""
        with self._lock:
            known = self._fronts.get(study_id)
        with self._engine.connect() as conn:
            if known is not None and not _intact(conn, study_id, known):
                known = None  # the study was deleted (and its id reused)
            updated = _refresh(conn, study_id, signs, known or _Front())
        with self._lock:
            if len(self._fronts) >= MAX_STUDIES:
                self._fronts.clear()
            self._fronts[study_id] = updated
        return list(updated.vectors)

    def forget(self, study_id: int) -> None:
        """Drop a deleted study's front."""
        with self._lock:
            self._fronts.pop(study_id, None)


def _intact(conn: Connection, study_id: int, known: _Front) -> bool:
    """Whether the trials the front was built from (its own and the highest) still exist."""
    ids = {*known.vectors, known.max_id} - {0}
    if not ids:
        return True
    query = select(func.count()).where(trials.c.study_id == study_id, trials.c.trial_id.in_(ids))
    return conn.execute(query).scalar_one() == len(ids)


def _refresh(conn: Connection, study_id: int, signs: list[float], known: _Front) -> _Front:
    # States first, values second: a trial finishing in between stays pending and is read again.
    of_study = trials.c.study_id == study_id
    if known.max_id == 0:
        new_rows = select(trials.c.trial_id, trials.c.state).where(
            of_study, trials.c.state.in_(UNFINISHED)
        )
        top = conn.execute(select(func.max(trials.c.trial_id)).where(of_study)).scalar()
        max_id = int(top or 0)
    else:
        changed = trials.c.trial_id > known.max_id
        if known.pending:
            changed = or_(changed, trials.c.trial_id.in_(sorted(known.pending)))
        new_rows = select(trials.c.trial_id, trials.c.state).where(of_study, changed)
    states = {int(trial_id): state for trial_id, state in conn.execute(new_rows)}
    if known.max_id:
        max_id = max([known.max_id, *states])
    pending = {i for i, state in states.items() if _unfinished(state)}
    values = select(
        trial_values.c.trial_id,
        trial_values.c.objective,
        trial_values.c.value,
        trial_values.c.value_type,
    )
    if known.max_id == 0:
        complete = values.join(trials, trials.c.trial_id == trial_values.c.trial_id).where(
            of_study, trials.c.state == TrialState.COMPLETE, trials.c.trial_id <= max_id
        )
    else:
        done = [i for i, state in states.items() if _complete(state)]
        if not done:
            return _Front(max_id, pending, known.vectors)
        complete = values.where(trial_values.c.trial_id.in_(done))
    vectors = dict(known.vectors)
    for trial_id, objective, value, kind in conn.execute(complete):
        vector = vectors.setdefault(int(trial_id), [math.inf] * len(signs))
        if objective < len(signs):
            vector[objective] = signs[objective] * _number(value, kind)
    return _Front(max_id, pending, {i: vectors[i] for i in non_dominated(vectors)})


def _number(value: float | None, kind: object) -> float:
    """A stored objective value; Optuna stores infinities as NULL with their sign as the type."""
    if value is not None:
        return float(value)
    name = str(getattr(kind, "name", kind))
    return math.inf if name == "INF_POS" else -math.inf if name == "INF_NEG" else math.nan


def _unfinished(state: object) -> bool:
    return str(getattr(state, "name", state)) in {s.name for s in UNFINISHED}


def _complete(state: object) -> bool:
    return str(getattr(state, "name", state)) == TrialState.COMPLETE.name


def non_dominated(vectors: dict[int, list[float]]) -> list[int]:
    """Keys whose vectors (to minimise) no other vector dominates; ties are all kept."""
    front: list[tuple[int, list[float]]] = []
    for key, vector in sorted(vectors.items(), key=lambda item: item[1]):
        if any(_dominates(other, vector) for _, other in front):
            continue
        front = [(k, v) for k, v in front if not _dominates(vector, v)]
        front.append((key, vector))
    return [key for key, _ in front]


def _dominates(a: list[float], b: list[float]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and a != b
